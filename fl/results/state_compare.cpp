// fl/results/state_compare.cpp — byte comparisons of tensors and client states.
#include "fl/results/state_compare.hpp"

#include <ATen/ATen.h>

#include <cstring>

namespace fedvlm {

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.unsafeGetTensorImpl() == b.unsafeGetTensorImpl()) return true;
  if (a.scalar_type() != b.scalar_type() || !a.sizes().equals(b.sizes())) return false;
  if (!a.device().is_cpu() || !b.device().is_cpu()) return false; // compared on the host only
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

bool same_tensor_maps(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || !same_bytes(ia->second, ib->second)) return false;
  return true;
}

namespace {

/// Whether `now` is `base` with every tensor the global names replaced by the global's: the
/// state of a client left out of a delta (CheckpointDeltaInfo::left_out_take_global).
bool base_with_global(const TensorMap& base, const TensorMap& global, const TensorMap& now) {
  if (now.size() != base.size()) return false;
  for (auto b = base.begin(), n = now.begin(); b != base.end(); ++b, ++n) {
    if (b->first != n->first) return false;
    auto g = global.find(n->first);
    if (!same_bytes(n->second, g != global.end() ? g->second : b->second)) return false;
  }
  return true;
}

} // namespace

bool only_took_global(const ClientCheckpoint& then, const ClientCheckpoint& now, const TensorMap& global) {
  return same_tensor_maps(now.optimizer_state, then.optimizer_state) && same_tensor_maps(now.residual, then.residual) &&
         base_with_global(then.adapters, global, now.adapters);
}

} // namespace fedvlm
