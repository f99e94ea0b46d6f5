// fl/results/state_compare.hpp — whether two tensors, tensor maps or client states hold the same bytes.
#pragma once

#include "fl/results/run_checkpoint.hpp"

namespace fedvlm {

/// Two tensors with the same dtype, shape and bytes (the same tensor, or CPU copies). Unlike
/// at::equal, -0.0 and 0.0 differ and a NaN equals itself: what a file would hold.
[[nodiscard]] bool same_bytes(const at::Tensor& a, const at::Tensor& b);
/// The same names, each with same_bytes tensors.
[[nodiscard]] bool same_tensor_maps(const TensorMap& a, const TensorMap& b);

/// Whether client state `now` is `then` with every adapter tensor the global names replaced by
/// the global's (and the same optimizer state and residual): a client that only took the
/// round's download, which a delta checkpoint leaves out.
[[nodiscard]] bool only_took_global(const ClientCheckpoint& then, const ClientCheckpoint& now, const TensorMap& global);

} // namespace fedvlm
