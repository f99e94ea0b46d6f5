// model/tensor_map.cpp — helpers over named tensors.
#include "model/tensor_map.hpp"

#include <ATen/ATen.h>

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

} // namespace fedvlm
