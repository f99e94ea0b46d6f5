// model/tensor_wire.hpp — a tensor as {dtype, shape, raw bytes}: CAF inspect() for messages and checkpoints.
//
// One field list serves every place a tensor leaves memory: a checkpoint file today, a CAF
// message between processes tomorrow. Bytes are the tensor's contiguous storage in host byte
// order; dtypes are the ones the engine uses (float32, bfloat16, float16, float64, int64,
// int32, uint8, bool). An undefined tensor round-trips as undefined.
#pragma once

#include <ATen/core/Tensor.h>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>

#include <cstdint>
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
    return f(caf::meta::type_name("tensor"), w.dtype, w.shape, w.bytes);
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
