// fl/runtime/resident_memory.hpp — the process's resident memory, now and at its peak over a stretch of work.
#pragma once

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

namespace fedvlm {

/// Resident set size of this process (/proc/self/statm), in bytes; 0 where unreadable.
[[nodiscard]] int64_t resident_bytes();

/// Gives freed heap memory back to the system (glibc's malloc_trim; nothing elsewhere). glibc
/// keeps the pages of freed tensors for reuse, spread over per-thread arenas, so without this
/// a process's resident memory kept growing round after round (8 clients: 420 MiB at round 0,
/// 741 MiB by round 10; with a trim after each round it stays at 380–430 MiB).
void return_free_memory();

/// Samples resident_bytes() on a thread of its own from construction until stop(): the CPU
/// has no allocator peak counter, and a job's large buffers are returned to the system before
/// it ends, so the peak has to be watched while it runs.
class PeakResidentSampler {
public:
  explicit PeakResidentSampler(int interval_ms = 2);
  ~PeakResidentSampler();
  PeakResidentSampler(const PeakResidentSampler&) = delete;
  PeakResidentSampler& operator=(const PeakResidentSampler&) = delete;

  /// Stops sampling; returns the peak minus the resident bytes at construction (>= 0).
  int64_t stop();

private:
  int64_t start_;
  std::atomic<int64_t> peak_;
  std::atomic<bool> running_{true};
  std::thread thread_;
};

/// The memory one job adds at its peak where it runs: on a GPU the caching allocator's peak
/// above what it held at the start (fl/runtime/compute_device.hpp), on the CPU the sampled resident set.
class JobMemoryProbe {
public:
  explicit JobMemoryProbe(c10::Device device);
  /// The job's peak above the start, in bytes (>= 0).
  int64_t stop();

private:
  c10::Device device_;
  int64_t start_ = 0;
  std::unique_ptr<PeakResidentSampler> cpu_;
};

} // namespace fedvlm
