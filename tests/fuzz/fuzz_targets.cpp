// tests/fuzz/fuzz_targets.cpp — the harness bodies: each hands fuzzed bytes to one parser and treats std::exception as a clean rejection.
#include "tests/fuzz/fuzz_targets.hpp"

#include "fl/config/experiment_toml.hpp"
#include "fl/data/image_dataset.hpp"
#include "fl/data/vqa_dataset.hpp"
#include "model/bart_tokenizer.hpp"
#include "model/image_processor.hpp"
#include "model/safetensors.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string_view>

namespace fedvlm::fuzz {

namespace {

namespace fs = std::filesystem;

// A per-process directory for readers that only take paths. /dev/shm keeps millions of
// rewrites off the disk; the pid keeps parallel runs (and the replay test) apart.
class ScratchDir {
public:
  explicit ScratchDir(const std::string& target) {
    std::error_code ec;
    const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm")
                                                           : fs::temp_directory_path();
    path_ = base / ("fedvlm-fuzz-" + target + "-" + std::to_string(::getpid()));
    fs::create_directories(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  [[nodiscard]] const fs::path& path() const { return path_; }

  /// Writes `bytes` to `name` inside the directory, replacing what the last input left.
  [[nodiscard]] fs::path write(const std::string& name, std::string_view bytes) const {
    const fs::path file = path_ / name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    // A scratch write that fails would make every later input test nothing: stop loudly.
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", file.c_str());
      std::abort();
    }
    return file;
  }

  void remove(const std::string& name) const {
    std::error_code ec;
    fs::remove(path_ / name, ec);
  }

private:
  fs::path path_;
};

// Runs one parse; the parsers report bad input by throwing, which is the outcome we want.
template <typename Body>
int guarded(Body&& body) {
  try {
    body();
  } catch (const std::exception&) {
  }
  return 0;
}

std::string_view as_text(const uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

} // namespace

TwoParts split_two_parts(const uint8_t* data, std::size_t size) {
  if (size < 2) return {};
  const std::size_t n = std::min<std::size_t>(data[0] | (std::size_t{data[1]} << 8), size - 2);
  return {std::string(as_text(data + 2, n)), std::string(as_text(data + 2 + n, size - 2 - n))};
}

std::string join_two_parts(const std::string& first, const std::string& second) {
  if (first.size() > 0xFFFF) {
    std::fprintf(stderr, "join_two_parts: first part of %zu bytes exceeds 65535\n", first.size());
    std::abort();
  }
  std::string out;
  out.push_back(static_cast<char>(first.size() & 0xFF));
  out.push_back(static_cast<char>(first.size() >> 8));
  return out + first + second;
}

int fuzz_experiment_toml(const uint8_t* data, std::size_t size) {
  return guarded([&] { (void)parse_experiment(as_text(data, size), "fuzz.toml"); });
}

int fuzz_safetensors(const uint8_t* data, std::size_t size) {
  static const ScratchDir dir("safetensors");
  const fs::path file = dir.write("fuzz.safetensors", as_text(data, size));
  return guarded([&] { (void)safetensors_load(file); });
}

int fuzz_image_dataset(const uint8_t* data, std::size_t size) {
  static const ScratchDir dir("image_dataset");
  if (size < 1) return 0;
  const bool cifar = (data[0] & 1) != 0;
  const TwoParts parts = split_two_parts(data + 1, size - 1);
  if (cifar) {
    if (parts.first.empty())
      dir.remove("batches.meta.txt");
    else
      (void)dir.write("batches.meta.txt", parts.first);
    (void)dir.write("test_batch.bin", parts.second);
    return guarded([&] { (void)load_cifar10(dir.path(), DataSplit::test); });
  }
  (void)dir.write("t10k-labels-idx1-ubyte", parts.first);
  (void)dir.write("t10k-images-idx3-ubyte", parts.second);
  return guarded([&] { (void)load_fashion_mnist(dir.path(), DataSplit::test); });
}

int fuzz_vqa_metadata(const uint8_t* data, std::size_t size) {
  static const ScratchDir dir("vqa_metadata");
  // Images that valid lines can name; the loader checks they exist, it does not decode them.
  static const bool images_written = [] {
    fs::create_directories(dir.path() / "images");
    (void)dir.write("a.png", "");
    (void)dir.write("images/0.png", "");
    return true;
  }();
  (void)images_written;
  (void)dir.write("metadata.jsonl", as_text(data, size));
  return guarded([&] { (void)load_vqa_folder(dir.path()).domain_ids(); });
}

int fuzz_image_decode(const uint8_t* data, std::size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  return guarded([&] {
    const RgbImage img = decode_rgb(bytes, "fuzz");
    // The header's contract: 3 bytes per pixel, nothing more or less. A zero side is let
    // through here (a BMP of height 0 decodes to 65537x0, corpus crash-bmp-65537x0): every
    // caller goes through resize_bicubic, which rejects it with std::invalid_argument.
    if (img.width < 0 || img.height < 0 ||
        img.pixels.size() != static_cast<std::size_t>(img.width * img.height * 3)) {
      std::fprintf(stderr, "decode_rgb: %lldx%lld image with %zu bytes of pixels\n",
                   static_cast<long long>(img.width), static_cast<long long>(img.height),
                   img.pixels.size());
      std::abort();
    }
  });
}

int fuzz_bart_tokenizer(const uint8_t* data, std::size_t size) {
  static const ScratchDir dir("bart_tokenizer");
  const TwoParts parts = split_two_parts(data, size);
  const fs::path file = dir.write("tokenizer.json", parts.first);
  return guarded([&] {
    const BartTokenizer tok = BartTokenizer::load(file);
    (void)tok.decode(tok.encode(parts.second, true), false);
    (void)tok.decode(tok.encode(parts.second, false), true);
  });
}

const std::vector<FuzzTarget>& fuzz_targets() {
  static const std::vector<FuzzTarget> targets{
      {"experiment_toml", &fuzz_experiment_toml}, {"safetensors", &fuzz_safetensors},
      {"image_dataset", &fuzz_image_dataset},     {"vqa_metadata", &fuzz_vqa_metadata},
      {"image_decode", &fuzz_image_decode},       {"bart_tokenizer", &fuzz_bart_tokenizer},
  };
  return targets;
}

} // namespace fedvlm::fuzz
