// support/text_columns.hpp — aligning columns of UTF-8 text for the tables printed to terminals.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace fedvlm {

/// Display columns of a UTF-8 string: "→" and "±" are one column but several bytes.
[[nodiscard]] std::size_t display_width(const std::string& s);

/// `s` padded with spaces to `width` display columns, on the left when `right` (right-aligned).
[[nodiscard]] std::string pad_to_width(const std::string& s, std::size_t width, bool right);

/// Widest display width per column over the header and every row.
[[nodiscard]] std::vector<std::size_t> column_widths(const std::vector<std::string>& header,
                                                     const std::vector<std::vector<std::string>>& rows);

/// One table line: cells padded to `widths`, two spaces apart, columns from
/// `first_right_aligned` on right-aligned (numbers), no trailing spaces, ending in '\n'.
[[nodiscard]] std::string render_columns(const std::vector<std::string>& cells,
                                         const std::vector<std::size_t>& widths,
                                         std::size_t first_right_aligned);

/// `v` with `decimals` digits after the point ("+" in front of positives with `sign`); "nan"
/// for NaN.
[[nodiscard]] std::string fixed_decimals(double v, int decimals, bool sign = false);

/// A byte count for people: "512 B", "1.5 B" (a mean), "2.15 KiB", "3.00 MiB", ... up to TiB.
[[nodiscard]] std::string human_bytes(double bytes);

} // namespace fedvlm
