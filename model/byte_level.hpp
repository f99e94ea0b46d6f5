// model/byte_level.hpp — GPT-2's byte-level symbols and UTF-8 helpers, shared by the BPE tokenizers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fedvlm {

// -- byte-level symbols ---------------------------------------------------------------------

/// GPT-2's `bytes_to_unicode`, indexed by byte: printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC,
/// U+00AE..U+00FF) stand for themselves, the other 68 bytes map to U+0100.. in byte order, so
/// every byte has a visible, non-space symbol. Each entry is the symbol's UTF-8 text. Used by
/// BART / GPT-2 and by CLIP (which lists the same symbols in a different vocabulary order).
[[nodiscard]] const std::string& byte_level_symbol(unsigned char byte);

/// Appends to `bytes` the bytes that the byte-level symbols of `token` stand for; a code point
/// that is no byte symbol (an added token's text, say) is appended as written.
void byte_level_decode(std::string_view token, std::string& bytes);

// -- byte-pair merges ------------------------------------------------------------------------

/// One merge rule: the symbol two adjacent ones become, and its rank (lower ranks merge first).
struct BpeMerge {
  int32_t rank = 0;
  int64_t id = 0;
};
/// Merge rules by bpe_pair_key(left, right).
using BpeMerges = std::unordered_map<uint64_t, BpeMerge>;

[[nodiscard]] inline uint64_t bpe_pair_key(int64_t left, int64_t right) {
  return (static_cast<uint64_t>(left) << 32) | static_cast<uint64_t>(right);
}

/// BPE as GPT-2 and CLIP apply it: while some adjacent pair has a rule, every occurrence of the
/// lowest-ranked one (left to right) becomes its merged symbol.
void bpe_apply(std::vector<int64_t>& symbols, const BpeMerges& merges);

// -- UTF-8 ----------------------------------------------------------------------------------

/// Appends the UTF-8 encoding of `cp` (no check that cp is a scalar value).
void utf8_append(std::string& out, uint32_t cp);

/// Decodes one code point of possibly invalid UTF-8 at s[i]: returns its length (>= 1) and sets
/// `cp`, or sets cp to -1 for an invalid byte (length 1). Checks the lead and continuation bits
/// only; run utf8_lossy first where overlong forms and surrogates must not pass.
std::size_t utf8_next(std::string_view s, std::size_t i, int64_t& cp);

/// Rust's String::from_utf8_lossy (and Python's `bytes.decode("utf-8", "replace")`): each
/// maximal ill-formed subpart becomes one U+FFFD; valid UTF-8 comes back unchanged.
[[nodiscard]] std::string utf8_lossy(std::string_view s);

} // namespace fedvlm
