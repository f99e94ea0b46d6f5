// model/tensor_map.hpp — named tensors in a fixed order: weights, adapters, optimizer state.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <map>
#include <string>

namespace fedvlm {

/// Named tensors. `std::map` keeps names sorted, so every loop over a map (aggregation,
/// serialization, optimizer steps) visits tensors in the same order on every run.
using TensorMap = std::map<std::string, at::Tensor>;

/// Bytes the tensors would occupy on the wire (numel × element size, no framing).
[[nodiscard]] std::size_t tensor_map_bytes(const TensorMap& tensors);

/// Deep copy (detached, contiguous): a message or a snapshot must not alias live state.
[[nodiscard]] TensorMap tensor_map_clone(const TensorMap& tensors);

/// "[2, 3, 4]": a shape for error messages.
[[nodiscard]] std::string tensor_shape_string(at::IntArrayRef sizes);

/// The first tensor, in name order, holding nan or ±inf, as "tensor 'NAME' holds nan at
/// element I of N"; "" when every floating-point tensor is finite.
[[nodiscard]] std::string tensor_map_first_non_finite(const TensorMap& tensors);

/// Throws std::runtime_error "SOURCE: tensor 'NAME' holds nan at element I of N; ..." unless
/// every tensor is finite. For weights loaded into a run: a checkpoint of nan otherwise trains
/// and "completes" with loss nan.
void require_finite_weights(const TensorMap& tensors, const std::string& source);

/// The same tensors on `device` (a tensor already there is shared, not copied).
[[nodiscard]] TensorMap tensor_map_to(const TensorMap& tensors, c10::Device device);

/// Throws std::invalid_argument "WHO: the model's NAME is on D, expected E (move the model's
/// state first)" unless every tensor is on `device`.
void require_on_device(const TensorMap& tensors, c10::Device device, const std::string& who);

/// The entries of `tensors` whose names end with `suffix` (e.g. ".lora_B").
[[nodiscard]] TensorMap tensor_map_with_suffix(const TensorMap& tensors, const std::string& suffix);

} // namespace fedvlm
