// fl/runtime/compute_device.hpp — where the models run: the `device` setting resolved against this build and machine.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace fedvlm {

/// True for "cpu", "cuda" and "cuda:N" (N a device index): the spellings `device` accepts.
[[nodiscard]] bool valid_device_name(const std::string& name);

struct DeviceChoice {
  c10::Device device{c10::kCPU};
  std::string fallback; ///< why a requested GPU is not used (empty when it is, or for "cpu")
};

/// "cuda" / "cuda:N" → that GPU when this LibTorch has CUDA and the machine has the device;
/// otherwise the CPU, with `fallback` saying which of the two is missing. Throws
/// std::invalid_argument for a name valid_device_name refuses.
[[nodiscard]] DeviceChoice resolve_device(const std::string& name);

/// What a GPU's caching allocator holds for tensors now and at its peak since the last
/// reset_device_peak, in bytes; both -1 for the CPU or a build without CUDA.
struct DeviceMemory {
  int64_t allocated = -1;
  int64_t peak = -1;
};
[[nodiscard]] DeviceMemory device_memory(c10::Device device);
/// Starts a new peak for device_memory (a CUDA device; nothing otherwise).
void reset_device_peak(c10::Device device);

/// Gives the calling thread a CUDA stream of its own from LibTorch's pool, once per thread,
/// so several scheduler workers' kernels can overlap (nothing for the CPU or without CUDA).
void use_own_stream(c10::Device device);

} // namespace fedvlm
