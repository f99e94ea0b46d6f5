// support/usable_cores.cpp — the affinity mask's size, falling back to the online cores.
#include "support/usable_cores.hpp"

#include <sched.h>
#include <unistd.h>

namespace fedvlm {

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

} // namespace fedvlm
