// model/florence2_tokens.cpp — Florence-2's added tokens in id order; the tiny tokenizer.json writer.
#include "model/florence2_tokens.hpp"

#include "model/byte_level.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>
#include <utility>

namespace fedvlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Florence-2 tokens and the tiny test tokenizer
// ---------------------------------------------------------------------------------------------

std::vector<std::string> florence2_added_tokens() {
  std::vector<std::string> t{"<od>", "</od>", "<ocr>", "</ocr>"};
  t.reserve(1024);
  for (int k = 0; k < 1000; ++k) t.push_back("<loc_" + std::to_string(k) + ">");
  // Spellings (including "desciption") are Florence-2's own; ids depend on this exact order.
  for (const char* s :
       {"<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>", "<grounding>",
        "</grounding>", "<seg>", "</seg>", "<sep>", "<region_cap>", "</region_cap>",
        "<region_to_desciption>", "</region_to_desciption>", "<proposal>", "</proposal>",
        "<poly>", "</poly>", "<and>"}) {
    t.emplace_back(s);
  }
  return t;
}

void write_tiny_tokenizer_json(const fs::path& file) {
  // Order matters: a pair listed earlier merges first, so e.g. "a r" precedes "r e" to keep
  // "Ġsquare" whole, and "g r" precedes "r e" for "green".
  static const std::vector<std::pair<std::string, std::string>> kMerges = {
      {"W", "h"},    {"a", "t"},    {"Wh", "at"},     {"Ġ", "c"},     {"o", "l"},
      {"o", "r"},    {"Ġc", "ol"},  {"Ġcol", "or"},   {"Ġ", "i"},     {"Ġi", "s"},
      {"Ġ", "t"},    {"h", "e"},    {"Ġt", "he"},     {"Ġ", "s"},     {"q", "u"},
      {"a", "r"},    {"ar", "e"},   {"Ġs", "qu"},     {"Ġsqu", "are"}, {"g", "r"},
      {"r", "e"},    {"re", "d"},   {"e", "e"},       {"gr", "ee"},   {"gree", "n"},
      {"b", "l"},    {"u", "e"},    {"bl", "ue"},     {"e", "l"},     {"o", "w"},
      {"l", "ow"},   {"y", "el"},   {"yel", "low"},   {"h", "i"},     {"hi", "t"},
      {"w", "hit"},  {"whit", "e"}, {"a", "c"},       {"bl", "ac"},   {"blac", "k"},
  };
  json vocab = json::object();
  json added = json::array();
  const std::array<const char*, 4> specials{"<s>", "<pad>", "</s>", "<unk>"};
  for (int i = 0; i < 4; ++i) {
    vocab[specials[i]] = i;
    added.push_back({{"id", i},
                     {"content", specials[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  for (int b = 0; b < 256; ++b) vocab[byte_level_symbol(static_cast<unsigned char>(b))] = 4 + b;
  json merges = json::array();
  int next = 260;
  for (const auto& [a, b] : kMerges) {
    vocab[a + b] = next++;
    merges.push_back(a + " " + b);
  }
  const json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor",
       {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 0}},
        {"trim_offsets", true}, {"add_prefix_space", false}}},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""},
        {"fuse_unk", false}, {"vocab", vocab}, {"merges", merges}}},
  };
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(file.string() + ": cannot open for writing");
  out << j.dump(2) << '\n';
  out.close();
  if (!out) throw std::runtime_error(file.string() + ": write failed");
}

} // namespace fedvlm
