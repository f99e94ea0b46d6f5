// fl/text_columns.hpp — aligning columns of UTF-8 text for the tables printed to terminals.
#pragma once

#include <cstddef>
#include <string>

namespace fedvlm {

/// Display columns of a UTF-8 string: "→" and "±" are one column but several bytes.
[[nodiscard]] std::size_t display_width(const std::string& s);

/// `s` padded with spaces to `width` display columns, on the left when `right` (right-aligned).
[[nodiscard]] std::string pad_to_width(const std::string& s, std::size_t width, bool right);

} // namespace fedvlm
