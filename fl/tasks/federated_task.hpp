// fl/tasks/federated_task.hpp — what the device scheduler runs for clients: local training and evaluation.
//
// One implementation per kind of model and data (image classification, VQA). A task owns the
// one frozen base model and the sample pool; jobs bring only adapters and sample indices, so
// any number of clients share it, from any thread.
#pragma once

#include "fl/tasks/local_training.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {

class FederatedTask {
public:
  virtual ~FederatedTask() = default;

  /// The layers LoRA adapts, by module name.
  [[nodiscard]] virtual const std::map<std::string, AdaptableLayer>& targets() const = 0;
  /// Samples in the pool (jobs index into it).
  [[nodiscard]] virtual int64_t size() const = 0;
  /// Bytes held once for all clients: the frozen model and the pool (images, cached features).
  [[nodiscard]] virtual int64_t shared_bytes() const = 0;
  /// A line for the log: what was precomputed once for all clients.
  [[nodiscard]] virtual std::string cache_summary() const = 0;
  /// The frozen base's tensors by name: where full fine-tuning's per-client copies start.
  [[nodiscard]] virtual const TensorMap& base_weights() const = 0;
  /// The linear probe's shape {classes, features}: the frozen features it classifies; {0, 0}
  /// when the task has no linear probe.
  [[nodiscard]] virtual std::pair<int64_t, int64_t> probe_shape() const { return {0, 0}; }
  /// Where the model runs (its weights and caches live there).
  [[nodiscard]] virtual c10::Device device() const { return c10::kCPU; }

  [[nodiscard]] virtual LocalTrainResult train(LocalTrainJob job, const TrainSettings& settings,
                                               const LoraSettings& lora) const = 0;
  [[nodiscard]] virtual EvalResult evaluate(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                            const LoraSettings& lora, int64_t batch_size) const = 0;
  /// Whether evaluate_part works: a large evaluation may then run as whole-batch parts on
  /// several workers, and combine_eval_parts of the parts in order is evaluate()'s result, bit for bit.
  [[nodiscard]] virtual bool evaluates_in_parts() const { return false; }
  [[nodiscard]] virtual EvalPart evaluate_part(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                               const LoraSettings& lora, int64_t batch_size) const {
    throw std::logic_error("this task evaluates only whole (evaluates_in_parts() is false)");
  }
  /// Several clients' trainings (scheduler.batch_clients), results in job order. A task that
  /// can runs them in one pass (train_adapters_grouped); by default, one after the other.
  [[nodiscard]] virtual std::vector<LocalTrainResult> train_group(std::vector<LocalTrainJob> jobs,
                                                                  const TrainSettings& settings,
                                                                  const LoraSettings& lora) const {
    std::vector<LocalTrainResult> out;
    for (auto& job : jobs) out.push_back(train(std::move(job), settings, lora));
    return out;
  }
};

/// Image classification on a FrozenBase.
class ClassificationTask : public FederatedTask {
public:
  explicit ClassificationTask(std::shared_ptr<const FrozenBase> base) : base_(std::move(base)) {}

  [[nodiscard]] const std::map<std::string, AdaptableLayer>& targets() const override { return base_->targets(); }
  [[nodiscard]] int64_t size() const override { return base_->size(); }
  [[nodiscard]] int64_t shared_bytes() const override {
    return static_cast<int64_t>(tensor_map_bytes(base_->model().state())) + base_->resident_bytes();
  }
  [[nodiscard]] const TensorMap& base_weights() const override { return base_->model().state(); }
  [[nodiscard]] std::pair<int64_t, int64_t> probe_shape() const override {
    return {base_->num_classes(), base_->feature_size()};
  }
  [[nodiscard]] c10::Device device() const override { return base_->device(); }
  [[nodiscard]] std::string cache_summary() const override {
    return base_->caches_features()
               ? "all LoRA targets are in the head: trunk features computed once for " +
                     std::to_string(base_->size()) + " samples"
               : "a LoRA target is in the trunk: every step runs the whole model";
  }
  [[nodiscard]] LocalTrainResult train(LocalTrainJob job, const TrainSettings& settings,
                                       const LoraSettings& lora) const override {
    return train_local(*base_, std::move(job), settings, lora);
  }
  [[nodiscard]] EvalResult evaluate(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                    const LoraSettings& lora, int64_t batch_size) const override {
    return evaluate_local(*base_, adapters, indices, lora, batch_size);
  }
  [[nodiscard]] bool evaluates_in_parts() const override { return true; }
  [[nodiscard]] EvalPart evaluate_part(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                       const LoraSettings& lora, int64_t batch_size) const override {
    return evaluate_local_part(*base_, adapters, indices, lora, batch_size);
  }
  /// One pass over the union of the clients' batches when every job is groupable(); the
  /// clients' own tensors stacked (train_stacked) when every job is a full copy or a probe this
  /// model can stack; else one after the other.
  [[nodiscard]] std::vector<LocalTrainResult> train_group(std::vector<LocalTrainJob> jobs, const TrainSettings& settings,
                                                          const LoraSettings& lora) const override {
    bool lora_only = true, whole = true;
    for (const auto& job : jobs) {
      lora_only = lora_only && groupable(job);
      whole = whole && stackable(job) && base_->can_stack(job.adapters) &&
              job.adapters.size() == jobs.front().adapters.size() &&
              std::equal(job.adapters.begin(), job.adapters.end(), jobs.front().adapters.begin(),
                         [](const auto& a, const auto& b) { return a.first == b.first; });
    }
    if (lora_only) return train_adapters_grouped(classification_loss(*base_), std::move(jobs), settings, lora, base_->device());
    if (whole) return train_stacked(*base_, std::move(jobs), settings);
    return FederatedTask::train_group(std::move(jobs), settings, lora);
  }

private:
  std::shared_ptr<const FrozenBase> base_;
};

} // namespace fedvlm
