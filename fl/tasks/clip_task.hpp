// fl/tasks/clip_task.hpp — federated zero-shot CLIP classification: LoRA on the text tower, frozen image features.
//
// FLoRA's setting (issue #8): clients fine-tune LoRA adapters on CLIP's text encoder and
// classify images by similarity with the class prompts ("a photo of a {}."). The vision tower
// never sees an adapter, so every image's embedding is computed once, when the task is built,
// L2-normalised and shared by every client; a training step runs only the text tower, over the
// class × template prompts (tokenized once as well).
//
// Logits of image i and class c: exp(logit_scale) · <img_i, t_c>, where img_i is the unit image
// embedding and t_c the class embedding of CLIP's zero-shot recipe: the mean over templates of
// the unit text embeddings of the class's prompts, renormalised to unit length. Loss:
// cross-entropy of those logits against the label.
#pragma once

#include "fl/data/clip_pixel_source.hpp"
#include "fl/tasks/federated_task.hpp"
#include "model/clip.hpp"
#include "model/clip_tokenizer.hpp"

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fedvlm {

/// CLIP's single-prompt zero-shot template.
inline const std::vector<std::string> kClipDefaultTemplates{"a photo of a {}."};

/// `templ` with its one "{}" replaced by `class_name`. Throws std::invalid_argument naming the
/// template unless it holds exactly one "{}".
[[nodiscard]] std::string clip_fill_template(const std::string& templ, const std::string& class_name);

class ClipZeroShotTask : public FederatedTask {
public:
  /// - `weights`/`config`: the shared frozen CLIP (clip_validate_weights is applied); never written.
  /// - `pixels`: the N images, preprocessed on request (ClipPixelsFromImages for a pool's raw
  ///   images); `labels` (N) integer classes.
  /// - `class_names` (label order) and `templates` (each with exactly one "{}").
  /// - `targets`: the LoRA targets (e.g. match_lora_targets(clip_adaptable_layers(config),
  ///   kClipFloraTargets)); all must lie in the text tower (text_model.* or text_projection), as
  ///   the image features are cached. With `any_weighted_module` (full fine-tuning) they are the
  ///   trained modules instead, any module of `weights` (weighted_modules: LayerNorms and
  ///   embeddings too), still all in the text tower.
  /// Every prompt is tokenized at the text context (min(77, text.max_positions)); the task checks
  /// that the model pools each one at the tokenizer's end-of-text token (a tokenizer whose eos
  /// is not the config's text.eos_token_id under the first-eos rule fails here, not silently).
  /// Images are encoded once, without autograd, in consecutive ranges of `encode_batch_size`:
  /// `pixels` is asked for one range at a time, so at most one batch of preprocessed pixels
  /// exists at once; nothing of `pixels` is kept.
  /// Throws std::invalid_argument, naming what was wrong and what was expected, for: no class
  /// names or an empty one, no templates or one without exactly one "{}", a prompt longer than
  /// the context, a vocabulary or pooling mismatch, pixels / labels of the wrong shape or
  /// count, a label outside [0, class count), a target outside the text tower or not offered by
  /// the model. More class names than labels use is allowed (a pool need not hold every
  /// class; the extra classes still compete in the softmax). Weights that do not fit `config`
  /// throw clip_validate_weights's std::runtime_error.
  ClipZeroShotTask(std::shared_ptr<const TensorMap> weights, ClipConfig config, const ClipTokenizer& tokenizer,
                   const ClipPixelSource& pixels, const at::Tensor& labels, std::vector<std::string> class_names,
                   std::map<std::string, AdaptableLayer> targets,
                   std::vector<std::string> templates = kClipDefaultTemplates, int64_t encode_batch_size = 256,
                   bool any_weighted_module = false);
  /// The same for pixels already preprocessed, (N, 3, image_size, image_size) float.
  ClipZeroShotTask(std::shared_ptr<const TensorMap> weights, ClipConfig config, const ClipTokenizer& tokenizer,
                   const at::Tensor& pixels, const at::Tensor& labels, std::vector<std::string> class_names,
                   std::map<std::string, AdaptableLayer> targets,
                   std::vector<std::string> templates = kClipDefaultTemplates, int64_t encode_batch_size = 256,
                   bool any_weighted_module = false);

  [[nodiscard]] const std::map<std::string, AdaptableLayer>& targets() const override { return targets_; }
  [[nodiscard]] int64_t size() const override { return labels_.size(0); }
  /// The frozen weights + cached image features + labels + prompt ids.
  [[nodiscard]] int64_t shared_bytes() const override;
  [[nodiscard]] std::string cache_summary() const override;
  [[nodiscard]] c10::Device device() const override { return device_; }
  [[nodiscard]] const TensorMap& base_weights() const override { return *weights_; }
  /// A linear probe classifies the cached unit image embeddings: {classes, projection_dim}.
  [[nodiscard]] std::pair<int64_t, int64_t> probe_shape() const override {
    return {static_cast<int64_t>(class_names_.size()), image_features_.size(1)};
  }

  /// train_adapters with the cross-entropy of the zero-shot logits; each step encodes every
  /// class × template prompt under the job's adapters (dropout active).
  [[nodiscard]] LocalTrainResult train(LocalTrainJob job, const TrainSettings& settings,
                                       const LoraSettings& lora) const override;
  /// No autograd: class embeddings once under `adapters`, then logits per batch of images;
  /// argmax accuracy, macro P/R/F1 (classification_metrics) and mean cross-entropy.
  [[nodiscard]] EvalResult evaluate(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                    const LoraSettings& lora, int64_t batch_size) const override;

  /// Accuracy of the plain model (no adapters) on `indices`: CLIP's zero-shot accuracy.
  [[nodiscard]] double zero_shot_accuracy(const std::vector<int64_t>& indices) const;

  /// (C, projection_dim) unit class embeddings under `ctx` (autograd follows the adapters).
  [[nodiscard]] at::Tensor class_embeddings(const ForwardContext& ctx) const;
  /// (B, C) logits of the images at `indices` (int64) against `class_embeds`.
  [[nodiscard]] at::Tensor logits(const at::Tensor& indices, const at::Tensor& class_embeds) const;

  /// (N, projection_dim) unit image embeddings, computed in the constructor.
  [[nodiscard]] const at::Tensor& image_features() const { return image_features_; }
  [[nodiscard]] const at::Tensor& labels() const { return labels_; }
  /// (C · T, context) prompt ids, class-major: row c·T + t is class c under template t.
  [[nodiscard]] const at::Tensor& prompt_ids() const { return prompt_ids_; }
  [[nodiscard]] const std::vector<std::string>& class_names() const { return class_names_; }
  [[nodiscard]] const std::vector<std::string>& templates() const { return templates_; }

private:
  std::shared_ptr<const TensorMap> weights_;
  ClipConfig config_;
  std::vector<std::string> class_names_;
  std::vector<std::string> templates_;
  std::map<std::string, AdaptableLayer> targets_;
  bool full_ = false;         ///< targets are trained whole (full fine-tuning), not adapted by LoRA
  c10::Device device_{c10::kCPU}; ///< where the weights are, and so the caches and the work
  at::Tensor image_features_; ///< (N, P) unit length, no autograd
  at::Tensor labels_;         ///< (N) int64
  at::Tensor prompt_ids_;     ///< (C·T, L) int64
};

/// Throws std::invalid_argument "KEY: 'M' is outside CLIP's text tower; ..." for the first
/// module of `modules` that is neither text_model.* nor text_projection: the zero-shot task
/// caches the image features, so nothing of the vision tower may change.
void clip_check_text_tower(const std::map<std::string, AdaptableLayer>& modules, const std::string& key);

/// Tokenizes `prompts` at CLIP's text context for `config` (min(77, text.max_positions)) and
/// stacks them to (P, context) int64. Throws std::invalid_argument naming the prompt when it
/// does not fit (it would lose its end), when the tokenizer's vocabulary exceeds the model's,
/// or when the model would pool a prompt elsewhere than at the tokenizer's end-of-text token
/// (e.g. text.eos_token_id is not the tokenizer's eos id under the first-eos rule).
[[nodiscard]] at::Tensor clip_tokenize_prompts(const ClipTokenizer& tokenizer, const ClipConfig& config,
                                               const std::vector<std::string>& prompts);

/// The (C, P) class embeddings of CLIP's zero-shot recipe from (C·T, P) text embeddings in
/// class-major order: each normalised, averaged over the T templates, renormalised.
[[nodiscard]] at::Tensor clip_class_embeddings(const at::Tensor& text_embeds, int64_t classes);

} // namespace fedvlm
