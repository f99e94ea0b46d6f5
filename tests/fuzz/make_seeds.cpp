// tests/fuzz/make_seeds.cpp — writes the small valid seed inputs of tests/fuzz/corpus/ with the project's own writers.
//
// Usage: make_seeds TESTS_FUZZ_DIR (scripts/fuzz.sh seeds). Deterministic; corpus files are
// named seed-*, so rerunning replaces them and leaves the crash-/timeout-/oom- regression
// inputs alone. It also writes the hand-made pending/image_decode/oom-jpeg-65000x65000.
#include "tests/fuzz/fuzz_targets.hpp"
#include "model/florence2_tokens.hpp"

#include "model/bart_tokenizer.hpp"
#include "model/image_processor.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <zlib.h>

#include <cstdio> // jpeglib.h needs FILE
#include <jpeglib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace {

namespace fs = std::filesystem;
using fedvlm::fuzz::join_two_parts;

fs::path g_dir; // tests/fuzz

void write_file(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  write_file(g_dir / "corpus" / target / ("seed-" + name), bytes);
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writers that only take a path go through this scratch file.
const fs::path& scratch() {
  static const fs::path p = fs::temp_directory_path() / "fedvlm-make-seeds.tmp";
  return p;
}

std::string gzip(const std::string& bytes) {
  gzFile f = gzopen(scratch().c_str(), "wb9");
  if (f == nullptr) throw std::runtime_error("gzopen failed");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  return slurp(scratch());
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// JPEG seeds come from libjpeg's encoder, not the project's write_jpeg: stb_image_write's
// encoder shifts a negative int (UBSan stops there), and libjpeg is what most real JPEGs
// come from. `components` 1 = grey, 3 = RGB; progressive adds the multi-scan code paths.
std::string encode_jpeg(int width, int height, int components, bool progressive) {
  std::vector<uint8_t> pixels(static_cast<std::size_t>(width * height * components));
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37 % 251);
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr jerr{};
  cinfo.err = jpeg_std_error(&jerr); // errors exit(): acceptable for a seed generator
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  jpeg_mem_dest(&cinfo, &buf, &len);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = components;
  cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 75, TRUE);
  if (progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = &pixels[static_cast<std::size_t>(cinfo.next_scanline) * width * components];
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<const char*>(buf), len);
  jpeg_destroy_compress(&cinfo);
  std::free(buf);
  return out;
}

void experiment_toml_seeds() {
  // The shipped experiments cover every section; two short ones keep mutations cheap.
  for (const auto& e : fs::directory_iterator(g_dir / ".." / ".." / "experiments"))
    if (e.path().extension() == ".toml") put("experiment_toml", e.path().filename().string(), slurp(e.path()));
  put("experiment_toml", "minimal.toml", "name = \"m\"\n[model]\narch = \"mobilenet_v3_small\"\n");
  put("experiment_toml", "sweep.toml",
      "name = \"s\"\n[federation]\nclients = [2, 4]\nrounds = 1\n[strategy]\nname = [\"fedavg\", \"plora\"]\n"
      "[lora]\nrank = 4\ntargets = [\"a\", \"b\"]\n");
}

void safetensors_seeds() {
  const auto save = [](const std::string& name, const fedvlm::TensorMap& t,
                       const std::map<std::string, std::string>& meta) {
    fedvlm::safetensors_save(scratch(), t, meta);
    put("safetensors", name, slurp(scratch()));
  };
  save("f32.safetensors", {{"w", at::arange(6, at::kFloat).reshape({2, 3})}}, {});
  save("mixed.safetensors",
       {{"a.bias", at::ones({3}, at::kHalf)},
        {"b.mask", at::arange(3, at::kLong).remainder(2).to(at::kBool)},
        {"c.ids", at::arange(2, at::kLong)},
        {"d.empty", at::empty({0, 4}, at::kBFloat16)},
        {"e.scalar", at::scalar_tensor(1.5, at::kDouble)}},
       {{"format", "pt"}});
  save("ints.safetensors",
       {{"i8", at::arange(4, at::kChar)}, {"u8", at::arange(4, at::kByte)},
        {"i16", at::arange(2, at::kShort)}, {"i32", at::arange(2, at::kInt)}},
       {});
}

void image_dataset_seeds() {
  // IDX: 2 labelled 28×28 images, plain and gzip-compressed (selector byte 0 = IDX).
  const std::string labels = be32(2049) + be32(2) + std::string("\x03\x07", 2);
  std::string images = be32(2051) + be32(2) + be32(28) + be32(28);
  for (int i = 0; i < 2 * 28 * 28; ++i) images.push_back(static_cast<char>(i * 7));
  put("image_dataset", "idx-plain", std::string(1, '\0') + join_two_parts(labels, images));
  put("image_dataset", "idx-gzip", std::string(1, '\0') + join_two_parts(gzip(labels), gzip(images)));
  // CIFAR-10 (selector byte 1): one record, with and without batches.meta.txt.
  std::string record(1, '\x05');
  for (int i = 0; i < 3072; ++i) record.push_back(static_cast<char>(i * 13));
  put("image_dataset", "cifar-no-meta", std::string(1, '\1') + join_two_parts("", record));
  put("image_dataset", "cifar-meta",
      std::string(1, '\1') +
          join_two_parts("airplane\r\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
                         record));
}

void vqa_metadata_seeds() {
  put("vqa_metadata", "answer.jsonl",
      "{\"file_name\": \"a.png\", \"question\": \"What color is the square?\", \"answer\": \"red\", "
      "\"origin_dataset\": \"vqav2\"}\n"
      "\n"
      "{\"file_name\": \"images/0.png\", \"question\": \"Q?\", \"answer\": \"blue\", "
      "\"origin_dataset\": 7}\n");
  put("vqa_metadata", "chosen-bom-crlf.jsonl",
      "\xEF\xBB\xBF{\"file_name\":\"images/0.png\",\"question\":\"q\",\"answer\":null,"
      "\"chosen\":\"c\",\"origin_dataset\":\"d\"}\r\n");
  put("vqa_metadata", "bad-path.jsonl",
      "{\"file_name\": \"../a.png\", \"question\": \"q\", \"answer\": \"a\", \"origin_dataset\": \"d\"}\n");
}

void image_decode_seeds() {
  const at::Tensor rgb = at::arange(4 * 3 * 3, at::kInt).remainder(256).to(at::kByte).reshape({4, 3, 3});
  const at::Tensor rgba = at::full({2, 2, 4}, 200, at::kByte);
  fedvlm::write_png(scratch(), rgb);
  put("image_decode", "rgb.png", slurp(scratch()));
  fedvlm::write_png(scratch(), rgba);
  put("image_decode", "rgba.png", slurp(scratch()));
  put("image_decode", "grey.jpg", encode_jpeg(8, 8, 1, false));
  put("image_decode", "progressive.jpg", encode_jpeg(9, 5, 3, true));
  const std::string jpeg = encode_jpeg(8, 8, 3, false);
  put("image_decode", "rgb.jpg", jpeg);
  // 1×1 24-bit BMP and 1×1 GIF89a, by hand: stb reads both.
  put("image_decode", "1x1.bmp",
      std::string("BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\x18\0\0\0\0\0"
                  "\x04\0\0\0\x13\x0b\0\0\x13\x0b\0\0\0\0\0\0\0\0\0\0\x10\x20\x30\0",
                  58));
  put("image_decode", "1x1.gif",
      std::string("GIF89a\x01\0\x01\0\x80\0\0\xff\0\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0;", 35));

  // Finding: a JPEG whose SOF0 claims 65000×65000 made decode_rgb size the pixel buffer from
  // the header (12 GB). Replaying it would exhaust memory until the dimension check in
  // model/image_processor.cpp lands, so it waits in pending/.
  std::string huge = jpeg;
  for (std::size_t i = 2; i + 8 < huge.size(); ++i) {
    if (static_cast<uint8_t>(huge[i]) == 0xFF && static_cast<uint8_t>(huge[i + 1]) == 0xC0) {
      huge[i + 5] = static_cast<char>(0xFD); // height 65000 = 0xFDE8
      huge[i + 6] = static_cast<char>(0xE8);
      huge[i + 7] = static_cast<char>(0xFD); // width
      huge[i + 8] = static_cast<char>(0xE8);
      break;
    }
  }
  write_file(g_dir / "pending" / "image_decode" / "oom-jpeg-65000x65000", huge);
}

void bart_tokenizer_seeds() {
  fedvlm::write_tiny_tokenizer_json(scratch());
  const std::string tiny = slurp(scratch());
  put("bart_tokenizer", "tiny-vqa", join_two_parts(tiny, "What color is the square? red"));
  put("bart_tokenizer", "tiny-unicode", join_two_parts(tiny, "<s>h\xC3\xA9llo  \xF0\x9F\x99\x82 \xFF\xFE</s>"));
  // Smallest accepted shape: specials, two byte symbols, one merge, an lstrip added token.
  const std::string small =
      R"({"added_tokens":[{"id":0,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true},)"
      R"({"id":6,"content":"<mask>","special":true,"lstrip":true}],)"
      R"("pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"ByteLevel","add_prefix_space":true}]},)"
      R"("model":{"type":"BPE","vocab":{"<s>":0,"<pad>":1,"</s>":2,"<unk>":3,"a":4,"b":5,"ab":7,"abb":8},)"
      R"("merges":["a b",["ab","b"]]}})";
  put("bart_tokenizer", "small", join_two_parts(small, "ab <mask> ba abc"));
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TESTS_FUZZ_DIR\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  try {
    experiment_toml_seeds();
    safetensors_seeds();
    image_dataset_seeds();
    vqa_metadata_seeds();
    image_decode_seeds();
    bart_tokenizer_seeds();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  std::error_code ec;
  fs::remove(scratch(), ec);
  return 0;
}
