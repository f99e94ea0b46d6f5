// support/atomic_file.cpp — temp file + fsync + rename; append + fsync.
#include "support/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>

namespace fedvlm {

namespace {
std::string errno_text() { return std::strerror(errno); }

/// Writes all of `content` to `fd`; false (errno set) on failure.
bool write_all(int fd, std::string_view content) {
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

/// A new temporary file beside `path` (its directory created), open for writing: its name and
/// descriptor. Throws std::runtime_error naming it.
std::pair<std::filesystem::path, int> create_temp_beside(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp.string() + ": " + errno_text());
  return {std::move(tmp), fd};
}
} // namespace

void write_fully(int fd, std::string_view content, const std::filesystem::path& path) {
  if (!write_all(fd, content)) throw std::runtime_error("cannot write " + path.string() + ": " + errno_text());
}

void atomic_write_file_with(const std::filesystem::path& path, const std::function<void(int fd)>& write) {
  const auto [tmp, fd] = create_temp_beside(path);
  try {
    write(fd);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot flush " + path.string() + ": " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + why);
  }
}

void atomic_write_file(const std::filesystem::path& path, std::string_view content) {
  atomic_write_file_with(path, [&](int fd) { write_fully(fd, content, path); });
}

FileBatch::~FileBatch() {
  for (const auto& [tmp, path] : pending_) ::unlink(tmp.c_str());
}

void FileBatch::add(const std::filesystem::path& path, std::string_view content) {
  const auto [tmp, fd] = create_temp_beside(path);
  const bool written = write_all(fd, content);
  const std::string why = written ? "" : errno_text();
  // Closed once whatever happened: a second close could close a descriptor another thread opened.
  if (::close(fd) != 0 || !written) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path.string() + ": " + (written ? errno_text() : why));
  }
  pending_.emplace_back(tmp, path);
}

void FileBatch::commit() {
  std::set<std::filesystem::path> dirs;
  for (const auto& [tmp, path] : pending_) dirs.insert(tmp.has_parent_path() ? tmp.parent_path() : ".");
  for (const auto& dir : dirs) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::syncfs(fd) != 0) {
      const std::string why = errno_text();
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot flush the files written in " + dir.string() + ": " + why);
    }
    ::close(fd);
  }
  while (!pending_.empty()) {
    const auto [tmp, path] = pending_.back();
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::runtime_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + errno_text());
    pending_.pop_back();
  }
}

void append_file_synced(const std::filesystem::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string() + " to append: " + errno_text());
  if (!write_all(fd, content) || ::fsync(fd) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    throw std::runtime_error("cannot append to " + path.string() + ": " + why);
  }
  if (::close(fd) != 0) throw std::runtime_error("cannot flush " + path.string() + ": " + errno_text());
}

} // namespace fedvlm
