// model/bart_tokenizer.hpp — BART / GPT-2 byte-level BPE tokenizer (Florence-2's text side).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fedvlm {

/// Byte-level BPE as in Hugging Face `tokenizers` for BART (ByteLevel pre-tokenizer with the
/// GPT-2 regex, RobertaProcessing `<s> … </s>`, ByteLevel decoder). Added tokens (e.g.
/// Florence-2's `<loc_k>`) are matched first, leftmost-longest, and never split.
///
/// Copies are cheap and share the immutable tables; all const members are thread-safe.
/// decode() does not apply `clean_up_tokenization_spaces`, so decode(encode(x)) == x for any
/// valid UTF-8 text; invalid UTF-8 in the decoded bytes becomes U+FFFD (as HF does).
class BartTokenizer {
public:
  /// A Hugging Face `tokenizer.json` (file, or a directory holding one), otherwise a directory
  /// with `vocab.json` + `merges.txt` (+ optional `added_tokens.json`,
  /// `special_tokens_map.json`). Throws std::runtime_error naming the file and the problem.
  /// The vocabulary must contain `<s>`, `<pad>` and `</s>`.
  [[nodiscard]] static BartTokenizer load(const std::filesystem::path& file_or_dir);

  /// Token ids; with add_special_tokens the sequence is wrapped in `<s> … </s>`.
  [[nodiscard]] std::vector<int64_t> encode(std::string_view text,
                                            bool add_special_tokens = true) const;
  /// Text of `ids`; special added tokens are dropped when skip_special_tokens. Throws
  /// std::out_of_range for an id that names no token.
  [[nodiscard]] std::string decode(const std::vector<int64_t>& ids,
                                   bool skip_special_tokens = true) const;

  /// Id of a vocabulary or added token (exact string, byte-level form for BPE tokens, e.g.
  /// "Ġworld"). Throws std::out_of_range when absent.
  [[nodiscard]] int64_t token_id(std::string_view token) const;
  [[nodiscard]] bool has_token(std::string_view token) const;
  /// The token string of `id` (byte-level form). Throws std::out_of_range when absent.
  [[nodiscard]] std::string id_to_token(int64_t id) const;

  /// Highest id + 1: the embedding rows a model needs (51289 for Florence-2).
  [[nodiscard]] int64_t vocab_size() const;
  [[nodiscard]] int64_t bos_id() const;
  [[nodiscard]] int64_t pad_id() const;
  [[nodiscard]] int64_t eos_id() const;
  /// -1 when the vocabulary has no `<unk>`.
  [[nodiscard]] int64_t unk_id() const;

  /// Adds special tokens the way HF `add_special_tokens` does: a token already present keeps
  /// its id (and becomes special), a new one gets the next free id. Use with
  /// florence2_added_tokens() when a tokenizer.json lacks them (Florence-2's processor adds
  /// them at run time).
  void add_special_tokens(const std::vector<std::string>& tokens);

  struct Impl;

private:
  explicit BartTokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};


} // namespace fedvlm
