// fl/tasks/evaluation_pass.hpp — what every task's evaluation shares: no gradients, the adapters on the device once, batches of sample indices.
#pragma once

#include "model/lora.hpp"
#include "model/tensor_map.hpp"

#include <ATen/core/grad_mode.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace fedvlm {

/// One evaluation over a client's (or the global) samples. While it lives, gradients are off;
/// `context()` runs the model with `adapters`, moved to `device` once. Not copyable: the context
/// points at the moved adapters.
class EvaluationPass {
public:
  EvaluationPass(const TensorMap& adapters, const LoraSettings& lora, c10::Device device);
  EvaluationPass(const EvaluationPass&) = delete;
  EvaluationPass& operator=(const EvaluationPass&) = delete;

  [[nodiscard]] const ForwardContext& context() const { return ctx_; }

  /// Calls `score(batch)` for consecutive slices of `indices` (a long tensor on `index_device`)
  /// of at most `batch_size`, checking for an interrupt (Ctrl-C) before each. Throws
  /// std::invalid_argument when `batch_size` < 1.
  void for_each_batch(const std::vector<int64_t>& indices, int64_t batch_size, c10::Device index_device,
                      const std::function<void(const at::Tensor& batch)>& score) const;

private:
  at::NoGradGuard no_grad_;
  TensorMap on_device_;
  ForwardContext ctx_;
};

/// The values of an integer tensor (any device, any integer type) in order.
[[nodiscard]] std::vector<int64_t> tensor_to_ids(const at::Tensor& t);

/// Appends the values of an integer tensor to `out`.
void append_ids(std::vector<int64_t>& out, const at::Tensor& t);

} // namespace fedvlm
