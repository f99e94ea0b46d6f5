// model/clip_tokenizer.hpp — CLIP's text tokenizer: cleaned, lower-cased byte-level BPE with </w>.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fedvlm {

/// CLIP's start- and end-of-text tokens and its end-of-word suffix.
inline constexpr const char* kClipSot = "<|startoftext|>";
inline constexpr const char* kClipEot = "<|endoftext|>";
inline constexpr const char* kClipEow = "</w>";

/// The tokenizer of OpenAI CLIP (`clip/simple_tokenizer.py`, Hugging Face `CLIPTokenizer`), for
/// the text tower of a CLIP model:
///
/// 1. Cleaning. The text is read as UTF-8 (each ill-formed subpart becomes U+FFFD, as Python's
///    `decode("utf-8", "replace")`), stripped, every run of whitespace becomes one space
///    (`re.sub(r"\s+", " ", text).strip()`, whitespace being Python's `str.isspace`), and it is
///    lower-cased as Python's `str.lower()` does (full mapping: U+0130 becomes "i\u0307", a
///    final capital sigma becomes ς). Not done: `ftfy.fix_text` and `html.unescape`, which
///    OpenAI's `basic_clean` applies, and no Unicode normalization (ftfy and HF's fast
///    tokenizer apply NFC): "&amp;" stays five characters; pass NFC text, unescaped, for
///    parity with those. Unicode tables: 14.0 (Python 3.11's and PCRE2 10.42's). (HF's slow
///    CLIPTokenizer without ftfy cleans with BERT's BasicTokenizer instead, which also drops
///    control characters and splits CJK characters apart; that path is not reproduced.)
/// 2. Pieces: the matches of
///    `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
///    (case-insensitive, as CLIP compiles it; one digit a piece). A piece that is exactly a
///    special token's text becomes that token (as SimpleTokenizer's pre-filled cache does).
/// 3. BPE: each piece as GPT-2 byte-level symbols, the last carrying `</w>`; the pair with the
///    lowest merge rank (order in merges.txt / model.merges; the first of duplicate lines
///    counts) is merged at every occurrence, left to right, until no pair is a merge.
///
/// Sequences are `<|startoftext|> … <|endoftext|>` (ids 49406 and 49407 in CLIP's vocabulary).
/// encode_context() fixes the length at the context (77 for CLIP): longer ones keep their first
/// context - 1 tokens and end in `<|endoftext|>` (clip.tokenize(truncate=True) and HF with
/// truncation agree), shorter ones are padded with pad_id().
///
/// Pooling: CLIP's text embedding is the final hidden state at the end-of-text token. OpenAI
/// takes `argmax(ids)` (eot has the largest id); newer HF takes the first position whose id is
/// eos_id(). Both give eot_position(): the first `<|endoftext|>` — also when the padding is
/// `<|endoftext|>` itself, and even in a vocabulary where eot is not the largest id.
///
/// Copies are cheap and share the immutable tables; all const members are thread-safe.
class ClipTokenizer {
public:
  /// CLIP's text context length.
  static constexpr int64_t kContextLength = 77;

  /// A Hugging Face `tokenizer.json` (file, or a directory holding one), otherwise a directory
  /// with `vocab.json` + `merges.txt` (a first line starting "#version" is a header; all other
  /// lines are merges). The vocabulary must hold `<|startoftext|>`, `<|endoftext|>`, the 256
  /// byte symbols and the 256 byte symbols + `</w>`; every merge's tokens and result must be in
  /// it. The pad token comes from tokenizer.json's "padding" ("pad_token", else "pad_id"), else
  /// from "pad_token" in special_tokens_map.json beside the file, else is `<|endoftext|>`.
  /// Throws std::runtime_error naming the file and the problem (merges.txt errors name the
  /// line: "merges.txt:12: ...").
  [[nodiscard]] static ClipTokenizer load(const std::filesystem::path& file_or_dir);

  /// Token ids of `text`, with add_special_tokens wrapped in `<|startoftext|> … <|endoftext|>`;
  /// no length limit.
  [[nodiscard]] std::vector<int64_t> encode(std::string_view text,
                                            bool add_special_tokens = true) const;

  /// One row of a CLIP text batch.
  struct Encoding {
    std::vector<int64_t> ids;            ///< exactly `context_length` ids
    std::vector<int64_t> attention_mask; ///< 1 up to and including eot, 0 on padding
    int64_t eot_position = 0;            ///< index of the `<|endoftext|>` to pool at
    bool truncated = false;              ///< the text did not fit
  };
  /// encode(text) fitted to `context_length` (>= 2) as described above. Throws
  /// std::invalid_argument for a context below 2.
  [[nodiscard]] Encoding encode_context(std::string_view text,
                                        int64_t context_length = kContextLength) const;

  /// The cleaned, lower-cased text that pre-tokenization sees (step 1), for debugging.
  [[nodiscard]] static std::string clean_text(std::string_view text);

  /// Text of `ids`: each token's bytes, a space for each `</w>`, special tokens dropped with
  /// skip_special_tokens (else written as their text), invalid UTF-8 as U+FFFD, and the result
  /// stripped of spaces at both ends. Lossy (case, whitespace); meant for debugging. Throws
  /// std::out_of_range for an id that names no token.
  [[nodiscard]] std::string decode(const std::vector<int64_t>& ids,
                                   bool skip_special_tokens = true) const;

  /// Id of a token in its vocabulary form (byte-level symbols, e.g. "photo</w>"). Throws
  /// std::out_of_range when absent.
  [[nodiscard]] int64_t token_id(std::string_view token) const;
  [[nodiscard]] bool has_token(std::string_view token) const;
  /// The vocabulary form of `id`. Throws std::out_of_range when absent.
  [[nodiscard]] std::string id_to_token(int64_t id) const;

  /// Highest id + 1: the embedding rows a model needs (49408 for CLIP).
  [[nodiscard]] int64_t vocab_size() const;
  /// `<|startoftext|>`.
  [[nodiscard]] int64_t bos_id() const;
  /// `<|endoftext|>`, where the text tower pools (see eot_position()).
  [[nodiscard]] int64_t eos_id() const;
  [[nodiscard]] int64_t pad_id() const;

  /// Index of the first eos_id() in `ids`, -1 when there is none.
  [[nodiscard]] int64_t eot_position(const std::vector<int64_t>& ids) const;

  struct Impl;

private:
  explicit ClipTokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

} // namespace fedvlm
