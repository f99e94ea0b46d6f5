// support/allocator.hpp — which malloc this process runs with: jemalloc where Debian's libjemalloc2 is installed.
//
// glibc's malloc keeps the freed activation buffers of interleaved jobs as fragmented heap: 40
// clients peaked at 1.4-1.6x one client's resident memory. jemalloc returns such memory and
// keeps 40 clients within 1.2x without slower rounds (bench/scaling_bench prints both). An
// allocator can only be chosen before the process starts, so a program that wants it calls
// allocator_reexec() first thing in main(): where libjemalloc.so.2 exists and is not loaded
// yet, it runs itself again with LD_PRELOAD naming it (the environment records that, so it
// happens once). Nothing is needed at build time; without the library the process goes on
// with glibc's malloc. FEDVLM_ALLOCATOR=system in the environment keeps glibc's malloc.
#pragma once

#include <string>

namespace fedvlm {

/// Re-executes the running program with jemalloc preloaded when that applies (see above);
/// returns only when it does not (then, or in the re-executed process). `argv` as main() got it.
void allocator_reexec(char** argv);

/// One line for the log: "jemalloc (/usr/lib/x86_64-linux-gnu/libjemalloc.so.2, preloaded)",
/// "glibc malloc (FEDVLM_ALLOCATOR=system)", "glibc malloc (libjemalloc2 is not installed)".
[[nodiscard]] std::string allocator_description();

} // namespace fedvlm
