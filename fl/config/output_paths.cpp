// fl/config/output_paths.cpp — output_dir / pretrain.cache_dir: create, then prove writable, up front.
#include "fl/config/output_paths.hpp"

#include "fl/config/experiment_toml.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace fedvlm {

namespace fs = std::filesystem;

fs::path resolved_cache_dir(const ExperimentConfig& c) {
  return c.pretrain.cache_dir.is_absolute() ? c.pretrain.cache_dir : c.output_dir / c.pretrain.cache_dir;
}

void check_writable_dir(const fs::path& dir, const std::string& key) {
  const std::string where = key + ": '" + dir.string() + "'";
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw ConfigError(where + " exists but is not a directory; expected a directory for the results");
  if (!fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) throw ConfigError(where + ": cannot create the directory: " + ec.message());
  }
  // Only trying tells: root ignores permission bits, yet /sys or a read-only mount still refuse.
  std::string probe = (dir / ".fedvlm-write-check-XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) {
    const int err = errno;
    throw ConfigError(where + ": cannot create files in the directory: " + std::strerror(err));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

void check_output_paths(const ExperimentConfig& c) {
  check_writable_dir(c.output_dir, "output_dir");
  if (c.pretrain.enabled) check_writable_dir(resolved_cache_dir(c), "pretrain.cache_dir");
}

} // namespace fedvlm
