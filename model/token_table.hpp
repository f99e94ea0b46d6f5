// model/token_table.hpp — a byte-level BPE tokenizer's vocabulary (token <-> id, each id's kind) and merge rules, shared by BART and CLIP.
#pragma once

#include "model/byte_level.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fedvlm {

/// The tables both tokenizers read from their files. `kind` is the tokenizer's own enum with
/// 0 meaning "no token at this id"; a larger kind given later for the same token wins (a BPE
/// token listed again as special becomes special).
struct TokenTable {
  static constexpr uint8_t kNoToken = 0;
  /// Ids index a table sized by the largest, so a corrupt id must not allocate gigabytes.
  static constexpr int64_t kMaxTokenId = int64_t{1} << 22;

  std::string source; // the file errors name
  std::unordered_map<std::string, int64_t> vocab;
  std::vector<std::string> id_to_token;
  std::vector<uint8_t> kind;
  BpeMerges merges;

  /// Throws std::runtime_error "SOURCE: token 'T' has invalid id N; expected 0 to M", "... id N
  /// is used by both 'A' and 'B'" or "... token 'T' has two ids, N and M".
  void set_token(int64_t id, const std::string& token, uint8_t token_kind);

  /// The rule "a b -> ab" with `rank`; the first rule for a pair keeps its rank (as HF
  /// `tokenizers`). `where` names the merge ("SOURCE: model.merges[3]", "merges.txt:4"). Throws
  /// std::runtime_error "WHERE: merge 'a' 'b': 'x' is not in the vocabulary" (x: a part or the
  /// merged token) or "...: too many merges".
  void add_merge(const std::string& a, const std::string& b, std::size_t rank, const std::string& where);

  /// The id of `token`; throws std::out_of_range "SOURCE: no token 'T'".
  [[nodiscard]] int64_t token_id(std::string_view token) const;
  [[nodiscard]] bool has_token(std::string_view token) const;
  /// Throws std::out_of_range "SOURCE: no token with id N".
  [[nodiscard]] const std::string& token_at(int64_t id) const;
  /// Whether `id` names a token of the table.
  [[nodiscard]] bool holds(int64_t id) const;
  [[nodiscard]] int64_t size() const { return static_cast<int64_t>(kind.size()); }
};

} // namespace fedvlm
