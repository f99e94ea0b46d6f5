// fl/compute_device.hpp — where the models run: the `device` setting resolved against this build and machine.
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

} // namespace fedvlm
