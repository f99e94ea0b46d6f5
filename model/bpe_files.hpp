// model/bpe_files.hpp — what the byte-level BPE tokenizers (BART, CLIP) share in reading their files and compiling their pre-tokenizer regex.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "model/token_table.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace fedvlm {

/// The whole file as bytes. Throws std::runtime_error "FILE: cannot open (WHAT)" or
/// "FILE: read error"; `what` says what the file was expected to be.
[[nodiscard]] std::string read_tokenizer_file(const std::filesystem::path& file, const char* what);

/// The file parsed as JSON. Throws read_tokenizer_file's errors and "FILE: malformed JSON (WHAT): ...".
[[nodiscard]] nlohmann::json parse_tokenizer_json(const std::filesystem::path& file, const char* what);

/// Calls `set_token(token, id)` for every entry of a vocabulary object {token: id}. Throws
/// std::runtime_error "WHERE must be an object mapping token to id" or "WHERE: the id of
/// token 'T' is not an integer".
void for_each_vocab_entry(const nlohmann::json& vocab, const std::string& where,
                          const std::function<void(const std::string&, int64_t)>& set_token);

/// Every entry of a vocabulary object {token: id} into `table` as a token of `kind`
/// (for_each_vocab_entry's and TokenTable::set_token's errors).
void read_vocab(TokenTable& table, const nlohmann::json& vocab, const std::string& where, uint8_t kind);

/// A folder's vocab.json read into `table` as tokens of `kind` (the table's source becomes that
/// file); returns the merges.txt beside it, to be read with read_merges_txt once the vocabulary
/// is complete. Throws std::runtime_error "DIR: no tokenizer.json and no vocab.json; expected ..."
/// or "DIR/merges.txt: missing; expected merges.txt next to vocab.json ...".
[[nodiscard]] std::filesystem::path read_vocab_json(TokenTable& table, const std::filesystem::path& dir, uint8_t kind);

/// Every rule of a merges.txt added to `table`, in rank order (for_each_merges_txt_line's and
/// TokenTable::add_merge's errors).
void read_merges_txt(TokenTable& table, const std::filesystem::path& merges_file);

/// Where a tokenizer is read from: a tokenizer.json (`json`: the file, or the one in a folder),
/// else a folder's vocab.json + merges.txt (`path` the folder).
struct TokenizerSource {
  std::filesystem::path path;
  bool json = true;
};
/// Throws std::runtime_error "PATH: not found; expected ..." when there is nothing at `file_or_dir`.
[[nodiscard]] TokenizerSource locate_tokenizer(const std::filesystem::path& file_or_dir);

/// One merge: the pair, its rank (its place in the file) and where it was written, for messages.
using AddMerge = std::function<void(const std::string& a, const std::string& b, std::size_t rank, const std::string& where)>;

/// Calls `add` for every merge of a tokenizer.json's model.merges, in order: "a b" (older
/// files) or ["a", "b"] (tokenizers >= 0.20, whose tokens may hold spaces); `where` is
/// "SOURCE: model.merges[i]". Throws std::runtime_error naming the entry that is neither.
void for_each_json_merge(const nlohmann::json& merges, const std::string& source, const AddMerge& add);

/// Calls `add` for every line of a merges.txt, in order ("#version" first line and blank lines
/// skipped); `where` is "FILE:LINE". Throws std::runtime_error naming the line that is not
/// two tokens separated by one space.
void for_each_merges_txt_line(const std::filesystem::path& file, const AddMerge& add);

/// `pattern` compiled with `options` and JIT-compiled where possible. Throws std::runtime_error
/// "WHO: PCRE2 cannot compile WHAT: MESSAGE".
[[nodiscard]] std::shared_ptr<pcre2_code> compile_pretokenizer_regex(const char* pattern, uint32_t options,
                                                                     const std::string& who_what);

} // namespace fedvlm
