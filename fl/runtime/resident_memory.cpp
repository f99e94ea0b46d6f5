// fl/runtime/resident_memory.cpp — /proc/self/statm, read once or watched by a sampling thread.
#include "fl/runtime/resident_memory.hpp"

#include "fl/runtime/compute_device.hpp"

#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <fstream>

namespace fedvlm {

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

void return_free_memory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

PeakResidentSampler::PeakResidentSampler(int interval_ms) : start_(resident_bytes()), peak_(start_) {
  thread_ = std::thread([this, interval_ms] {
    while (running_.load(std::memory_order_relaxed)) {
      const int64_t now = resident_bytes();
      int64_t seen = peak_.load(std::memory_order_relaxed);
      while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
  });
}

PeakResidentSampler::~PeakResidentSampler() { stop(); }

int64_t PeakResidentSampler::stop() {
  if (running_.exchange(false)) thread_.join();
  const int64_t now = resident_bytes();
  return std::max<int64_t>(0, std::max(peak_.load(), now) - start_);
}

JobMemoryProbe::JobMemoryProbe(c10::Device device) : device_(device) {
  if (device_.is_cuda()) {
    reset_device_peak(device_);
    start_ = std::max<int64_t>(0, device_memory(device_).allocated);
  } else {
    cpu_ = std::make_unique<PeakResidentSampler>();
  }
}

int64_t JobMemoryProbe::stop() {
  if (cpu_) return cpu_->stop();
  return std::max<int64_t>(0, device_memory(device_).peak - start_);
}

} // namespace fedvlm
