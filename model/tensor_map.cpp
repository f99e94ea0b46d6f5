// model/tensor_map.cpp — helpers over named tensors.
#include "model/tensor_map.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>

namespace fedvlm {

std::size_t tensor_map_bytes(const TensorMap& tensors) {
  std::size_t total = 0;
  for (const auto& [name, t] : tensors)
    total += static_cast<std::size_t>(t.numel()) * t.element_size();
  return total;
}

TensorMap tensor_map_clone(const TensorMap& tensors) {
  TensorMap out;
  for (const auto& [name, t] : tensors) out.emplace(name, t.detach().clone().contiguous());
  return out;
}

std::string tensor_shape_string(at::IntArrayRef sizes) {
  std::string out = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

TensorMap tensor_map_with_suffix(const TensorMap& tensors, const std::string& suffix) {
  TensorMap out;
  for (const auto& [name, t] : tensors)
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.emplace(name, t);
  return out;
}

std::string tensor_map_first_non_finite(const TensorMap& tensors) {
  for (const auto& [name, t] : tensors) {
    if (!t.defined() || !t.is_floating_point() || t.numel() == 0) continue;
    const at::Tensor bad = at::isfinite(t).logical_not_().flatten();
    if (!bad.any().item<bool>()) continue;
    const int64_t i = bad.nonzero().min().item<int64_t>();
    const double v = t.flatten()[i].item<double>();
    return "tensor '" + name + "' holds " + (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf") + " at element " +
           std::to_string(i) + " of " + std::to_string(t.numel());
  }
  return "";
}

void require_finite_weights(const TensorMap& tensors, const std::string& source) {
  const std::string bad = tensor_map_first_non_finite(tensors);
  if (!bad.empty())
    throw std::runtime_error(source + ": " + bad + "; the checkpoint is corrupt or its training diverged");
}

TensorMap tensor_map_to(const TensorMap& tensors, c10::Device device) {
  TensorMap out;
  for (const auto& [name, t] : tensors) out.emplace(name, t.to(device));
  return out;
}

void require_on_device(const TensorMap& tensors, c10::Device device, const std::string& who) {
  for (const auto& [name, t] : tensors)
    if (t.device() != device)
      throw std::invalid_argument(who + ": the model's " + name + " is on " + t.device().str() + ", expected " +
                                  device.str() + " (move the model's state first)");
}

} // namespace fedvlm
