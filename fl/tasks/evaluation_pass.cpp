// fl/tasks/evaluation_pass.cpp — no gradients, adapters on the device once, batches of sample indices.
#include "fl/tasks/evaluation_pass.hpp"

#include "fl/runtime/interrupt.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

namespace fedvlm {

EvaluationPass::EvaluationPass(const TensorMap& adapters, const LoraSettings& lora, c10::Device device)
    : on_device_(tensor_map_to(adapters, device)) {
  ctx_.adapters = &on_device_;
  ctx_.lora = lora;
}

void EvaluationPass::for_each_batch(const std::vector<int64_t>& indices, int64_t batch_size, c10::Device index_device,
                                    const std::function<void(const at::Tensor& batch)>& score) const {
  if (batch_size < 1) throw std::invalid_argument("evaluation: batch_size must be >= 1");
  if (indices.empty()) return;
  const at::Tensor all = at::tensor(indices, at::kLong).to(index_device);
  const int64_t n = all.size(0);
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    throw_if_interrupted();
    score(all.slice(0, begin, std::min(n, begin + batch_size)));
  }
}

std::vector<int64_t> tensor_to_ids(const at::Tensor& t) {
  std::vector<int64_t> ids;
  append_ids(ids, t);
  return ids;
}

void append_ids(std::vector<int64_t>& out, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU).to(at::kLong).contiguous();
  out.insert(out.end(), c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

} // namespace fedvlm
