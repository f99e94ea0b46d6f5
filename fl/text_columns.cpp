// fl/text_columns.cpp — display width of UTF-8 text and padding to a column width.
#include "fl/text_columns.hpp"

namespace fedvlm {

std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n; // count code points: skip continuation bytes
  return n;
}

std::string pad_to_width(const std::string& s, std::size_t width, bool right) {
  const std::size_t w = display_width(s);
  if (w >= width) return s;
  const std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

} // namespace fedvlm
