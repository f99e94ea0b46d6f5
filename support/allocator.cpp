// support/allocator.cpp — the jemalloc re-exec: find the library, preload it once, say which malloc runs.
#include "support/allocator.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>

namespace fedvlm {

namespace {

constexpr const char* kChoice = "FEDVLM_ALLOCATOR";        // "system": keep glibc's malloc
constexpr const char* kPreloaded = "FEDVLM_ALLOCATOR_PRELOADED"; // set by the re-exec: the path preloaded

/// Debian's libjemalloc2 (multiarch paths), or empty.
std::string jemalloc_path() {
  for (const char* p : {"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                        "/usr/lib/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2"}) {
    struct stat st {};
    if (::stat(p, &st) == 0 && S_ISREG(st.st_mode)) return p;
  }
  return {};
}

bool wants_system() {
  const char* v = std::getenv(kChoice);
  return v && std::strcmp(v, "system") == 0;
}

} // namespace

void allocator_reexec(char** argv) {
  if (wants_system() || std::getenv(kPreloaded)) return;
  const std::string lib = jemalloc_path();
  if (lib.empty()) return;
  const char* preload = std::getenv("LD_PRELOAD");
  if (preload && std::strstr(preload, "jemalloc")) return; // the user preloaded it already
  const std::string value = preload && *preload ? lib + ":" + preload : lib;
  ::setenv("LD_PRELOAD", value.c_str(), 1);
  ::setenv(kPreloaded, lib.c_str(), 1);
  ::execv("/proc/self/exe", argv);
  // The re-exec failed (no /proc, say): go on with glibc's malloc, and say so.
  ::unsetenv(kPreloaded);
  if (preload) ::setenv("LD_PRELOAD", preload, 1);
  else ::unsetenv("LD_PRELOAD");
}

std::string allocator_description() {
  // What is mapped, not what was asked for.
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const auto at = line.find('/');
    if (at != std::string::npos && line.find("libjemalloc", at) != std::string::npos)
      return "jemalloc (" + line.substr(at) + (std::getenv(kPreloaded) ? ", preloaded by a re-exec)" : ", preloaded)");
  }
  if (wants_system()) return "glibc malloc (FEDVLM_ALLOCATOR=system)";
  return jemalloc_path().empty() ? "glibc malloc (libjemalloc2 is not installed)" : "glibc malloc (jemalloc was not preloaded)";
}

} // namespace fedvlm
