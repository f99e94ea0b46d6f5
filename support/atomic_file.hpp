// support/atomic_file.hpp — durable file writes: replace a file so that readers see the old content or the new, never half; append and flush.
#pragma once

#include <filesystem>
#include <string_view>

namespace fedvlm {

/// Writes `content` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`. Throws std::runtime_error naming the path on any failure; `path` is then untouched.
void atomic_write_file(const std::filesystem::path& path, std::string_view content);

/// Appends `content` to `path` (created if missing) and flushes it to disk (fsync) before
/// returning. Not atomic: a crash may leave part of `content` at the end of the file, which a
/// reader of line-based files must then cut off (an unterminated last line). Throws
/// std::runtime_error naming the path on any failure.
void append_file_synced(const std::filesystem::path& path, std::string_view content);

} // namespace fedvlm
