// fl/tasks/frozen_base.hpp — the one frozen base model every client shares, bound to the sample pool.
//
// When every LoRA target lies in the model's head, the trunk's output never changes during
// federated fine-tuning, so it is computed once per sample here (no autograd graph, eval mode)
// and each training step only runs the head: 40 clients cost one trunk pass over the data.
#pragma once

#include "fl/data/image_dataset.hpp"
#include "model/image_classifier.hpp"

#include <c10/core/Device.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fedvlm {

/// The layers named in `lora_targets` with their shapes. Throws std::invalid_argument naming an
/// unknown module and listing adaptable ones.
/// With `any_weighted_module` (full fine-tuning) a target may also be any module with a
/// "<module>.weight" in the model's state (e.g. a convolution), shaped out × (numel / out).
[[nodiscard]] std::map<std::string, AdaptableLayer> resolve_lora_targets(
    const ImageClassifier& model, const std::vector<std::string>& lora_targets, bool any_weighted_module = false);

class FrozenBase {
public:
  /// Validates `lora_targets` against the model (std::invalid_argument naming the unknown
  /// module and listing the adaptable ones) and, when possible, caches trunk features.
  /// `device`: where the model's state already is (the caller moves it); the pool moves there
  /// too, and the feature cache is computed there.
  FrozenBase(std::shared_ptr<const ImageClassifier> model, ImageDataset pool,
             const std::vector<std::string>& lora_targets, int64_t cache_batch_size = 512,
             bool any_weighted_module = false, c10::Device device = c10::kCPU);

  // -- properties -----------------------------------------------------------
  [[nodiscard]] const ImageClassifier& model() const { return *model_; }
  [[nodiscard]] int64_t size() const { return pool_.size(); }
  [[nodiscard]] int64_t num_classes() const { return model_->num_classes(); }
  [[nodiscard]] const std::map<std::string, AdaptableLayer>& targets() const { return targets_; }
  [[nodiscard]] bool caches_features() const { return features_.defined(); }
  [[nodiscard]] c10::Device device() const { return device_; }
  /// F of the trunk features (N, F): what a linear probe classifies.
  [[nodiscard]] int64_t feature_size() const;
  /// Bytes held for the pool: images, and cached features when present.
  [[nodiscard]] int64_t resident_bytes() const;

  // -- forward --------------------------------------------------------------
  /// Logits of the pool samples `indices` (int64 tensor, any device) under the adapters in
  /// `ctx`, on device(); labels() likewise.
  [[nodiscard]] at::Tensor logits(const at::Tensor& indices, const ForwardContext& ctx) const;
  [[nodiscard]] at::Tensor labels(const at::Tensor& indices) const;

  /// Whether stacked_logits can run clients holding `tensors` (all alike): a linear probe, or
  /// full copies of base tensors of a classic net (cnn_mnist, mlp_2nn).
  [[nodiscard]] bool can_stack(const TensorMap& tensors) const;
  /// K clients' logits in one pass, (K, B, classes): client k's samples `indices[k]` (B each)
  /// under its own tensors `clients[k]` — a probe as one batched matmul over the frozen
  /// features, a classic net's copies as model/classic_nets.hpp classic_net_stacked_logits.
  /// Each client's logits equal logits() with its tensors alone, up to float rounding.
  [[nodiscard]] at::Tensor stacked_logits(const std::vector<at::Tensor>& indices,
                                          const std::vector<const TensorMap*>& clients, bool dropout_active,
                                          const std::vector<at::Generator>& generators) const;

private:
  std::shared_ptr<const ImageClassifier> model_;
  ImageDataset pool_;
  std::map<std::string, AdaptableLayer> targets_;
  at::Tensor features_; ///< (N, F) trunk output, or undefined when a target is in the trunk
  c10::Device device_;
};

} // namespace fedvlm
