// model/clip_tokenizer.cpp — CLIP text cleaning, PCRE2 pre-tokenizer, BPE with </w>, loading.
#include "model/clip_tokenizer.hpp"

#include "model/bpe_files.hpp"
#include "model/byte_level.hpp"
#include "model/token_table.hpp"
#include "model/json_error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace fedvlm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {


// CLIP's pre-tokenizer pattern (clip/simple_tokenizer.py), compiled case-insensitive as there.
constexpr const char* kClipPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";

// Above this many cached words new words are encoded but not remembered (as in BartTokenizer).
constexpr std::size_t kMaxCacheWords = 100000;

// -- Unicode tables -----------------------------------------------------------------------------

struct CpRange {
  uint32_t first, last;
};
struct LowerRun {
  uint32_t first, last;
  int32_t stride, delta;
};

#include "model/clip_unicode_tables.inc"

template <std::size_t N>
bool in_ranges(const CpRange (&table)[N], uint32_t cp) {
  const auto* end = table + N;
  const auto* it =
      std::upper_bound(table, end, cp, [](uint32_t c, const CpRange& r) { return c < r.first; });
  return it != table && cp <= (it - 1)->last;
}

bool is_space(uint32_t cp) { return in_ranges(kSpaceRanges, cp); }
bool is_cased(uint32_t cp) { return in_ranges(kCasedRanges, cp); }
bool is_case_ignorable(uint32_t cp) { return in_ranges(kCaseIgnorableRanges, cp); }

// Simple lower-case mapping (U+0130 and the capital sigma are handled by the caller).
uint32_t lower_simple(uint32_t cp) {
  if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
  const auto* end = std::end(kLowerRuns);
  const auto* it = std::upper_bound(std::begin(kLowerRuns), end, cp,
                                    [](uint32_t c, const LowerRun& r) { return c < r.first; });
  if (it == std::begin(kLowerRuns)) return cp;
  const LowerRun& r = *(it - 1);
  if (cp > r.last || (cp - r.first) % static_cast<uint32_t>(r.stride) != 0) return cp;
  return static_cast<uint32_t>(static_cast<int64_t>(cp) + r.delta);
}

// Python's Final_Sigma test for the capital sigma at cps[i]: a cased letter before it and none
// after it, case-ignorable characters skipped on both sides.
bool final_sigma(const std::vector<uint32_t>& cps, std::size_t i) {
  std::size_t j = i;
  while (j > 0 && is_case_ignorable(cps[j - 1])) --j;
  if (j == 0 || !is_cased(cps[j - 1])) return false;
  std::size_t k = i + 1;
  while (k < cps.size() && is_case_ignorable(cps[k])) ++k;
  return k == cps.size() || !is_cased(cps[k]);
}

// -- files and JSON -----------------------------------------------------------------------------



// A token named by a special-tokens entry: "text" or {"content": "text", ...}; empty if neither.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) {
    const auto it = v.find("content");
    if (it != v.end() && it->is_string()) return it->get<std::string>();
  }
  return {};
}


std::shared_ptr<pcre2_code> compile_clip_regex() {
  // UCP makes \s and the classes Unicode-aware; CASELESS as CLIP's re.IGNORECASE (it only
  // matters for U+017F LONG S, which matches 's' in "'s" and "<|startoftext|>"). The subject is
  // always valid UTF-8 (clean_text made it so).
  return compile_pretokenizer_regex(kClipPattern, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS,
                                    "ClipTokenizer: PCRE2 cannot compile CLIP's regex");
}


} // namespace

// ---------------------------------------------------------------------------------------------
// Impl
// ---------------------------------------------------------------------------------------------

struct ClipTokenizer::Impl : TokenTable {
  enum Kind : uint8_t { kNone = kNoToken, kBpe = 1, kSpecial = 2 };
  struct Cache {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int64_t>> words;
  };

  std::array<int64_t, 256> byte_ids{};     // byte symbol
  std::array<int64_t, 256> byte_eow_ids{}; // byte symbol + </w>
  int64_t sot = -1, eot = -1, pad = -1;
  std::string pad_token; // from the files; empty: <|endoftext|>
  int64_t pad_token_id = -1; // tokenizer.json padding.pad_id when it gives no pad_token
  std::shared_ptr<pcre2_code> regex;
  std::shared_ptr<Cache> cache = std::make_shared<Cache>();

  // Resolves what encode() needs once the tables are complete; `vocab_file` names the file
  // holding the vocabulary in messages.
  void finish(const std::string& vocab_file) {
    const auto need = [&](const std::string& tok, const std::string& why) {
      const auto it = vocab.find(tok);
      if (it == vocab.end()) {
        throw std::runtime_error(vocab_file + ": the vocabulary has no '" + tok + "' (" + why +
                                 ")");
      }
      return it->second;
    };
    sot = need(kClipSot, "CLIP's start-of-text token");
    eot = need(kClipEot, "CLIP's end-of-text token");
    kind[static_cast<std::size_t>(sot)] = kSpecial;
    kind[static_cast<std::size_t>(eot)] = kSpecial;
    for (int b = 0; b < 256; ++b) {
      const std::string& sym = byte_level_symbol(static_cast<unsigned char>(b));
      byte_ids[b] = need(sym, "the byte-level symbol of byte " + std::to_string(b));
      byte_eow_ids[b] = need(sym + kClipEow, "the byte-level symbol of byte " + std::to_string(b) +
                                             " with </w>");
    }
    if (!pad_token.empty()) {
      pad = need(pad_token, "the pad token");
    } else if (pad_token_id >= 0) {
      if (!holds(pad_token_id)) {
        throw std::runtime_error(vocab_file + ": padding.pad_id " +
                                 std::to_string(pad_token_id) + " names no token");
      }
      pad = pad_token_id;
    } else {
      pad = eot;
    }
    regex = compile_clip_regex();
  }

  [[nodiscard]] std::vector<int64_t> bpe(std::string_view piece) const {
    {
      std::lock_guard<std::mutex> lock(cache->mu);
      const auto it = cache->words.find(std::string(piece));
      if (it != cache->words.end()) return it->second;
    }
    std::vector<int64_t> sym;
    sym.reserve(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i) {
      const auto b = static_cast<unsigned char>(piece[i]);
      sym.push_back(i + 1 == piece.size() ? byte_eow_ids[b] : byte_ids[b]);
    }
    // Merge every occurrence of the best-ranked pair, left to right, until no pair is a merge.
    bpe_apply(sym, merges);
    std::lock_guard<std::mutex> lock(cache->mu);
    if (cache->words.size() < kMaxCacheWords) cache->words.emplace(std::string(piece), sym);
    return sym;
  }

  void encode_clean(const std::string& text, std::vector<int64_t>& out) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(regex.get(), nullptr), &pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t pos = 0;
    while (pos < text.size()) {
      const int rc = pcre2_match(regex.get(), subject, text.size(), pos, 0, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        std::array<PCRE2_UCHAR, 256> msg{};
        pcre2_get_error_message(rc, msg.data(), msg.size());
        throw std::runtime_error(std::string("ClipTokenizer: regex match failed: ") +
                                 reinterpret_cast<const char*>(msg.data()));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      const std::string_view piece(text.data() + ov[0], ov[1] - ov[0]);
      // Text between matches is spaces only: every other character matches some branch.
      if (piece == kClipSot) {
        out.push_back(sot);
      } else if (piece == kClipEot) {
        out.push_back(eot);
      } else if (!piece.empty()) {
        const auto ids = bpe(piece);
        out.insert(out.end(), ids.begin(), ids.end());
      }
      pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1; // the pattern cannot match empty; be safe
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

namespace {

using Impl = ClipTokenizer::Impl;


// pad_token of a special_tokens_map.json beside `file`, if there is one.
void read_special_tokens_map(Impl& impl, const fs::path& dir) {
  const fs::path map_file = dir / "special_tokens_map.json";
  if (!fs::is_regular_file(map_file)) return;
  const json m = parse_tokenizer_json(map_file, "expected special_tokens_map.json");
  if (!m.is_object()) throw std::runtime_error(map_file.string() + ": must be a JSON object");
  const auto it = m.find("pad_token");
  if (it == m.end() || it->is_null()) return;
  impl.pad_token = token_text(*it);
  if (impl.pad_token.empty()) {
    throw std::runtime_error(map_file.string() +
                             ": pad_token must be a token or {\"content\": token}");
  }
}


std::shared_ptr<Impl> load_tokenizer_json(const fs::path& file) {
  auto impl = std::make_shared<Impl>();
  impl->source = file.string();
  const std::string& src = impl->source;
  const json j = parse_tokenizer_json(file, "expected a Hugging Face tokenizer.json");
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    throw std::runtime_error(src + ": no \"model\" object; expected a Hugging Face tokenizer.json");
  }
  const json& model = j["model"];
  if (model.contains("type") && model["type"] != "BPE") {
    throw std::runtime_error(src + ": model.type is " + model["type"].dump() +
                             "; expected \"BPE\" (CLIP's byte-level BPE)");
  }
  const auto eow = model.find("end_of_word_suffix");
  if (eow == model.end() || !eow->is_string() || eow->get<std::string>() != kClipEow) {
    throw std::runtime_error(src + ": model.end_of_word_suffix is " +
                             (eow == model.end() ? std::string("missing") : eow->dump()) +
                             "; expected \"</w>\" (CLIP's BPE marks the end of each word)");
  }
  const auto prefix = model.find("continuing_subword_prefix");
  if (prefix != model.end() && !prefix->is_null() &&
      !(prefix->is_string() && prefix->get<std::string>().empty())) {
    throw std::runtime_error(src + ": model.continuing_subword_prefix is " + prefix->dump() +
                             "; CLIP's BPE uses none");
  }
  if (!model.contains("vocab")) throw std::runtime_error(src + ": model.vocab is missing");
  read_vocab(*impl, model["vocab"], src + ": model.vocab", Impl::kBpe);

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const json& at = j["added_tokens"];
    if (!at.is_array()) throw std::runtime_error(src + ": added_tokens is not an array");
    for (std::size_t i = 0; i < at.size(); ++i) {
      const json& t = at[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string()) {
        throw std::runtime_error(src + ": added_tokens[" + std::to_string(i) +
                                 "] needs an integer \"id\" and a string \"content\"");
      }
      const auto sp = t.find("special");
      const bool special = sp != t.end() && sp->is_boolean() && sp->get<bool>();
      impl->set_token(t["id"].get<int64_t>(), t["content"].get<std::string>(),
                      special ? Impl::kSpecial : Impl::kBpe);
    }
  }

  if (!model.contains("merges") || !model["merges"].is_array()) {
    throw std::runtime_error(src + ": model.merges is missing or not an array");
  }
  for_each_json_merge(model["merges"], src, [&impl](const std::string& x, const std::string& y, std::size_t rank,
                                                   const std::string& where) { impl->add_merge(x, y, rank, where); });

  const auto padding = j.find("padding");
  if (padding != j.end() && padding->is_object()) {
    const auto tok = padding->find("pad_token");
    const auto id = padding->find("pad_id");
    if (tok != padding->end() && tok->is_string()) {
      impl->pad_token = tok->get<std::string>();
    } else if (id != padding->end() && id->is_number_integer()) {
      impl->pad_token_id = id->get<int64_t>();
    } else {
      throw std::runtime_error(src + ": padding has neither a string pad_token nor an integer "
                                     "pad_id");
    }
  } else {
    read_special_tokens_map(*impl, file.parent_path());
  }
  impl->finish(src);
  return impl;
}

std::shared_ptr<Impl> load_vocab_merges(const fs::path& dir) {
  auto impl = std::make_shared<Impl>();
  const fs::path merges_file = read_vocab_json(*impl, dir, Impl::kBpe);
  read_merges_txt(*impl, merges_file);
  read_special_tokens_map(*impl, dir);
  impl->finish(impl->source);
  return impl;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// ClipTokenizer
// ---------------------------------------------------------------------------------------------

ClipTokenizer::ClipTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

ClipTokenizer ClipTokenizer::load(const fs::path& file_or_dir) {
  const TokenizerSource source = locate_tokenizer(file_or_dir);
  return ClipTokenizer(source.json ? load_tokenizer_json(source.path) : load_vocab_merges(source.path));
}

std::string ClipTokenizer::clean_text(std::string_view text) {
  const std::string valid = utf8_lossy(text);
  // Strip and collapse whitespace runs to one space, in one pass.
  std::vector<uint32_t> cps;
  cps.reserve(valid.size());
  bool space_pending = false;
  for (std::size_t i = 0; i < valid.size();) {
    int64_t cp = 0;
    i += utf8_next(valid, i, cp); // valid UTF-8: cp >= 0
    const auto c = static_cast<uint32_t>(cp);
    if (is_space(c)) {
      space_pending = !cps.empty();
      continue;
    }
    if (space_pending) cps.push_back(' ');
    space_pending = false;
    cps.push_back(c);
  }
  std::string out;
  out.reserve(valid.size());
  for (std::size_t i = 0; i < cps.size(); ++i) {
    const uint32_t c = cps[i];
    if (c == 0x130) { // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT ABOVE
      out += 'i';
      utf8_append(out, 0x307);
    } else if (c == 0x3A3) {
      utf8_append(out, final_sigma(cps, i) ? 0x3C2 : 0x3C3);
    } else {
      utf8_append(out, lower_simple(c));
    }
  }
  return out;
}

std::vector<int64_t> ClipTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& im = *impl_;
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out.push_back(im.sot);
  im.encode_clean(clean_text(text), out);
  if (add_special_tokens) out.push_back(im.eot);
  return out;
}

ClipTokenizer::Encoding ClipTokenizer::encode_context(std::string_view text,
                                                      int64_t context_length) const {
  if (context_length < 2) {
    throw std::invalid_argument("ClipTokenizer::encode_context: context_length " +
                                std::to_string(context_length) +
                                " leaves no room for <|startoftext|> and <|endoftext|>");
  }
  const auto ctx = static_cast<std::size_t>(context_length);
  Encoding e;
  e.ids = encode(text, true);
  if (e.ids.size() > ctx) {
    e.truncated = true;
    e.ids.resize(ctx);
    e.ids.back() = impl_->eot;
  }
  const std::size_t used = e.ids.size();
  e.ids.resize(ctx, impl_->pad);
  e.attention_mask.assign(ctx, 0);
  std::fill(e.attention_mask.begin(), e.attention_mask.begin() + static_cast<std::ptrdiff_t>(used),
            1);
  e.eot_position = eot_position(e.ids);
  return e;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  std::string bytes;
  const std::string_view eow = kClipEow;
  for (const int64_t id : ids) {
    if (!im.holds(id)) {
      throw std::out_of_range(im.source + ": decode: id " + std::to_string(id) +
                              " names no token (vocab size " + std::to_string(vocab_size()) + ")");
    }
    const std::string& tok = im.id_to_token[static_cast<std::size_t>(id)];
    if (im.kind[static_cast<std::size_t>(id)] == Impl::kSpecial) {
      if (!skip_special_tokens) bytes += tok;
      continue;
    }
    std::string_view t = tok;
    const bool word_end = t.size() >= eow.size() && t.substr(t.size() - eow.size()) == eow;
    if (word_end) t.remove_suffix(eow.size());
    byte_level_decode(t, bytes);
    if (word_end) bytes += ' ';
  }
  std::string text = utf8_lossy(bytes);
  const auto first = text.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(' ');
  return text.substr(first, last - first + 1);
}

int64_t ClipTokenizer::token_id(std::string_view token) const { return impl_->token_id(token); }
bool ClipTokenizer::has_token(std::string_view token) const { return impl_->has_token(token); }
std::string ClipTokenizer::id_to_token(int64_t id) const { return impl_->token_at(id); }
int64_t ClipTokenizer::vocab_size() const { return impl_->size(); }
int64_t ClipTokenizer::bos_id() const { return impl_->sot; }
int64_t ClipTokenizer::eos_id() const { return impl_->eot; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }

int64_t ClipTokenizer::eot_position(const std::vector<int64_t>& ids) const {
  const auto it = std::find(ids.begin(), ids.end(), impl_->eot);
  return it == ids.end() ? -1 : static_cast<int64_t>(it - ids.begin());
}

} // namespace fedvlm
