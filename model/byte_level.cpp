// model/byte_level.cpp — GPT-2's bytes_to_unicode table, its inverse, and lossy UTF-8 decoding.
#include "model/byte_level.hpp"

#include <limits>

#include <array>

namespace fedvlm {

namespace {

// The code point of each byte's symbol, in byte order.
std::array<uint32_t, 256> byte_to_codepoint() {
  std::array<uint32_t, 256> cp{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    cp[b] = printable ? b : next++;
  }
  return cp;
}

const std::array<std::string, 256>& byte_symbols() {
  static const std::array<std::string, 256> symbols = [] {
    std::array<std::string, 256> s;
    const auto cp = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) utf8_append(s[b], cp[b]);
    return s;
  }();
  return symbols;
}

// Inverse of byte_to_codepoint, indexed by code point (all lie below U+0144).
const std::array<int, 324>& codepoint_to_byte() {
  static const std::array<int, 324> inv = [] {
    std::array<int, 324> a{};
    a.fill(-1);
    const auto cp = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) a[cp[b]] = b;
    return a;
  }();
  return inv;
}

} // namespace

const std::string& byte_level_symbol(unsigned char byte) { return byte_symbols()[byte]; }

void byte_level_decode(std::string_view token, std::string& bytes) {
  const auto& inv = codepoint_to_byte();
  for (std::size_t p = 0; p < token.size();) {
    int64_t cp = 0;
    const std::size_t len = utf8_next(token, p, cp);
    if (cp >= 0 && cp < static_cast<int64_t>(inv.size()) && inv[cp] >= 0) {
      bytes += static_cast<char>(inv[cp]);
    } else {
      bytes.append(token, p, len); // not a byte symbol: keep the text as written
    }
    p += len;
  }
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::size_t utf8_next(std::string_view s, std::size_t i, int64_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int len = 0;
  uint32_t v = 0;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    v = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    v = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    v = b0 & 0x07;
  } else {
    cp = -1;
    return 1;
  }
  if (i + len > s.size()) {
    cp = -1;
    return 1;
  }
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      cp = -1;
      return 1;
    }
    v = (v << 6) | (b & 0x3F);
  }
  cp = v;
  return static_cast<std::size_t>(len);
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  const std::size_t n = s.size();
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < n) {
    const unsigned char b = at(i);
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    int len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b == 0xE0) {
      len = 3;
      lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      len = 3;
    } else if (b == 0xED) {
      len = 3;
      hi = 0x9F;
    } else if (b == 0xF0) {
      len = 4;
      lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      len = 4;
    } else if (b == 0xF4) {
      len = 4;
      hi = 0x8F;
    }
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    std::size_t j = 1;
    bool ok = true;
    for (; j < static_cast<std::size_t>(len); ++j) {
      if (i + j >= n) {
        ok = false;
        break;
      }
      const unsigned char c = at(i + j);
      const unsigned char l = j == 1 ? lo : 0x80;
      const unsigned char h = j == 1 ? hi : 0xBF;
      if (c < l || c > h) {
        ok = false;
        break;
      }
    }
    if (ok) {
      out.append(s, i, static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else {
      out += "\xEF\xBF\xBD";
      i += j;
    }
  }
  return out;
}

void bpe_apply(std::vector<int64_t>& sym, const BpeMerges& merges) {
  while (sym.size() > 1) {
    int32_t best = std::numeric_limits<int32_t>::max();
    int64_t a = -1, b = -1, merged = -1;
    for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
      const auto it = merges.find(bpe_pair_key(sym[i], sym[i + 1]));
      if (it != merges.end() && it->second.rank < best) {
        best = it->second.rank;
        a = sym[i];
        b = sym[i + 1];
        merged = it->second.id;
      }
    }
    if (merged < 0) return;
    std::vector<int64_t> next;
    next.reserve(sym.size());
    for (std::size_t i = 0; i < sym.size();) {
      if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(sym[i]);
        ++i;
      }
    }
    sym.swap(next);
  }
}

} // namespace fedvlm
