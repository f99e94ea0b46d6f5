// support/atomic_file.hpp — durable file writes: replace a file so that readers see the old content or the new, never half; append and flush.
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>

namespace fedvlm {

/// Writes `content` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path`. Throws std::runtime_error naming the path on any failure; `path` is then untouched.
void atomic_write_file(const std::filesystem::path& path, std::string_view content);

/// As atomic_write_file, for content too large to hold in memory at once: `write` writes it to
/// the temporary file's descriptor (write_fully, pwrite) and throws on failure, which leaves
/// `path` untouched and removes the temporary file.
void atomic_write_file_with(const std::filesystem::path& path, const std::function<void(int fd)>& write);

/// Writes all of `content` to `fd`. Throws std::runtime_error naming `path` on failure.
void write_fully(int fd, std::string_view content, const std::filesystem::path& path);

/// Appends `content` to `path` (created if missing) and flushes it to disk (fsync) before
/// returning. Not atomic: a crash may leave part of `content` at the end of the file, which a
/// reader of line-based files must then cut off (an unterminated last line). Throws
/// std::runtime_error naming the path on any failure.
void append_file_synced(const std::filesystem::path& path, std::string_view content);

} // namespace fedvlm
