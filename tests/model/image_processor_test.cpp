// tests/model/image_processor_test.cpp — PNG/JPEG decoding, PIL-exact bicubic resize, normalisation, errors.
#include "model/image_processor.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <utility>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

using fedvlm::testing::TempDir;

std::vector<uint8_t> read_all(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& f, const std::vector<uint8_t>& b) {
  std::ofstream out(f, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

float normalised(int v, int c, const ImageProcessorConfig& cfg) {
  const auto x = static_cast<float>(v * (1.0 / 255.0));
  return (x - static_cast<float>(cfg.mean[c])) / static_cast<float>(cfg.std[c]);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

// The pattern tests/pil reference values were generated from (PIL 9.4, Image.BICUBIC).
RgbImage pattern(int w, int h) {
  RgbImage img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        img.pixels[static_cast<std::size_t>((y * w + x) * 3 + c)] =
            static_cast<uint8_t>((x * 37 + y * 91 + c * 53 + (x * y * 7) % 29) % 256);
      }
    }
  }
  return img;
}

TEST(ImageProcessor, CheckerPngAtNativeSizeGivesExactValues) {
  TempDir dir;
  at::Tensor px = at::zeros({4, 4, 3}, at::kByte);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      if ((x + y) % 2 == 0) {
        px[y][x][0] = 255;
        px[y][x][1] = 128;
        px[y][x][2] = 0;
      } else {
        px[y][x][0] = 10;
        px[y][x][1] = 20;
        px[y][x][2] = 250;
      }
    }
  }
  write_png(dir / "checker.png", px);
  ImageProcessorConfig cfg;
  cfg.size = 4;
  const at::Tensor t = load_image_tensor(dir / "checker.png", cfg);
  ASSERT_EQ(t.sizes(), (at::IntArrayRef{3, 4, 4}));
  ASSERT_EQ(t.scalar_type(), at::kFloat);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      const bool on = (x + y) % 2 == 0;
      const int rgb[3] = {on ? 255 : 10, on ? 128 : 20, on ? 0 : 250};
      for (int c = 0; c < 3; ++c) {
        EXPECT_FLOAT_EQ(t[c][y][x].item<float>(), normalised(rgb[c], c, cfg))
            << "c" << c << " y" << y << " x" << x;
      }
    }
  }
}

TEST(ImageProcessor, ResizeMatchesPilBicubic) {
  // Expected pixels from PIL 9.4: Image.fromarray(pattern).resize((ow, oh), Image.BICUBIC).
  struct Case {
    int w, h, ow, oh;
    std::vector<int> expected;
  };
  const std::vector<Case> cases = {
      {7, 5, 4, 3, {56,  113, 163, 128, 145, 138, 112, 136, 164, 132, 115, 100,
                    151, 138, 112, 102, 114, 141, 103, 132, 158, 148, 144, 118,
                    94,  149, 134, 172, 99,  128, 133, 124, 117, 148, 91,  141}},
      {5, 6, 5, 3, {62,  115, 137, 103, 125, 181, 114, 171, 105, 153, 90,  143, 79,  132, 194,
                    100, 153, 106, 155, 108, 133, 95,  120, 145, 123, 119, 172, 119, 172, 116,
                    137, 190, 133, 191, 135, 69,  120, 54,  110, 159, 96,  149, 84,  137, 159}},
  };
  for (const auto& c : cases) {
    const RgbImage out = resize_bicubic(pattern(c.w, c.h), c.ow, c.oh);
    ASSERT_EQ(out.pixels.size(), c.expected.size());
    for (std::size_t i = 0; i < c.expected.size(); ++i) {
      EXPECT_EQ(static_cast<int>(out.pixels[i]), c.expected[i])
          << c.w << "x" << c.h << " -> " << c.ow << "x" << c.oh << " at " << i;
    }
  }
  // Upscaling 7x5 -> 11x9: spot checks (first row, a middle pixel, the last pixel).
  const RgbImage up = resize_bicubic(pattern(7, 5), 11, 9);
  const std::vector<int> first_row = {0,   43,  96,  5,   58,  110, 32,  85,  139, 56,  107,
                                      178, 77,  138, 207, 102, 176, 229, 139, 200, 255, 171,
                                      230, 213, 195, 255, 39,  222, 112, 36,  237, 0,   67};
  for (std::size_t i = 0; i < first_row.size(); ++i) {
    EXPECT_EQ(static_cast<int>(up.pixels[i]), first_row[i]) << "upscale at " << i;
  }
  EXPECT_EQ(static_cast<int>(up.pixels[up.pixels.size() - 1]), 215);
  EXPECT_EQ(static_cast<int>(up.pixels[up.pixels.size() - 2]), 162);
}

TEST(ImageProcessor, ConstantImageStaysConstant) {
  TempDir dir;
  at::Tensor px = at::empty({7, 10, 3}, at::kByte);
  px.select(2, 0).fill_(200);
  px.select(2, 1).fill_(100);
  px.select(2, 2).fill_(50);
  write_png(dir / "const.png", px);
  for (const int64_t size : {3, 16, 64}) {
    ImageProcessorConfig cfg;
    cfg.size = size;
    const at::Tensor t = load_image_tensor(dir / "const.png", cfg);
    ASSERT_EQ(t.sizes(), (at::IntArrayRef{3, size, size}));
    const int rgb[3] = {200, 100, 50};
    for (int c = 0; c < 3; ++c) {
      EXPECT_TRUE(at::all(t[c] == normalised(rgb[c], c, cfg)).item<bool>())
          << "size " << size << " channel " << c;
    }
  }
}

TEST(ImageProcessor, DefaultConfigIsFlorence2) {
  TempDir dir;
  write_png(dir / "small.png", at::full({5, 9, 3}, 128, at::kByte));
  const ImageProcessorConfig cfg;
  const at::Tensor t = load_image_tensor(dir / "small.png", cfg);
  EXPECT_EQ(t.sizes(), (at::IntArrayRef{3, 768, 768}));
  EXPECT_NEAR(t[0][0][0].item<float>(), (128 / 255.0 - 0.485) / 0.229, 1e-5);
}

TEST(ImageProcessor, GreyAndRgbaBecomeRgb) {
  TempDir dir;
  ImageProcessorConfig cfg;
  cfg.size = 2;
  // Grey: replicated into all three channels.
  write_png(dir / "grey.png", at::full({2, 2, 1}, 77, at::kByte));
  const at::Tensor g = load_image_tensor(dir / "grey.png", cfg);
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{3, 2, 2}));
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(at::all(g[c] == normalised(77, c, cfg)).item<bool>()) << c;
  }
  // RGBA: alpha dropped (not composited), as PIL's convert("RGB").
  at::Tensor rgba = at::empty({2, 2, 4}, at::kByte);
  rgba.select(2, 0).fill_(10);
  rgba.select(2, 1).fill_(200);
  rgba.select(2, 2).fill_(30);
  rgba.select(2, 3).fill_(0);
  write_png(dir / "rgba.png", rgba);
  const at::Tensor a = load_image_tensor(dir / "rgba.png", cfg);
  ASSERT_EQ(a.sizes(), (at::IntArrayRef{3, 2, 2}));
  const int rgb[3] = {10, 200, 30};
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(at::all(a[c] == normalised(rgb[c], c, cfg)).item<bool>()) << c;
  }
}

TEST(ImageProcessor, JpegDecodesFromFileAndMemory) {
  TempDir dir;
  write_jpeg(dir / "flat.jpg", at::full({16, 16, 3}, 90, at::kByte), 100);
  ImageProcessorConfig cfg;
  cfg.size = 8;
  const at::Tensor t = load_image_tensor(dir / "flat.jpg", cfg);
  const at::Tensor m = decode_image_tensor(read_all(dir / "flat.jpg"), cfg, "flat.jpg");
  EXPECT_TRUE(at::equal(t, m));
  for (int c = 0; c < 3; ++c) {
    // JPEG is lossy: within 2 grey levels.
    EXPECT_LT((t[c] - normalised(90, c, cfg)).abs().max().item<float>(),
              2.0F / 255.0F / static_cast<float>(cfg.std[c]) + 1e-5F);
  }
  const RgbImage img = decode_rgb(read_all(dir / "flat.jpg"), "flat.jpg");
  EXPECT_EQ(img.width, 16);
  EXPECT_EQ(img.height, 16);
}

TEST(ImageProcessor, ErrorsNameTheFileAndReason) {
  TempDir dir;
  ImageProcessorConfig cfg;
  cfg.size = 4;
  const auto load = [&](const std::string& name) {
    return error_of([&] { (void)load_image_tensor(dir / name, cfg); });
  };

  std::string m = load("missing.png");
  EXPECT_NE(m.find("missing.png: image file not found"), std::string::npos) << m;

  {
    std::ofstream(dir / "notes.txt") << "this is not an image\n";
  }
  m = load("notes.txt");
  EXPECT_NE(m.find("notes.txt: not an image (looks like text)"), std::string::npos) << m;

  write_all(dir / "empty.png", {});
  m = load("empty.png");
  EXPECT_NE(m.find("empty.png: empty file"), std::string::npos) << m;

  // Truncated PNG: the first half of a real one.
  at::Tensor noise = at::randint(0, 256, {32, 32, 3}, at::kByte);
  write_png(dir / "full.png", noise);
  std::vector<uint8_t> png = read_all(dir / "full.png");
  write_all(dir / "cut.png", std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2));
  m = load("cut.png");
  EXPECT_NE(m.find("cut.png: truncated PNG"), std::string::npos) << m;
  // Cut just before IEND: stb alone would accept it.
  write_all(dir / "noiend.png", std::vector<uint8_t>(png.begin(), png.end() - 12));
  m = load("noiend.png");
  EXPECT_NE(m.find("noiend.png: truncated PNG"), std::string::npos) << m;
  // Corrupt PNG: intact chunk list, garbage compressed data.
  std::vector<uint8_t> bad = png;
  for (std::size_t i = 60; i < bad.size() - 20; ++i) bad[i] = static_cast<uint8_t>(i * 7);
  write_all(dir / "corrupt.png", bad);
  m = load("corrupt.png");
  EXPECT_NE(m.find("corrupt.png: "), std::string::npos) << m;
  EXPECT_NE(m.find("corrupt"), std::string::npos) << m;

  // Truncated JPEG.
  write_jpeg(dir / "full.jpg", noise, 90);
  std::vector<uint8_t> jpg = read_all(dir / "full.jpg");
  write_all(dir / "cut.jpg", std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() * 2 / 3));
  m = load("cut.jpg");
  EXPECT_NE(m.find("cut.jpg: truncated JPEG"), std::string::npos) << m;

  // Corrupt JPEG header (markers intact at both ends): libjpeg's message comes through.
  std::vector<uint8_t> badjpg = jpg;
  for (std::size_t i = 2; i < 40; ++i) badjpg[i] = 0x00;
  badjpg[2] = 0xFF;
  badjpg[3] = 0xC0; // SOF0 with a zero-length segment
  write_all(dir / "corrupt.jpg", badjpg);
  m = load("corrupt.jpg");
  EXPECT_NE(m.find("corrupt.jpg: cannot decode JPEG ("), std::string::npos) << m;

  // WebP is named as unsupported rather than "not an image".
  std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8'};
  m = error_of([&] { (void)decode_image_tensor(webp, cfg, "mem.webp"); });
  EXPECT_NE(m.find("mem.webp: WebP is not supported"), std::string::npos) << m;

  // write_png rejects what it cannot write, naming the target.
  m = error_of([&] { write_png(dir / "x.png", at::zeros({4, 4, 3}, at::kFloat)); });
  EXPECT_NE(m.find("x.png: expected a (H, W, C) uint8 tensor"), std::string::npos) << m;
  m = error_of([&] { write_png(dir / "no_such_dir" / "x.png", at::zeros({4, 4, 3}, at::kByte)); });
  EXPECT_NE(m.find("cannot open for writing"), std::string::npos) << m;
}

// Offset of the first `marker` byte pair (0xFF, marker) in a JPEG, or npos.
std::size_t jpeg_marker(const std::vector<uint8_t>& b, uint8_t marker) {
  for (std::size_t i = 2; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == marker) return i;
  return std::string::npos;
}

void put_be16(std::vector<uint8_t>& b, std::size_t at, uint32_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// A few hundred bytes whose header claims 65000 x 65000 used to allocate 12 GB before reading
// a pixel and get the process OOM-killed. The claim is checked first, in every decoder path.
TEST(ImageProcessor, HugeClaimedJpegIsRefusedBeforeDecoding) {
  TempDir dir;
  write_jpeg(dir / "tiny.jpg", at::full({8, 8, 3}, 128, at::kByte));
  std::vector<uint8_t> jpg = read_all(dir / "tiny.jpg");
  const std::size_t sof = jpeg_marker(jpg, 0xC0); // baseline start-of-frame: FFC0 len P H H W W
  ASSERT_NE(sof, std::string::npos);
  put_be16(jpg, sof + 5, 65000);
  put_be16(jpg, sof + 7, 65000);
  write_all(dir / "bomb.jpg", jpg);
  ImageProcessorConfig cfg;
  cfg.size = 4;
  const std::string m = error_of([&] { (void)load_image_tensor(dir / "bomb.jpg", cfg); });
  EXPECT_NE(m.find("bomb.jpg: header claims a 65000x65000 image"), std::string::npos) << m;
  EXPECT_NE(m.find(std::to_string(kMaxImagePixels) + " pixels"), std::string::npos) << m;
  // In memory, no file: the given name is used.
  EXPECT_NE(error_of([&] { (void)decode_rgb(jpg, "upload #7"); }).find("upload #7: header claims a 65000x65000"),
            std::string::npos);
}

// A 3 GiB (sparse) file is refused from its size, not after reading it all into memory.
TEST(ImageProcessor, ImageFileOver2GiBIsRefusedBeforeReading) {
  TempDir dir;
  write_png(dir / "big.png", at::full({8, 8, 1}, 7, at::kByte));
  fs::resize_file(dir / "big.png", std::uintmax_t{3} << 30);
  ImageProcessorConfig cfg;
  cfg.size = 4;
  const std::string m = error_of([&] { (void)load_image_tensor(dir / "big.png", cfg); });
  EXPECT_NE(m.find("big.png: image file larger than 2 GiB"), std::string::npos) << m;
}

TEST(ImageProcessor, HugeClaimedPngIsRefusedBeforeDecoding) {
  TempDir dir;
  // Grey, so that stb's own 1 GiB guard does not trigger first: 20000 x 20000 x 1 passes it.
  write_png(dir / "tiny.png", at::full({8, 8, 1}, 7, at::kByte));
  std::vector<uint8_t> png = read_all(dir / "tiny.png");
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  // IHDR data: width then height, 32-bit big-endian (stb does not check the CRC).
  for (std::size_t at : {std::size_t{16}, std::size_t{20}}) {
    png[at] = 0;
    png[at + 1] = 0;
    put_be16(png, at + 2, 20000);
  }
  write_all(dir / "bomb.png", png);
  const std::string m = error_of([&] { (void)decode_rgb(read_all(dir / "bomb.png"), (dir / "bomb.png").string()); });
  EXPECT_NE(m.find("bomb.png: header claims a 20000x20000 image"), std::string::npos) << m;
}

// A header claiming a huge image with nothing after it (the bytes a fuzzer or a cut-off bomb
// leaves) is refused for its size, not reported as "truncated": the size is the reason it can
// never be decoded. Several members: PNG cut right after IHDR, PNG with a side over stb's 2^24
// limit, JPEG cut right after its start-of-frame.
TEST(ImageProcessor, HeaderOnlyHugeClaimIsRefusedForItsSizeNotAsTruncated) {
  TempDir dir;
  write_png(dir / "tiny.png", at::full({8, 8, 1}, 7, at::kByte));
  const std::vector<uint8_t> png = read_all(dir / "tiny.png");
  auto png_claiming = [&](uint32_t w, uint32_t h) {
    std::vector<uint8_t> b(png.begin(), png.begin() + 33); // signature + the whole IHDR chunk, no IDAT/IEND
    for (auto [at, v] : {std::pair<std::size_t, uint32_t>{16, w}, {20, h}}) {
      put_be16(b, at, v >> 16);
      put_be16(b, at + 2, v & 0xFFFF);
    }
    return b;
  };
  for (auto [w, h] : {std::pair<uint32_t, uint32_t>{100000, 100000}, {1u << 25, 10}, {20000, 20000}}) {
    const std::string m = error_of([&] { (void)decode_rgb(png_claiming(w, h), "claim.png"); });
    EXPECT_NE(m.find("claim.png: header claims a " + std::to_string(w) + "x" + std::to_string(h) + " image"),
              std::string::npos) << m;
    EXPECT_EQ(m.find("truncated"), std::string::npos) << m;
  }
  // A small claim cut off the same way is still "truncated" (the check is on the size only).
  EXPECT_NE(error_of([&] { (void)decode_rgb(png_claiming(8, 8), "cut.png"); }).find("cut.png: truncated PNG"),
            std::string::npos);

  write_jpeg(dir / "tiny.jpg", at::full({8, 8, 3}, 128, at::kByte));
  std::vector<uint8_t> jpg = read_all(dir / "tiny.jpg");
  const std::size_t sof = jpeg_marker(jpg, 0xC0);
  ASSERT_NE(sof, std::string::npos);
  put_be16(jpg, sof + 5, 60000);
  put_be16(jpg, sof + 7, 50000);
  const std::size_t sos = jpeg_marker(jpg, 0xDA);
  ASSERT_NE(sos, std::string::npos);
  jpg.resize(sos); // no scan data, no end-of-image marker
  const std::string m = error_of([&] { (void)decode_rgb(jpg, "claim.jpg"); });
  EXPECT_NE(m.find("claim.jpg: header claims a 50000x60000 image"), std::string::npos) << m;
}

} // namespace
} // namespace fedvlm
