// fl/tasks/clip_task.cpp — cached image features, prompt ids, zero-shot logits, training and evaluation.
#include "fl/tasks/clip_task.hpp"

#include "fl/tasks/evaluation_pass.hpp"
#include "fl/tasks/full_fine_tuning.hpp"
#include "fl/runtime/interrupt.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

namespace fedvlm {
namespace {

bool in_text_tower(const std::string& module) {
  return module.rfind("text_model.", 0) == 0 || module == "text_projection";
}

} // namespace

std::string clip_fill_template(const std::string& templ, const std::string& class_name) {
  const std::size_t at = templ.find("{}");
  if (at == std::string::npos || templ.find("{}", at + 2) != std::string::npos)
    throw std::invalid_argument("clip prompt template \"" + templ +
                                "\": expected exactly one \"{}\" where the class name goes, e.g. \"a photo of a {}.\"");
  return templ.substr(0, at) + class_name + templ.substr(at + 2);
}

void clip_check_text_tower(const std::map<std::string, AdaptableLayer>& modules, const std::string& key) {
  for (const auto& [name, layer] : modules)
    if (!in_text_tower(name))
      throw std::invalid_argument(key + ": '" + name +
                                  "' is outside CLIP's text tower; this task caches image features, so only "
                                  "text_model.* modules and text_projection can be trained");
}

at::Tensor clip_tokenize_prompts(const ClipTokenizer& tokenizer, const ClipConfig& config,
                                 const std::vector<std::string>& prompts) {
  if (tokenizer.vocab_size() > config.text.vocab_size)
    throw std::invalid_argument("clip prompts: the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                " tokens, the model's text vocabulary (text.vocab_size) only " +
                                std::to_string(config.text.vocab_size));
  const int64_t context = std::min<int64_t>(ClipTokenizer::kContextLength, config.text.max_positions);
  at::Tensor out = at::empty({static_cast<int64_t>(prompts.size()), context}, at::kLong);
  auto acc = out.accessor<int64_t, 2>();
  std::vector<int64_t> eot(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const ClipTokenizer::Encoding e = tokenizer.encode_context(prompts[i], context);
    if (e.truncated)
      throw std::invalid_argument("clip prompt \"" + prompts[i] + "\" needs " +
                                  std::to_string(tokenizer.encode(prompts[i]).size()) +
                                  " tokens, more than the text context of " + std::to_string(context));
    for (int64_t j = 0; j < context; ++j) acc[static_cast<int64_t>(i)][j] = e.ids[static_cast<std::size_t>(j)];
    eot[i] = e.eot_position;
  }
  if (prompts.empty()) return out;
  std::vector<int64_t> pooled;
  try {
    pooled = tensor_to_ids(clip_text_pool_positions(config.text, out));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + "; expected text.eos_token_id to be the tokenizer's eos id " +
                                std::to_string(tokenizer.eos_id()));
  }
  for (std::size_t i = 0; i < prompts.size(); ++i)
    if (pooled[i] != eot[i])
      throw std::invalid_argument("clip prompt \"" + prompts[i] + "\": the model pools position " +
                                  std::to_string(pooled[i]) + ", but the tokenizer's end-of-text token (id " +
                                  std::to_string(tokenizer.eos_id()) + ") is at " + std::to_string(eot[i]) +
                                  "; expected text.eos_token_id to be the tokenizer's eos id (it is " +
                                  std::to_string(config.text.eos_token_id) + ")");
  return out;
}

at::Tensor clip_class_embeddings(const at::Tensor& text_embeds, int64_t classes) {
  if (text_embeds.dim() != 2 || classes < 1 || text_embeds.size(0) % classes != 0)
    throw std::invalid_argument("clip_class_embeddings: expected (C·T, P) embeddings for C = " +
                                std::to_string(classes) + " classes, got " + tensor_shape_string(text_embeds.sizes()));
  const at::Tensor unit = text_embeds / text_embeds.norm(2, {-1}, /*keepdim=*/true);
  const at::Tensor mean = unit.view({classes, text_embeds.size(0) / classes, text_embeds.size(1)}).mean(1);
  return mean / mean.norm(2, {-1}, /*keepdim=*/true);
}

ClipZeroShotTask::ClipZeroShotTask(std::shared_ptr<const TensorMap> weights, ClipConfig config,
                                   const ClipTokenizer& tokenizer, const at::Tensor& pixels, const at::Tensor& labels,
                                   std::vector<std::string> class_names, std::map<std::string, AdaptableLayer> targets,
                                   std::vector<std::string> templates, int64_t encode_batch_size,
                                   bool any_weighted_module)
    : ClipZeroShotTask(std::move(weights), std::move(config), tokenizer, ClipPixelTensor(pixels), labels,
                       std::move(class_names), std::move(targets), std::move(templates), encode_batch_size,
                       any_weighted_module) {}

ClipZeroShotTask::ClipZeroShotTask(std::shared_ptr<const TensorMap> weights, ClipConfig config,
                                   const ClipTokenizer& tokenizer, const ClipPixelSource& pixels,
                                   const at::Tensor& labels, std::vector<std::string> class_names,
                                   std::map<std::string, AdaptableLayer> targets, std::vector<std::string> templates,
                                   int64_t encode_batch_size, bool any_weighted_module)
    : weights_(std::move(weights)), config_(std::move(config)), class_names_(std::move(class_names)),
      templates_(std::move(templates)), targets_(std::move(targets)), full_(any_weighted_module) {
  if (!weights_) throw std::invalid_argument("ClipZeroShotTask: no weights given");
  clip_config_check(config_);
  clip_validate_weights(*weights_, config_);
  if (class_names_.empty())
    throw std::invalid_argument("ClipZeroShotTask: no class names (expected one per label, in label order)");
  for (std::size_t c = 0; c < class_names_.size(); ++c)
    if (class_names_[c].empty())
      throw std::invalid_argument("ClipZeroShotTask: class name " + std::to_string(c) + " is empty");
  if (templates_.empty())
    throw std::invalid_argument("ClipZeroShotTask: no prompt templates (expected e.g. \"a photo of a {}.\")");
  if (encode_batch_size < 1)
    throw std::invalid_argument("ClipZeroShotTask: encode_batch_size must be >= 1, got " +
                                std::to_string(encode_batch_size));

  // Targets: offered by the model (a Linear for LoRA, any module with tensors for full
  // fine-tuning), and in the text tower (the image features are cached).
  const auto offered = full_ ? weighted_modules(tensor_shapes(*weights_)) : clip_adaptable_layers(config_);
  const std::string key = full_ ? "strategy.trainable" : "lora.targets";
  for (const auto& [name, layer] : targets_)
    if (!offered.count(name))
      throw std::invalid_argument(key + ": '" + name + "' is not " +
                                  (full_ ? "a module (no '" + name + ".weight' or '.bias')" : "an adaptable layer") +
                                  " of CLIP " + config_.name);
  clip_check_text_tower(targets_, key);

  // Prompts, class-major, tokenized once; the model must pool where the tokenizer put eot.
  std::vector<std::string> prompts;
  for (const auto& name : class_names_)
    for (const auto& t : templates_) prompts.push_back(clip_fill_template(t, name));
  // The task runs where its weights are (the caller moved them): a GPU, or the CPU.
  device_ = weights_->begin()->second.device();
  require_on_device(*weights_, device_, "ClipZeroShotTask");
  prompt_ids_ = clip_tokenize_prompts(tokenizer, config_, prompts).to(device_);

  // Labels first: they are checked before minutes of encoding, the pixels batch by batch.
  const int64_t n = pixels.size();
  if (labels.dim() != 1 || labels.size(0) != n || labels.is_floating_point())
    throw std::invalid_argument("ClipZeroShotTask: expected integer labels (" + std::to_string(n) +
                                "), one per image, got " + tensor_shape_string(labels.sizes()));
  labels_ = labels.to(at::kLong).contiguous().clone();
  const int64_t classes = static_cast<int64_t>(class_names_.size());
  if (labels_.numel() > 0 && (labels_.min().item<int64_t>() < 0 || labels_.max().item<int64_t>() >= classes))
    throw std::invalid_argument("ClipZeroShotTask: labels span [" + std::to_string(labels_.min().item<int64_t>()) +
                                ", " + std::to_string(labels_.max().item<int64_t>()) + "], but there are " +
                                std::to_string(classes) + " class names (expected labels in [0, " +
                                std::to_string(classes) + "))");

  // One batch of preprocessed pixels at a time (a whole pool at 224 px would not fit in memory);
  // only the (N, P) embeddings are kept.
  at::NoGradGuard no_grad;
  const ForwardContext plain;
  const int64_t s = config_.vision.image_size;
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < n; b += encode_batch_size) {
    throw_if_interrupted();
    const int64_t e = std::min(n, b + encode_batch_size);
    const at::Tensor batch = pixels.range(b, e);
    if (batch.dim() != 4 || batch.size(0) != e - b || batch.size(1) != 3 || batch.size(2) != s ||
        batch.size(3) != s || !batch.is_floating_point())
      throw std::invalid_argument("ClipZeroShotTask: expected float pixels (" + std::to_string(e - b) + ", 3, " +
                                  std::to_string(s) + ", " + std::to_string(s) + ") for images " + std::to_string(b) +
                                  ".." + std::to_string(e - 1) + ", got " + tensor_shape_string(batch.sizes()));
    parts.push_back(clip_encode_image(*weights_, config_, batch.to(device_), plain));
  }
  const at::Tensor embeds =
      parts.empty() ? at::empty({0, config_.projection_dim}, at::kFloat) : at::cat(parts, 0);
  image_features_ = (embeds / embeds.norm(2, {-1}, /*keepdim=*/true)).contiguous();
  labels_ = labels_.to(device_);
}

int64_t ClipZeroShotTask::shared_bytes() const {
  int64_t bytes = static_cast<int64_t>(tensor_map_bytes(*weights_));
  for (const at::Tensor* t : {&image_features_, &labels_, &prompt_ids_})
    bytes += t->numel() * static_cast<int64_t>(t->element_size());
  return bytes;
}

std::string ClipZeroShotTask::cache_summary() const {
  return (full_ ? "full fine-tuning of " + std::to_string(targets_.size()) + " text-tower modules"
                : "LoRA on " + std::to_string(targets_.size()) + " text-tower Linears") +
         "; vision tower run once for " +
         std::to_string(size()) + " images (cached unit image embeddings, " +
         std::to_string(image_features_.numel() * static_cast<int64_t>(image_features_.element_size()) >> 10) +
         " KiB); " + std::to_string(prompt_ids_.size(0)) + " prompts (" + std::to_string(class_names_.size()) +
         " classes x " + std::to_string(templates_.size()) + " templates) tokenized once, encoded every step";
}

at::Tensor ClipZeroShotTask::class_embeddings(const ForwardContext& ctx) const {
  return clip_class_embeddings(clip_encode_text(*weights_, config_, prompt_ids_, ctx),
                               static_cast<int64_t>(class_names_.size()));
}

at::Tensor ClipZeroShotTask::logits(const at::Tensor& indices, const at::Tensor& class_embeds) const {
  return at::matmul(image_features_.index_select(0, indices.to(device_)), class_embeds.t()) *
         weights_->at("logit_scale").exp();
}

namespace {

/// The linear probe's logits on unit image features, or undefined when there is no probe.
at::Tensor probe_logits(const at::Tensor& image_features, const ForwardContext& ctx) {
  if (ctx.adapters == nullptr || !ctx.adapters->count(kProbeWeight)) return {};
  return at::linear(image_features, ctx.adapters->at(kProbeWeight), ctx.adapters->at(kProbeBias));
}

} // namespace

LocalTrainResult ClipZeroShotTask::train(LocalTrainJob job, const TrainSettings& settings,
                                         const LoraSettings& lora) const {
  return train_adapters(
      [this](const at::Tensor& any_batch, const ForwardContext& ctx) {
        const at::Tensor batch = any_batch.to(device_);
        at::Tensor lg = probe_logits(image_features_.index_select(0, batch), ctx);
        if (!lg.defined()) lg = logits(batch, class_embeddings(ctx));
        return at::cross_entropy_loss(lg, labels_.index_select(0, batch));
      },
      std::move(job), settings, lora, device_);
}

EvalResult ClipZeroShotTask::evaluate(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                      const LoraSettings& lora, int64_t batch_size) const {
  EvalResult result;
  if (indices.empty()) return result;
  const EvaluationPass pass(adapters, lora, device_);
  const ForwardContext& ctx = pass.context();
  const bool probe = adapters.count(kProbeWeight) > 0;
  const at::Tensor text = probe ? at::Tensor() : class_embeddings(ctx);
  const auto n = static_cast<int64_t>(indices.size());
  std::vector<int64_t> y_true, y_pred;
  double loss_sum = 0;
  pass.for_each_batch(indices, batch_size, device_, [&](const at::Tensor& batch) {
    const at::Tensor lg = probe ? probe_logits(image_features_.index_select(0, batch), ctx) : logits(batch, text);
    const at::Tensor lab = labels_.index_select(0, batch);
    loss_sum += at::cross_entropy_loss(lg, lab, {}, at::Reduction::Sum).item<double>();
    append_ids(y_pred, lg.argmax(1));
    append_ids(y_true, lab);
  });
  result.metrics = classification_metrics(y_true, y_pred);
  result.loss = loss_sum / static_cast<double>(n);
  return result;
}

double ClipZeroShotTask::zero_shot_accuracy(const std::vector<int64_t>& indices) const {
  return evaluate(TensorMap{}, indices, LoraSettings{}, 1024).metrics.accuracy;
}

} // namespace fedvlm
