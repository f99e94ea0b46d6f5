// support/usable_cores.hpp — how many CPU cores this process may run on, for bounds on thread counts.
#pragma once

namespace fedvlm {

/// The cores in this process's affinity mask (sched_getaffinity: what taskset, cgroups' cpusets
/// and container limits leave it), at least 1. Thread and job counts are bounded by a multiple
/// of it: beyond a few per core they only add contention, and 100000 threads hang the machine.
[[nodiscard]] int usable_cores();

} // namespace fedvlm
