// support/byte_size.hpp — byte counts as people write them in configuration: "20GiB", "512 MB", "1.5GiB".
#pragma once

#include <cstdint>
#include <string>

namespace fedvlm {

/// Parses a non-negative number with an optional unit: B, KB/MB/GB/TB (powers of 1000),
/// KiB/MiB/GiB/TiB (powers of 1024), case-insensitive, spaces allowed before the unit; a bare
/// number is bytes. Throws std::invalid_argument saying what was expected.
[[nodiscard]] int64_t parse_byte_size(const std::string& text);

/// The shortest exact spelling parse_byte_size reads back: "20GiB", "1536MiB", "1000B".
[[nodiscard]] std::string byte_size_text(int64_t bytes);

} // namespace fedvlm
