// support/atomic_file.hpp — write a file so that readers see the old content or the new, never half.
#pragma once

#include <filesystem>
#include <string_view>

namespace fedvlm {

/// Writes `content` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`. Throws std::runtime_error naming the path on any failure; `path` is then untouched.
void atomic_write_file(const std::filesystem::path& path, std::string_view content);

} // namespace fedvlm
