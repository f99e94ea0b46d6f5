// support/text_columns.cpp — display width of UTF-8 text and padding to a column width.
#include "support/text_columns.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

std::vector<std::size_t> column_widths(const std::vector<std::string>& header,
                                       const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = display_width(header[c]);
    for (const auto& row : rows)
      if (c < row.size()) width[c] = std::max(width[c], display_width(row[c]));
  }
  return width;
}

std::string render_columns(const std::vector<std::string>& cells, const std::vector<std::size_t>& widths,
                           std::size_t first_right_aligned) {
  std::string line;
  for (std::size_t c = 0; c < cells.size(); ++c) {
    if (c) line += "  ";
    line += pad_to_width(cells[c], c < widths.size() ? widths[c] : 0, c >= first_right_aligned);
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + '\n';
}

std::string fixed_decimals(double v, int decimals, bool sign) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, sign ? "%+.*f" : "%.*f", decimals, v);
  return buf;
}

std::string human_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return fixed_decimals(bytes, bytes == std::floor(bytes) ? 0 : 1) + " B";
  return fixed_decimals(bytes, 2) + " " + units[u];
}

} // namespace fedvlm
