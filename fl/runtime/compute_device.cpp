// fl/runtime/compute_device.cpp — device names, and what this LibTorch build can run on.
#include "fl/runtime/compute_device.hpp"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#ifdef FEDVLM_WITH_CUDA // a CUDA LibTorch (CMake sets it when it finds torch_cuda)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cctype>
#include <stdexcept>

namespace fedvlm {

bool valid_device_name(const std::string& name) {
  if (name == "cpu" || name == "cuda") return true;
  if (name.rfind("cuda:", 0) != 0 || name.size() == 5 || name.size() > 8) return false;
  for (std::size_t i = 5; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

DeviceChoice resolve_device(const std::string& name) {
  if (!valid_device_name(name))
    throw std::invalid_argument("device \"" + name + "\": expected \"cpu\", \"cuda\" or \"cuda:N\" (N a GPU index)");
  if (name == "cpu") return {};
  const int index = name == "cuda" ? 0 : std::stoi(name.substr(5));
  if (!at::hasCUDA())
    return {c10::Device(c10::kCPU), "this LibTorch build has no CUDA support (Debian's is CPU-only; build against a "
                                    "CUDA LibTorch, see scripts/device_build.sh) or no GPU is visible"};
  const int count = at::detail::getCUDAHooks().getNumGPUs();
  if (index >= count)
    return {c10::Device(c10::kCPU), "device " + name + " requested, but this machine has " + std::to_string(count) +
                                        " GPU" + (count == 1 ? "" : "s")};
  return {c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index)), ""};
}

DeviceMemory device_memory(c10::Device device) {
#ifdef FEDVLM_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto& bytes = stats.allocated_bytes[static_cast<std::size_t>(c10::cuda::CUDACachingAllocator::StatType::AGGREGATE)];
    return {bytes.current, bytes.peak};
  }
#endif
  (void)device;
  return {};
}

void use_own_stream(c10::Device device) {
#ifdef FEDVLM_WITH_CUDA
  thread_local bool done = false;
  if (device.is_cuda() && !done) {
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
    done = true;
  }
#endif
  (void)device;
}

void reset_device_peak(c10::Device device) {
#ifdef FEDVLM_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
  (void)device;
}

} // namespace fedvlm
