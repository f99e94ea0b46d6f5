// model/bart_tokenizer.cpp — byte-level BPE (GPT-2 regex via PCRE2, merge ranks, added tokens).
#include "model/bart_tokenizer.hpp"

#include "model/bpe_files.hpp"
#include "model/byte_level.hpp"
#include "model/token_table.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace fedvlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The GPT-2 pre-tokenizer pattern, exactly as in HF `tokenizers` ByteLevel.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Above this many cached words new words are encoded but not remembered, so a long run over
// varied text cannot grow memory without bound (HF uses the same policy).
constexpr std::size_t kMaxCacheWords = 100000;

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}




std::shared_ptr<pcre2_code> compile_gpt2_regex() {
  // UCP makes \s and the classes Unicode-aware like HF's Oniguruma regex; MATCH_INVALID_UTF
  // lets arbitrary bytes through (they end up in the gaps between matches, see pre_tokenize).
  return compile_pretokenizer_regex(kGpt2Pattern, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                    "BartTokenizer: PCRE2 cannot compile the GPT-2 regex");
}


} // namespace

// ---------------------------------------------------------------------------------------------
// Impl
// ---------------------------------------------------------------------------------------------

struct BartTokenizer::Impl : TokenTable {
  enum Kind : uint8_t { kNone = kNoToken, kBpe = 1, kAdded = 2, kSpecial = 3 };
  struct Added {
    int64_t id = 0;
    bool lstrip = false;
    bool rstrip = false;
  };
  struct Cache {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int64_t>> words;
  };

  std::array<int64_t, 256> byte_ids{};
  std::unordered_map<std::string, Added> added;
  std::vector<std::size_t> added_lengths; // distinct lengths, longest first
  std::array<bool, 256> added_first_byte{};
  bool add_prefix_space = false;
  int64_t bos = -1, pad = -1, eos = -1, unk = -1;
  std::shared_ptr<pcre2_code> regex;
  std::shared_ptr<Cache> cache = std::make_shared<Cache>();

  void add_added(const std::string& content, int64_t id, bool special, bool lstrip,
                 bool rstrip) {
    if (content.empty()) throw std::runtime_error(source + ": an added token is empty");
    set_token(id, content, special ? kSpecial : kAdded);
    added[content] = Added{id, lstrip, rstrip};
    added_first_byte[static_cast<unsigned char>(content[0])] = true;
    if (std::find(added_lengths.begin(), added_lengths.end(), content.size()) ==
        added_lengths.end()) {
      added_lengths.push_back(content.size());
      std::sort(added_lengths.rbegin(), added_lengths.rend());
    }
  }

  // Resolves ids that encode() needs; called once the tables are complete.
  void finish() {
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab.find(byte_level_symbol(static_cast<unsigned char>(b)));
      byte_ids[b] = it == vocab.end() ? -1 : it->second;
    }
    const auto need = [&](const char* tok) {
      const auto it = vocab.find(tok);
      if (it == vocab.end()) {
        throw std::runtime_error(source + ": no '" + std::string(tok) +
                                 "' token; expected a BART tokenizer with <s>, <pad>, </s>");
      }
      return it->second;
    };
    bos = need("<s>");
    pad = need("<pad>");
    eos = need("</s>");
    const auto u = vocab.find("<unk>");
    unk = u == vocab.end() ? -1 : u->second;
    regex = compile_gpt2_regex();
  }

  [[nodiscard]] std::vector<int64_t> bpe(std::string_view word) const {
    {
      std::lock_guard<std::mutex> lock(cache->mu);
      const auto it = cache->words.find(std::string(word));
      if (it != cache->words.end()) return it->second;
    }
    std::vector<int64_t> sym;
    sym.reserve(word.size());
    for (const char c : word) {
      const int64_t id = byte_ids[static_cast<unsigned char>(c)];
      if (id >= 0) {
        sym.push_back(id);
      } else if (unk >= 0) {
        sym.push_back(unk);
      } else {
        throw std::runtime_error(source + ": the vocabulary has no symbol for byte " +
                                 std::to_string(static_cast<unsigned char>(c)) +
                                 " and no <unk>; not a byte-level BPE vocabulary");
      }
    }
    // GPT-2's loop: merge every occurrence of the best-ranked pair, until no pair is a merge.
    bpe_apply(sym, merges);
    std::lock_guard<std::mutex> lock(cache->mu);
    if (cache->words.size() < kMaxCacheWords) cache->words.emplace(std::string(word), sym);
    return sym;
  }

  // GPT-2 regex pieces of a segment with no added tokens, each BPE-encoded onto `out`.
  void encode_segment(std::string_view seg, std::vector<int64_t>& out) const {
    std::string prefixed;
    if (add_prefix_space && !seg.empty() && !is_ascii_space(seg.front())) {
      prefixed = " " + std::string(seg);
      seg = prefixed;
    }
    const auto emit = [&](std::size_t from, std::size_t to) {
      if (to <= from) return;
      const auto ids = bpe(seg.substr(from, to - from));
      out.insert(out.end(), ids.begin(), ids.end());
    };
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(regex.get(), nullptr), &pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(seg.data());
    std::size_t pos = 0;
    while (pos < seg.size()) {
      const int rc = pcre2_match(regex.get(), subject, seg.size(), pos, 0, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        std::array<PCRE2_UCHAR, 256> msg{};
        pcre2_get_error_message(rc, msg.data(), msg.size());
        throw std::runtime_error(std::string("BartTokenizer: regex match failed: ") +
                                 reinterpret_cast<const char*>(msg.data()));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      // Only invalid UTF-8 leaves gaps (every valid character matches some branch); keeping
      // them as their own pieces means no input byte is ever dropped.
      emit(pos, ov[0]);
      emit(ov[0], ov[1]);
      pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1; // the pattern cannot match empty; be safe
    }
    emit(pos, seg.size());
  }
};

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

namespace {

using Impl = BartTokenizer::Impl;

bool json_bool(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// Whether a pre_tokenizer (possibly a Sequence) includes ByteLevel, and its add_prefix_space.
bool find_byte_level(const json& pt, bool& add_prefix_space) {
  if (!pt.is_object()) return false;
  const auto t = pt.find("type");
  const std::string type = t != pt.end() && t->is_string() ? t->get<std::string>() : "";
  if (type == "ByteLevel") {
    add_prefix_space = json_bool(pt, "add_prefix_space");
    return true;
  }
  if (type == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array()) {
    for (const auto& p : pt["pretokenizers"]) {
      if (find_byte_level(p, add_prefix_space)) return true;
    }
  }
  return false;
}



std::shared_ptr<Impl> load_tokenizer_json(const fs::path& file) {
  auto impl = std::make_shared<Impl>();
  impl->source = file.string();
  const json j = parse_tokenizer_json(file, "expected a Hugging Face tokenizer.json");
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    throw std::runtime_error(impl->source +
                             ": no \"model\" object; expected a Hugging Face tokenizer.json");
  }
  const json& model = j["model"];
  if (model.contains("type") && model["type"] != "BPE") {
    throw std::runtime_error(impl->source + ": model.type is " + model["type"].dump() +
                             "; expected \"BPE\" (byte-level BPE as in BART / GPT-2)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      throw std::runtime_error(impl->source + ": model." + key +
                               " is set; only plain byte-level BPE is supported");
    }
  }
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null() &&
      !find_byte_level(j["pre_tokenizer"], impl->add_prefix_space)) {
    throw std::runtime_error(impl->source +
                             ": pre_tokenizer is not ByteLevel; expected a byte-level BPE "
                             "tokenizer (BART / GPT-2)");
  }
  if (!model.contains("vocab")) {
    throw std::runtime_error(impl->source + ": model.vocab is missing");
  }
  read_vocab(*impl, model["vocab"], impl->source + ": model.vocab", Impl::kBpe);

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const json& at = j["added_tokens"];
    if (!at.is_array()) throw std::runtime_error(impl->source + ": added_tokens is not an array");
    for (std::size_t i = 0; i < at.size(); ++i) {
      const json& t = at[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string()) {
        throw std::runtime_error(impl->source + ": added_tokens[" + std::to_string(i) +
                                 "] needs an integer \"id\" and a string \"content\"");
      }
      impl->add_added(t["content"].get<std::string>(), t["id"].get<int64_t>(),
                      json_bool(t, "special"), json_bool(t, "lstrip"), json_bool(t, "rstrip"));
    }
  }

  if (!model.contains("merges") || !model["merges"].is_array()) {
    throw std::runtime_error(impl->source + ": model.merges is missing or not an array");
  }
  for_each_json_merge(model["merges"], impl->source,
                      [&impl](const std::string& x, const std::string& y, std::size_t rank, const std::string& where) {
                        impl->add_merge(x, y, rank, where);
                      });
  impl->finish();
  return impl;
}

/// The tokens special_tokens_map.json names (strings or {"content": ...}, also in lists), and
/// BART's five, which the slow tokenizer never splits.
std::unordered_set<std::string> special_tokens(const fs::path& dir) {
  std::unordered_set<std::string> specials{"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
  const fs::path map_file = dir / "special_tokens_map.json";
  if (!fs::is_regular_file(map_file)) return specials;
  const json m = parse_tokenizer_json(map_file, "expected special_tokens_map.json");
  const auto take = [&](const json& v) {
    if (v.is_string()) specials.insert(v.get<std::string>());
    if (v.is_object() && v.contains("content") && v["content"].is_string()) specials.insert(v["content"].get<std::string>());
  };
  if (!m.is_object()) return specials;
  for (const auto& [key, v] : m.items()) {
    if (v.is_array()) {
      for (const auto& e : v) take(e);
    } else {
      take(v);
    }
  }
  return specials;
}

std::shared_ptr<Impl> load_vocab_merges(const fs::path& dir) {
  auto impl = std::make_shared<Impl>();
  const fs::path merges_file = read_vocab_json(*impl, dir, Impl::kBpe);
  const std::string vocab_source = impl->source;

  std::unordered_set<std::string> specials = special_tokens(dir);
  const fs::path added_file = dir / "added_tokens.json";
  if (fs::is_regular_file(added_file)) {
    impl->source = added_file.string();
    const json a = parse_tokenizer_json(added_file, "expected added_tokens.json: {token: id}");
    if (!a.is_object()) {
      throw std::runtime_error(impl->source + ": must be an object mapping token to id");
    }
    for (const auto& [tok, id] : a.items()) {
      if (!id.is_number_integer()) {
        throw std::runtime_error(impl->source + ": the id of '" + tok + "' is not an integer");
      }
      // BartTokenizer (slow) always builds <mask> with lstrip=True.
      impl->add_added(tok, id.get<int64_t>(), specials.count(tok) > 0, tok == "<mask>", false);
    }
    impl->source = vocab_source;
  }
  for (const auto& s : specials) {
    const auto it = impl->vocab.find(s);
    if (it != impl->vocab.end() && impl->added.count(s) == 0) {
      // <mask> strips the space before it, as in BART's tokenizer.json.
      impl->add_added(s, it->second, true, s == "<mask>", false);
    }
  }

  read_merges_txt(*impl, merges_file);
  impl->finish();
  return impl;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// BartTokenizer
// ---------------------------------------------------------------------------------------------

BartTokenizer::BartTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

BartTokenizer BartTokenizer::load(const fs::path& file_or_dir) {
  const TokenizerSource source = locate_tokenizer(file_or_dir);
  return BartTokenizer(source.json ? load_tokenizer_json(source.path) : load_vocab_merges(source.path));
}

std::vector<int64_t> BartTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& im = *impl_;
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out.push_back(im.bos);

  // Leftmost-longest search for added tokens, as HF's Aho-Corasick matcher does; probing only
  // the distinct lengths keeps it cheap with Florence-2's 1029 added tokens.
  std::size_t seg_start = 0;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const Impl::Added* match = nullptr;
    std::size_t match_len = 0;
    if (im.added_first_byte[static_cast<unsigned char>(text[i])]) {
      for (const std::size_t len : im.added_lengths) {
        if (i + len > n) continue;
        const auto it = im.added.find(std::string(text.substr(i, len)));
        if (it != im.added.end()) {
          match = &it->second;
          match_len = len;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    std::size_t seg_end = i;
    if (match->lstrip) {
      while (seg_end > seg_start && is_ascii_space(text[seg_end - 1])) --seg_end;
    }
    im.encode_segment(text.substr(seg_start, seg_end - seg_start), out);
    out.push_back(match->id);
    i += match_len;
    if (match->rstrip) {
      while (i < n && is_ascii_space(text[i])) ++i;
    }
    seg_start = i;
  }
  im.encode_segment(text.substr(seg_start), out);
  if (add_special_tokens) out.push_back(im.eos);
  return out;
}

std::string BartTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  std::string bytes;
  for (const int64_t id : ids) {
    if (!im.holds(id)) {
      throw std::out_of_range(im.source + ": decode: id " + std::to_string(id) +
                              " names no token (vocab size " + std::to_string(vocab_size()) +
                              ")");
    }
    const auto k = im.kind[static_cast<std::size_t>(id)];
    const std::string& tok = im.id_to_token[static_cast<std::size_t>(id)];
    if (k == Impl::kSpecial && skip_special_tokens) continue;
    if (k != Impl::kBpe) { // added tokens are literal text, not byte symbols
      bytes += tok;
      continue;
    }
    byte_level_decode(tok, bytes);
  }
  return utf8_lossy(bytes);
}

int64_t BartTokenizer::token_id(std::string_view token) const { return impl_->token_id(token); }
bool BartTokenizer::has_token(std::string_view token) const { return impl_->has_token(token); }
std::string BartTokenizer::id_to_token(int64_t id) const { return impl_->token_at(id); }
int64_t BartTokenizer::vocab_size() const { return impl_->size(); }
int64_t BartTokenizer::bos_id() const { return impl_->bos; }
int64_t BartTokenizer::pad_id() const { return impl_->pad; }
int64_t BartTokenizer::eos_id() const { return impl_->eos; }
int64_t BartTokenizer::unk_id() const { return impl_->unk; }

void BartTokenizer::add_special_tokens(const std::vector<std::string>& tokens) {
  // Copy on write: other copies of this tokenizer keep their tables (the word cache stays
  // shared, since added tokens never change how a plain word is merged).
  auto copy = std::make_shared<Impl>(*impl_);
  for (const auto& t : tokens) {
    const auto it = copy->vocab.find(t);
    const int64_t id = it != copy->vocab.end() ? it->second
                                               : static_cast<int64_t>(copy->kind.size());
    copy->add_added(t, id, true, false, false);
  }
  impl_ = std::move(copy);
}

} // namespace fedvlm
