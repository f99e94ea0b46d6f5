// model/token_table.cpp — a byte-level BPE tokenizer's vocabulary and merge rules.
#include "model/token_table.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace fedvlm {

void TokenTable::set_token(int64_t id, const std::string& token, uint8_t token_kind) {
  if (id < 0 || id >= kMaxTokenId) {
    throw std::runtime_error(source + ": token '" + token + "' has invalid id " + std::to_string(id) +
                             "; expected 0 to " + std::to_string(kMaxTokenId - 1));
  }
  const auto uid = static_cast<std::size_t>(id);
  if (uid >= id_to_token.size()) {
    id_to_token.resize(uid + 1);
    kind.resize(uid + 1, kNoToken);
  }
  if (kind[uid] != kNoToken && id_to_token[uid] != token) {
    throw std::runtime_error(source + ": id " + std::to_string(id) + " is used by both '" + id_to_token[uid] +
                             "' and '" + token + "'");
  }
  const auto it = vocab.find(token);
  if (it != vocab.end() && it->second != id) {
    throw std::runtime_error(source + ": token '" + token + "' has two ids, " + std::to_string(it->second) +
                             " and " + std::to_string(id));
  }
  vocab[token] = id;
  id_to_token[uid] = token;
  kind[uid] = std::max(kind[uid], token_kind);
}

void TokenTable::add_merge(const std::string& a, const std::string& b, std::size_t rank, const std::string& where) {
  const auto ia = vocab.find(a);
  const auto ib = vocab.find(b);
  const auto iab = vocab.find(a + b);
  const auto what = where + ": merge '" + a + "' '" + b + "'";
  if (ia == vocab.end() || ib == vocab.end()) {
    throw std::runtime_error(what + ": '" + (ia == vocab.end() ? a : b) + "' is not in the vocabulary");
  }
  if (iab == vocab.end()) {
    throw std::runtime_error(what + ": the merged token '" + a + b + "' is not in the vocabulary");
  }
  if (rank > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
    throw std::runtime_error(what + ": too many merges");
  }
  merges.emplace(bpe_pair_key(ia->second, ib->second), BpeMerge{static_cast<int32_t>(rank), iab->second});
}

int64_t TokenTable::token_id(std::string_view token) const {
  const auto it = vocab.find(std::string(token));
  if (it == vocab.end()) throw std::out_of_range(source + ": no token '" + std::string(token) + "'");
  return it->second;
}

bool TokenTable::has_token(std::string_view token) const { return vocab.count(std::string(token)) > 0; }

bool TokenTable::holds(int64_t id) const {
  return id >= 0 && static_cast<std::size_t>(id) < kind.size() && kind[static_cast<std::size_t>(id)] != kNoToken;
}

const std::string& TokenTable::token_at(int64_t id) const {
  if (!holds(id)) throw std::out_of_range(source + ": no token with id " + std::to_string(id));
  return id_to_token[static_cast<std::size_t>(id)];
}

} // namespace fedvlm
