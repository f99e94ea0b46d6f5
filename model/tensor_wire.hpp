// model/tensor_wire.hpp — a tensor as {dtype, shape, raw bytes}: CAF inspect() for messages and checkpoints.
//
// One field list serves every place a tensor leaves memory: a checkpoint file today, a CAF
// message between processes tomorrow. Bytes are the tensor's contiguous storage in host byte
// order; dtypes are the ones the engine uses (float32, bfloat16, float16, float64, int64,
// int32, uint8, bool). An undefined tensor round-trips as undefined.
#pragma once

#include <ATen/core/Tensor.h>
#include <caf/deserializer.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>
#include <caf/serializer.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace fedvlm {

struct WireTensor {
  int8_t dtype = -1; ///< a WireDtype; -1 = undefined tensor
  std::vector<int64_t> shape;
  std::vector<char> bytes;
};

/// Contiguous copy of `t` (on the CPU). Throws std::invalid_argument for an unsupported dtype.
[[nodiscard]] WireTensor tensor_to_wire(const at::Tensor& t);
/// Whether `bytes` is at most 8 bytes for each element of `shape` (no dimension negative, no
/// overflow): a bound checked before a length read from a message or file is allocated.
[[nodiscard]] bool wire_bytes_fit_shape(std::size_t bytes, const std::vector<int64_t>& shape);
/// Checks dtype, shape and byte count agree; throws std::invalid_argument saying what differs.
[[nodiscard]] at::Tensor tensor_from_wire(const WireTensor& w);

} // namespace fedvlm

namespace at {

// Found by argument-dependent lookup, so std::map<std::string, at::Tensor> (a TensorMap) and
// every struct holding one become inspectable too.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Tensor& x) {
  if constexpr (std::is_void_v<typename Inspector::result_type>) {
    // to_string() of a message (logs, errors): the shape, not megabytes of raw bytes.
    std::vector<int64_t> shape = x.defined() ? x.sizes().vec() : std::vector<int64_t>{};
    return f(caf::meta::type_name("tensor"), shape);
  } else if constexpr (Inspector::reads_state) {
    fedvlm::WireTensor w;
    try {
      w = fedvlm::tensor_to_wire(x);
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::invalid_argument, e.what());
    }
    if constexpr (std::is_base_of_v<caf::serializer, Inspector>) {
      // The bytes in one piece: the same encoding (a length, then one byte per char) as the
      // element-by-element path below, without a virtual call per byte.
      if (auto err = f(caf::meta::type_name("tensor"), w.dtype, w.shape)) return err;
      std::size_t n = w.bytes.size();
      if (auto err = f.begin_sequence(n)) return err;
      if (auto err = f.apply_raw(n, w.bytes.data())) return err;
      return f.end_sequence();
    } else {
      return f(caf::meta::type_name("tensor"), w.dtype, w.shape, w.bytes);
    }
  } else if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    fedvlm::WireTensor w;
    if (auto err = f(caf::meta::type_name("tensor"), w.dtype, w.shape)) return err;
    std::size_t n = 0;
    if (auto err = f.begin_sequence(n)) return err;
    // Allocated before it is read: a damaged length must not ask for more than the shape can
    // hold (8 bytes an element at most); tensor_from_wire then checks the exact count.
    if (!fedvlm::wire_bytes_fit_shape(n, w.shape))
      return caf::make_error(caf::sec::invalid_argument, "a tensor of " + std::to_string(n) +
                                                             " bytes cannot have the shape it says");
    w.bytes.resize(n);
    if (auto err = f.apply_raw(n, w.bytes.data())) return err;
    if (auto err = f.end_sequence()) return err;
    try {
      x = fedvlm::tensor_from_wire(w);
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::invalid_argument, e.what());
    }
    return caf::none;
  } else {
    fedvlm::WireTensor w;
    return f(caf::meta::type_name("tensor"), w.dtype, w.shape, w.bytes,
             caf::meta::load_callback([&]() -> caf::error {
               try {
                 x = fedvlm::tensor_from_wire(w);
               } catch (const std::exception& e) {
                 return caf::make_error(caf::sec::invalid_argument, e.what());
               }
               return caf::none;
             }));
  }
}

} // namespace at
