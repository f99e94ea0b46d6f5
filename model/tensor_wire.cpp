// model/tensor_wire.cpp — conversion between at::Tensor and its wire form.
#include "model/tensor_wire.hpp"

#include "model/tensor_map.hpp"

#include <ATen/ATen.h>

#include <array>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace fedvlm {

namespace {

// The wire codes are part of the checkpoint format: append, never renumber.
const std::array<std::pair<at::ScalarType, const char*>, 8> kDtypes = {{
    {at::kFloat, "float32"},
    {at::kBFloat16, "bfloat16"},
    {at::kHalf, "float16"},
    {at::kDouble, "float64"},
    {at::kLong, "int64"},
    {at::kInt, "int32"},
    {at::kByte, "uint8"},
    {at::kBool, "bool"},
}};

} // namespace

WireTensor tensor_to_wire(const at::Tensor& t) {
  WireTensor w;
  if (!t.defined()) return w;
  for (std::size_t i = 0; i < kDtypes.size(); ++i)
    if (kDtypes[i].first == t.scalar_type()) w.dtype = static_cast<int8_t>(i);
  if (w.dtype < 0)
    throw std::invalid_argument(std::string("tensor_to_wire: unsupported dtype ") + at::toString(t.scalar_type()));
  const at::Tensor c = t.detach().to(at::kCPU).contiguous();
  w.shape.assign(c.sizes().begin(), c.sizes().end());
  w.bytes.resize(static_cast<std::size_t>(c.numel()) * c.element_size());
  if (!w.bytes.empty()) std::memcpy(w.bytes.data(), c.data_ptr(), w.bytes.size());
  return w;
}

bool wire_bytes_fit_shape(std::size_t bytes, const std::vector<int64_t>& shape) {
  std::size_t limit = 8; // bytes of the widest element
  for (const int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) return bytes == 0;
    if (limit > std::numeric_limits<std::size_t>::max() / static_cast<std::size_t>(d)) return true; // beyond any length
    limit *= static_cast<std::size_t>(d);
  }
  return bytes <= limit;
}

at::Tensor tensor_from_wire(const WireTensor& w) {
  if (w.dtype == -1) {
    if (!w.shape.empty() || !w.bytes.empty())
      throw std::invalid_argument("tensor_from_wire: an undefined tensor carries a shape or bytes");
    return {};
  }
  if (w.dtype < 0 || static_cast<std::size_t>(w.dtype) >= kDtypes.size())
    throw std::invalid_argument("tensor_from_wire: unknown dtype code " + std::to_string(w.dtype));
  const at::ScalarType type = kDtypes[static_cast<std::size_t>(w.dtype)].first;
  int64_t numel = 1;
  for (int64_t d : w.shape) {
    if (d < 0) throw std::invalid_argument("tensor_from_wire: negative dimension in shape " + tensor_shape_string(w.shape));
    if (d != 0 && numel > (int64_t{1} << 40) / d)
      throw std::invalid_argument("tensor_from_wire: shape " + tensor_shape_string(w.shape) + " is too large");
    numel *= d;
  }
  const std::size_t expected = static_cast<std::size_t>(numel) * at::elementSize(type);
  if (expected != w.bytes.size())
    throw std::invalid_argument("tensor_from_wire: shape " + tensor_shape_string(w.shape) + " of " +
                                kDtypes[static_cast<std::size_t>(w.dtype)].second + " needs " +
                                std::to_string(expected) + " bytes, got " + std::to_string(w.bytes.size()));
  at::Tensor t = at::empty(w.shape, at::TensorOptions().dtype(type));
  if (expected) std::memcpy(t.data_ptr(), w.bytes.data(), expected);
  return t;
}

} // namespace fedvlm
