// support/atomic_file.hpp — durable file writes: replace a file so that readers see the old content or the new, never half; append and flush.
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

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

/// Several files replaced as atomic_write_file replaces one, with one flush to disk for all of
/// them (syncfs per directory) instead of one fsync per file: writing 10,000 small files costs
/// their writes, not 10,000 waits for the disk. Each file ends old or new, never half.
class FileBatch {
public:
  FileBatch() = default;
  FileBatch(const FileBatch&) = delete;
  FileBatch& operator=(const FileBatch&) = delete;
  /// Removes the temporary files of a batch that was not committed.
  ~FileBatch();
  /// Writes `content` to a temporary file beside `path` now; `path` is replaced by commit().
  /// Throws std::runtime_error naming the path.
  void add(const std::filesystem::path& path, std::string_view content);
  /// Flushes every file added to disk, then renames each over its path. Throws
  /// std::runtime_error naming the path that failed.
  void commit();

private:
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> pending_; ///< temporary, final
};

/// Appends `content` to `path` (created if missing) and flushes it to disk (fsync) before
/// returning. Not atomic: a crash may leave part of `content` at the end of the file, which a
/// reader of line-based files must then cut off (an unterminated last line). Throws
/// std::runtime_error naming the path on any failure.
void append_file_synced(const std::filesystem::path& path, std::string_view content);

} // namespace fedvlm
