// model/clip_tiny_tokenizer.cpp — writes the tiny CLIP tokenizer.json: CLIP's byte layout, one merge chain per caption word.
#include "model/clip_tiny_tokenizer.hpp"

#include "model/byte_level.hpp"
#include "model/clip_tokenizer.hpp"


#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>

namespace fedvlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// The tiny Fashion-MNIST tokenizer
// ---------------------------------------------------------------------------------------------

namespace {

// Bytes in CLIP's vocabulary order: the printable ones (standing for themselves) first, then
// the rest in byte order — the order of `bytes_to_unicode().values()` in CLIP.
std::vector<unsigned char> clip_byte_order() {
  std::vector<unsigned char> order;
  const auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  };
  for (int b = 0; b < 256; ++b) {
    if (printable(b)) order.push_back(static_cast<unsigned char>(b));
  }
  for (int b = 0; b < 256; ++b) {
    if (!printable(b)) order.push_back(static_cast<unsigned char>(b));
  }
  return order;
}

// Each caption word spelled out as a left-to-right chain of merges: "p h", "ph o", "pho t",
// "phot o</w>". Words are listed so that no earlier merge applies inside a later word and
// breaks its chain (clip_tokenizer_test checks every word ends up as one token).
const std::vector<std::string>& tiny_words() {
  static const std::vector<std::string> w = {"photo", "of",      "shirt", "top",  "trouser",
                                             "pullover", "dress", "coat", "sandal", "sneaker",
                                             "bag",   "ankle",   "boot"};
  return w;
}

std::vector<std::pair<std::string, std::string>> tiny_merges() {
  std::vector<std::pair<std::string, std::string>> m;
  for (const auto& word : tiny_words()) {
    std::string prefix(1, word[0]);
    for (std::size_t i = 1; i < word.size(); ++i) {
      std::string next(1, word[i]);
      if (i + 1 == word.size()) next += kClipEow;
      m.emplace_back(prefix, next);
      prefix += word[i];
    }
  }
  return m;
}

} // namespace

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"t-shirt/top", "trouser", "pullover", "dress",
                                                 "coat",        "sandal",  "shirt",    "sneaker",
                                                 "bag",         "ankle boot"};
  return names;
}

int64_t tiny_clip_vocab_size() { return 512 + static_cast<int64_t>(tiny_merges().size()) + 2; }

void write_tiny_clip_tokenizer_json(const fs::path& file) {
  json vocab = json::object();
  const auto order = clip_byte_order();
  for (std::size_t i = 0; i < order.size(); ++i) {
    vocab[byte_level_symbol(order[i])] = static_cast<int64_t>(i);
    vocab[byte_level_symbol(order[i]) + kClipEow] = static_cast<int64_t>(256 + i);
  }
  json merges = json::array();
  int64_t next = 512;
  for (const auto& [a, b] : tiny_merges()) {
    vocab[a + b] = next++;
    merges.push_back(a + " " + b);
  }
  json added = json::array();
  for (const char* t : {kClipSot, kClipEot}) {
    vocab[t] = next;
    added.push_back({{"id", next},
                     {"content", t},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", true},
                     {"special", true}});
    ++next;
  }
  const json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", kClipEot},
        {"continuing_subword_prefix", ""}, {"end_of_word_suffix", kClipEow}, {"fuse_unk", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(file.string() + ": cannot open for writing");
  out << j.dump(1) << '\n';
  out.close();
  if (!out) throw std::runtime_error(file.string() + ": write failed");
}

} // namespace fedvlm
