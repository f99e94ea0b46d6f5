// model/image_processor.cpp — JPEG (libjpeg-turbo) / PNG (stb) decoding, PIL-exact resize, normalisation.
#include "model/image_processor.hpp"

#include <ATen/ATen.h>

#include <csetjmp>
#include <cstdio> // jpeglib.h needs FILE
#include <optional>
#include <utility>
#include <jpeglib.h>

// Static linkage keeps stb's symbols private to this file, so linking Debian's libstb (or
// another unit that embeds stb) elsewhere cannot clash. Formats limited to those we detect by
// signature: TGA has no magic and stb would "decode" arbitrary bytes as one.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>

namespace fedvlm {

namespace fs = std::filesystem;

namespace {

enum class Format { png, jpeg, bmp, gif, unknown };

// stb takes the byte count as an int.
constexpr std::size_t kMaxImageFileBytes = static_cast<std::size_t>(std::numeric_limits<int>::max());
const char* const kTooLargeFile = ": image file larger than 2 GiB";

Format sniff(const std::vector<uint8_t>& b) {
  const auto starts = [&](std::initializer_list<uint8_t> sig) {
    return b.size() >= sig.size() && std::equal(sig.begin(), sig.end(), b.begin());
  };
  if (starts({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A})) return Format::png;
  if (starts({0xFF, 0xD8, 0xFF})) return Format::jpeg;
  if (starts({'B', 'M'})) return Format::bmp;
  if (starts({'G', 'I', 'F', '8'})) return Format::gif;
  return Format::unknown;
}

std::string describe_unknown(const std::vector<uint8_t>& b) {
  const auto starts = [&](const char* s) {
    const std::size_t n = std::strlen(s);
    return b.size() >= n && std::memcmp(b.data(), s, n) == 0;
  };
  if (b.size() >= 12 && starts("RIFF") && std::memcmp(b.data() + 8, "WEBP", 4) == 0) {
    return "WebP is not supported; convert it to PNG or JPEG";
  }
  if (starts("II*") || starts("MM\0*")) return "TIFF is not supported; convert it to PNG or JPEG";
  const bool text = std::all_of(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(
                                                           std::min<std::size_t>(b.size(), 64)),
                                [](uint8_t c) { return c == '\n' || c == '\r' || c == '\t' ||
                                                       (c >= 0x20 && c < 0x7F); });
  return text ? "not an image (looks like text); expected PNG or JPEG"
              : "not an image: no PNG, JPEG, BMP or GIF signature";
}

// stb fills a JPEG's missing scan data with zeros instead of failing, so a cut-off download
// would pass as a grey-bottomed image; PIL raises there. The end-of-image marker must follow
// the last start-of-scan (scan data never contains 0xFFD9: 0xFF is stuffed as 0xFF00).
bool jpeg_complete(const std::vector<uint8_t>& b) {
  std::size_t last_sos = std::string::npos;
  for (std::size_t i = 2; i + 1 < b.size(); ++i) {
    if (b[i] == 0xFF && b[i + 1] == 0xDA) last_sos = i;
  }
  if (last_sos == std::string::npos) return false;
  for (std::size_t i = last_sos + 2; i + 1 < b.size(); ++i) {
    if (b[i] == 0xFF && b[i + 1] == 0xD9) return true;
  }
  return false;
}

// Walks the chunk list to IEND: stb stops reading once the IDAT data is complete, so a file
// cut off after that would pass, yet it is damaged all the same.
bool png_complete(const std::vector<uint8_t>& b) {
  std::size_t pos = 8;
  while (pos + 8 <= b.size()) {
    const uint64_t len = (uint64_t{b[pos]} << 24) | (uint64_t{b[pos + 1]} << 16) |
                         (uint64_t{b[pos + 2]} << 8) | uint64_t{b[pos + 3]};
    const bool iend = std::memcmp(&b[pos + 4], "IEND", 4) == 0;
    if (pos + 12 + len > b.size()) return false;
    if (iend) return true;
    pos += 12 + len;
  }
  return false;
}

// PIL's Resample.c: bicubic with a = -0.5 and support 2.
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds; // (xmin, count) per output pixel
  std::vector<int32_t> kk; // ksize fixed-point weights per output pixel
};

// PIL's precompute_coeffs + normalize_coeffs_8bpc, kept operation for operation (including
// the float box edge and the rounding casts) so results match PIL exactly.
Coeffs precompute_coeffs(int in_size, int out_size) {
  const float in0 = 0.0F;
  const auto in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<std::size_t>(out_size) * 2);
  std::vector<double> kk(static_cast<std::size_t>(out_size) * c.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &kk[static_cast<std::size_t>(xx) * c.ksize];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    c.bounds[static_cast<std::size_t>(xx) * 2] = xmin;
    c.bounds[static_cast<std::size_t>(xx) * 2 + 1] = xmax;
  }
  c.kk.resize(kk.size());
  for (std::size_t i = 0; i < kk.size(); ++i) {
    c.kk[i] = kk[i] < 0 ? static_cast<int32_t>(-0.5 + kk[i] * (1 << kPrecisionBits))
                        : static_cast<int32_t>(0.5 + kk[i] * (1 << kPrecisionBits));
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

RgbImage resample_horizontal(const RgbImage& in, int out_w) {
  const Coeffs c = precompute_coeffs(static_cast<int>(in.width), out_w);
  RgbImage out{out_w, in.height, std::vector<uint8_t>(static_cast<std::size_t>(out_w) * in.height * 3)};
  for (int64_t y = 0; y < in.height; ++y) {
    const uint8_t* row = &in.pixels[static_cast<std::size_t>(y * in.width * 3)];
    uint8_t* orow = &out.pixels[static_cast<std::size_t>(y * out_w * 3)];
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = c.bounds[static_cast<std::size_t>(xx) * 2];
      const int xmax = c.bounds[static_cast<std::size_t>(xx) * 2 + 1];
      const int32_t* k = &c.kk[static_cast<std::size_t>(xx) * c.ksize];
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < xmax; ++x) {
        const uint8_t* p = row + static_cast<std::ptrdiff_t>(x + xmin) * 3;
        s0 += p[0] * k[x];
        s1 += p[1] * k[x];
        s2 += p[2] * k[x];
      }
      orow[xx * 3] = clip8(s0);
      orow[xx * 3 + 1] = clip8(s1);
      orow[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

RgbImage resample_vertical(const RgbImage& in, int out_h) {
  const Coeffs c = precompute_coeffs(static_cast<int>(in.height), out_h);
  const int64_t w = in.width;
  RgbImage out{w, out_h, std::vector<uint8_t>(static_cast<std::size_t>(w) * out_h * 3)};
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = c.bounds[static_cast<std::size_t>(yy) * 2];
    const int ymax = c.bounds[static_cast<std::size_t>(yy) * 2 + 1];
    const int32_t* k = &c.kk[static_cast<std::size_t>(yy) * c.ksize];
    uint8_t* orow = &out.pixels[static_cast<std::size_t>(yy * w * 3)];
    for (int64_t x = 0; x < w * 3; ++x) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) {
        s += in.pixels[static_cast<std::size_t>((ymin + y) * w * 3 + x)] * k[y];
      }
      orow[x] = clip8(s);
    }
  }
  return out;
}

// The header's claim, checked before any pixel buffer exists: a few hundred bytes claiming
// 65000 x 65000 would otherwise allocate 12 GB and get the process OOM-killed.
bool image_size_fits(int64_t width, int64_t height) {
  return width >= 1 && height >= 1 && width <= kMaxImagePixels && height <= kMaxImagePixels &&
         width * height <= kMaxImagePixels; // each side <= 1.8e8, so the product fits int64
}

/// The width and height an image's header claims, without decoding: PNG's IHDR (always the
/// first chunk) read directly, as stb refuses sides over 2^24 without reporting them; the other
/// formats through stb's header reader. Nothing when the header cannot be read.
std::optional<std::pair<int64_t, int64_t>> header_size(const std::vector<uint8_t>& b, Format f) {
  auto be32 = [&](std::size_t at) {
    return (int64_t{b[at]} << 24) | (int64_t{b[at + 1]} << 16) | (int64_t{b[at + 2]} << 8) | int64_t{b[at + 3]};
  };
  if (f == Format::png) {
    if (b.size() < 24 || std::memcmp(&b[12], "IHDR", 4) != 0) return std::nullopt;
    return std::make_pair(be32(16), be32(20));
  }
  if (b.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return std::nullopt;
  int w = 0, h = 0, comp = 0;
  if (stbi_info_from_memory(b.data(), static_cast<int>(b.size()), &w, &h, &comp) == 0) return std::nullopt;
  return std::make_pair(int64_t{w}, int64_t{h});
}

[[noreturn]] void throw_image_too_large(const std::string& name, int64_t width, int64_t height) {
  throw std::runtime_error(name + ": header claims a " + std::to_string(width) + "x" + std::to_string(height) +
                           " image; expected 1 to " + std::to_string(kMaxImagePixels) +
                           " pixels (PIL's decompression-bomb limit), so it is refused before decoding; the "
                           "file is corrupt or not a real photo");
}

// JPEG through libjpeg-turbo, the decoder PIL uses (ISLOW IDCT, fancy upsampling), so pixels
// match HF preprocessing exactly; stb's own IDCT differs by a few levels. `needs_stb` is for
// colour spaces libjpeg cannot turn into RGB (CMYK/YCCK: stb handles them); `too_large` leaves
// the claimed size in out.width / out.height; `corrupt` sets `error`.
enum class JpegOutcome { decoded, needs_stb, too_large, corrupt };
struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_ignore_message(j_common_ptr /*cinfo*/, int /*level*/) {}

// No C++ object with a destructor lives in this frame: longjmp would skip it.
JpegOutcome decode_jpeg(const std::vector<uint8_t>& bytes, RgbImage& out, std::string& error) {
  jpeg_decompress_struct cinfo{};
  JpegError jerr{};
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = &jpeg_error_exit;
  jerr.pub.emit_message = &jpeg_ignore_message;
  if (setjmp(jerr.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    error = jerr.message;
    return JpegOutcome::corrupt;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  out.width = cinfo.image_width;
  out.height = cinfo.image_height;
  if (!image_size_fits(out.width, out.height)) {
    jpeg_destroy_decompress(&cinfo);
    return JpegOutcome::too_large;
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    return JpegOutcome::needs_stb;
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  out.width = cinfo.output_width;
  out.height = cinfo.output_height;
  out.pixels.resize(static_cast<std::size_t>(out.width) * out.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = &out.pixels[static_cast<std::size_t>(cinfo.output_scanline) * out.width * 3];
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return JpegOutcome::decoded;
}

std::vector<uint8_t> read_bytes(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw std::runtime_error(file.string() + ": image file not found");
  if (fs::is_directory(file, ec)) {
    throw std::runtime_error(file.string() + ": is a directory, expected an image file");
  }
  // Checked before reading, so that a huge file is not read into memory only to be refused.
  if (const auto size = fs::file_size(file, ec); !ec && size > kMaxImageFileBytes)
    throw std::runtime_error(file.string() + kTooLargeFile);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot open image file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(file.string() + ": read error");
  return bytes;
}

// (H, W, C) uint8 contiguous CPU, C in {1, 3, 4}; returns it ready for stb.
at::Tensor check_hwc(const fs::path& file, const at::Tensor& t) {
  if (!t.defined() || t.dim() != 3 || t.scalar_type() != at::kByte ||
      (t.size(2) != 1 && t.size(2) != 3 && t.size(2) != 4) || t.size(0) < 1 || t.size(1) < 1) {
    throw std::runtime_error(file.string() +
                             ": expected a (H, W, C) uint8 tensor with C = 1, 3 or 4, got " +
                             (t.defined() ? std::string(t.toString()) + " of shape " +
                                                c10::str(t.sizes())
                                          : std::string("an undefined tensor")));
  }
  return t.cpu().contiguous();
}

void write_file(const fs::path& file, const std::vector<uint8_t>& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(file.string() + ": cannot open for writing");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error(file.string() + ": write failed");
}

void append_bytes(void* ctx, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  v->insert(v->end(), p, p + size);
}

} // namespace

RgbImage decode_rgb(const std::vector<uint8_t>& bytes, const std::string& name_for_errors) {
  const std::string& name = name_for_errors;
  if (bytes.empty()) throw std::runtime_error(name + ": empty file, expected a PNG or JPEG image");
  const Format f = sniff(bytes);
  if (f == Format::unknown) throw std::runtime_error(name + ": " + describe_unknown(bytes));
  // The size the header claims is judged first: a header claiming 100000 x 100000 with no
  // pixel data after it is a bomb or a corrupt file, and "truncated" would send the user
  // looking for a cut-off download.
  if (const auto claimed = header_size(bytes, f); claimed && !image_size_fits(claimed->first, claimed->second))
    throw_image_too_large(name, claimed->first, claimed->second);
  if (f == Format::jpeg && !jpeg_complete(bytes)) {
    throw std::runtime_error(name + ": truncated JPEG (no end-of-image marker after the scan data)");
  }
  if (f == Format::png && !png_complete(bytes)) {
    throw std::runtime_error(name + ": truncated PNG (no IEND chunk at the end)");
  }
  if (bytes.size() > kMaxImageFileBytes) throw std::runtime_error(name + kTooLargeFile);
  if (f == Format::jpeg) {
    RgbImage img;
    std::string error;
    switch (decode_jpeg(bytes, img, error)) {
    case JpegOutcome::decoded: return img;
    case JpegOutcome::too_large: throw_image_too_large(name, img.width, img.height);
    case JpegOutcome::corrupt:
      throw std::runtime_error(name + ": cannot decode JPEG (" + error + "); the file is corrupt or truncated");
    case JpegOutcome::needs_stb: break;
    }
  }
  int w = 0, h = 0, comp = 0;
  // stb allocates what the header claims; read the claim first.
  if (stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp) == 0) {
    const char* why = stbi_failure_reason();
    throw std::runtime_error(name + ": cannot decode image (" + std::string(why != nullptr ? why : "unknown error") +
                             "); the file is corrupt or truncated");
  }
  if (!image_size_fits(w, h)) throw_image_too_large(name, w, h);
  std::unique_ptr<stbi_uc, decltype(&stbi_image_free)> data(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp, 3),
      &stbi_image_free);
  if (!data) {
    const char* why = stbi_failure_reason();
    throw std::runtime_error(name + ": cannot decode image (" +
                             std::string(why != nullptr ? why : "unknown error") +
                             "); the file is corrupt or truncated");
  }
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.assign(data.get(), data.get() + static_cast<std::size_t>(w) * h * 3);
  return img;
}

RgbImage resize_bicubic(const RgbImage& in, int64_t out_width, int64_t out_height) {
  if (out_width < 1 || out_height < 1 || in.width < 1 || in.height < 1 ||
      in.pixels.size() != static_cast<std::size_t>(in.width * in.height * 3)) {
    throw std::invalid_argument("resize_bicubic: bad sizes (in " + std::to_string(in.width) + "x" +
                                std::to_string(in.height) + ", out " + std::to_string(out_width) +
                                "x" + std::to_string(out_height) + ")");
  }
  // Horizontal first, then vertical, each skipped when that side keeps its size, as in PIL.
  RgbImage cur = in;
  if (out_width != in.width) cur = resample_horizontal(cur, static_cast<int>(out_width));
  if (out_height != in.height) cur = resample_vertical(cur, static_cast<int>(out_height));
  return cur;
}

at::Tensor decode_image_tensor(const std::vector<uint8_t>& bytes, const ImageProcessorConfig& config,
                               const std::string& name_for_errors) {
  if (config.size < 1 || config.mean.size() != 3 || config.std.size() != 3) {
    throw std::invalid_argument(name_for_errors +
                                ": ImageProcessorConfig needs size ≥ 1 and 3 mean / 3 std values");
  }
  const RgbImage img = resize_bicubic(decode_rgb(bytes, name_for_errors), config.size, config.size);
  const int64_t n = config.size * config.size;
  at::Tensor out = at::empty({3, config.size, config.size}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (int c = 0; c < 3; ++c) {
    // HF rescales in float64 then casts to float32, and normalises in float32.
    const auto mean = static_cast<float>(config.mean[static_cast<std::size_t>(c)]);
    const auto std = static_cast<float>(config.std[static_cast<std::size_t>(c)]);
    for (int64_t i = 0; i < n; ++i) {
      const auto x = static_cast<float>(img.pixels[static_cast<std::size_t>(i * 3 + c)] * (1.0 / 255.0));
      o[c * n + i] = (x - mean) / std;
    }
  }
  return out;
}

at::Tensor load_image_tensor(const fs::path& file, const ImageProcessorConfig& config) {
  return decode_image_tensor(read_bytes(file), config, file.string());
}

void write_png(const fs::path& file, const at::Tensor& rgb_uint8_hwc) {
  const at::Tensor t = check_hwc(file, rgb_uint8_hwc);
  const auto h = static_cast<int>(t.size(0)), w = static_cast<int>(t.size(1)),
             c = static_cast<int>(t.size(2));
  std::vector<uint8_t> buf;
  if (stbi_write_png_to_func(&append_bytes, &buf, w, h, c, t.data_ptr<uint8_t>(), w * c) == 0) {
    throw std::runtime_error(file.string() + ": PNG encoding failed");
  }
  write_file(file, buf);
}

void write_jpeg(const fs::path& file, const at::Tensor& rgb_uint8_hwc, int quality) {
  const at::Tensor t = check_hwc(file, rgb_uint8_hwc);
  const auto h = static_cast<int>(t.size(0)), w = static_cast<int>(t.size(1)),
             c = static_cast<int>(t.size(2));
  std::vector<uint8_t> buf;
  if (stbi_write_jpg_to_func(&append_bytes, &buf, w, h, c, t.data_ptr<uint8_t>(),
                             std::clamp(quality, 1, 100)) == 0) {
    throw std::runtime_error(file.string() + ": JPEG encoding failed");
  }
  write_file(file, buf);
}

} // namespace fedvlm
