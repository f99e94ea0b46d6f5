// support/byte_size.cpp — parse and print byte counts with binary and decimal units.
#include "support/byte_size.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace fedvlm {

namespace {

constexpr std::pair<const char*, double> kUnits[] = {
    {"b", 1},           {"kb", 1e3},          {"mb", 1e6},          {"gb", 1e9},         {"tb", 1e12},
    {"kib", 1024.0},    {"mib", 1048576.0},   {"gib", 1073741824.0}, {"tib", 1099511627776.0},
};

[[noreturn]] void bad(const std::string& text, const std::string& why) {
  throw std::invalid_argument("\"" + text + "\": " + why +
                              "; expected a size such as \"20GiB\", \"512MiB\", \"1.5GB\" or a byte count");
}

} // namespace

int64_t parse_byte_size(const std::string& text) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double number = std::strtod(begin, &end);
  if (end == begin || std::isnan(number)) bad(text, "no number");
  if (std::isinf(number)) bad(text, "too large"); // 1e400 overflows to inf, as does "inf" itself
  if (number < 0) bad(text, "negative");
  std::string unit;
  for (const char* p = end; *p; ++p)
    if (!std::isspace(static_cast<unsigned char>(*p))) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
  double scale = unit.empty() ? 1 : 0;
  for (const auto& [name, factor] : kUnits)
    if (unit == name) scale = factor;
  if (scale == 0) bad(text, "unknown unit '" + unit + "'");
  const double bytes = std::round(number * scale);
  if (bytes > 9.0e18) bad(text, "too large");
  return static_cast<int64_t>(bytes);
}

std::string byte_size_text(int64_t bytes) {
  static const char* names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + names[u];
}

} // namespace fedvlm
