// fl/tasks/frozen_base.cpp — target validation and the trunk-feature cache.
#include "fl/tasks/frozen_base.hpp"
#include "fl/runtime/interrupt.hpp"
#include "support/join.hpp"

#include "model/classic_nets.hpp"

#include <ATen/ATen.h>

#include <algorithm>

#include <stdexcept>

namespace fedvlm {

std::map<std::string, AdaptableLayer> resolve_lora_targets(const ImageClassifier& model,
                                                           const std::vector<std::string>& lora_targets,
                                                           bool any_weighted_module) {
  const auto adaptable = model.adaptable_layers();
  std::map<std::string, AdaptableLayer> out;
  for (const auto& name : lora_targets) {
    auto it = adaptable.find(name);
    if (it == adaptable.end() && any_weighted_module) {
      auto w = model.state().find(name + ".weight");
      if (w != model.state().end() && w->second.dim() >= 1 && w->second.size(0) > 0) {
        out.emplace(name, AdaptableLayer{w->second.size(0), w->second.numel() / w->second.size(0)});
        continue;
      }
    }
    if (it == adaptable.end()) {
      std::vector<std::string> shown;
      for (const auto& [n, shape] : adaptable)
        if (model.in_head(n) || shown.size() < 6) shown.push_back(n);
      const std::string some = join(shown);
      throw std::invalid_argument("lora.targets: '" + name + "' is not an adaptable layer of " +
                                  model.name() + " (Linear or 1x1 conv layers, e.g. " + some + ", ..." +
                                  (any_weighted_module ? "; or any module with a weight" : "") + ")");
    }
    out.emplace(name, it->second);
  }
  return out;
}

FrozenBase::FrozenBase(std::shared_ptr<const ImageClassifier> model, ImageDataset pool,
                       const std::vector<std::string>& lora_targets, int64_t cache_batch_size,
                       bool any_weighted_module, c10::Device device)
    : model_(std::move(model)), pool_(std::move(pool)),
      targets_(resolve_lora_targets(*model_, lora_targets, any_weighted_module)), device_(device) {
  require_on_device(model_->state(), device_, "FrozenBase");
  if (pool_.images.defined()) pool_.images = pool_.images.to(device_);
  if (pool_.labels.defined()) pool_.labels = pool_.labels.to(device_);
  bool all_in_head = true;
  for (const auto& [name, shape] : targets_) all_in_head = all_in_head && model_->in_head(name);
  if (!all_in_head || pool_.size() == 0) return;

  at::NoGradGuard no_grad;
  ForwardContext eval_ctx; // base model only, eval mode
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < pool_.size(); begin += cache_batch_size) {
    throw_if_interrupted(); // the whole pool through the trunk: minutes on a large one
    const int64_t end = std::min(pool_.size(), begin + cache_batch_size);
    parts.push_back(model_->features(pool_.images.slice(0, begin, end), eval_ctx));
  }
  features_ = at::cat(parts, 0);
}

int64_t FrozenBase::resident_bytes() const {
  int64_t bytes = pool_.images.numel() * static_cast<int64_t>(pool_.images.element_size());
  if (features_.defined()) bytes += features_.numel() * static_cast<int64_t>(features_.element_size());
  return bytes;
}

int64_t FrozenBase::feature_size() const {
  if (features_.defined()) return features_.size(1);
  if (pool_.size() == 0) return 0;
  at::NoGradGuard no_grad;
  return model_->features(pool_.images.slice(0, 0, 1), ForwardContext{}).size(1);
}

at::Tensor FrozenBase::logits(const at::Tensor& any_indices, const ForwardContext& ctx) const {
  const at::Tensor indices = any_indices.to(device_);
  // A linear probe replaces the head: a Linear on the frozen trunk features.
  if (ctx.adapters != nullptr && ctx.adapters->count(kProbeWeight)) {
    ForwardContext frozen; // the trunk as it is: no adapters, eval mode
    const at::Tensor f = features_.defined() ? features_.index_select(0, indices)
                                             : model_->features(pool_.images.index_select(0, indices), frozen).detach();
    return at::linear(f, ctx.adapters->at(kProbeWeight), ctx.adapters->at(kProbeBias));
  }
  if (features_.defined()) return model_->head(features_.index_select(0, indices), ctx);
  return model_->forward(pool_.images.index_select(0, indices), ctx);
}

at::Tensor FrozenBase::labels(const at::Tensor& indices) const {
  return pool_.labels.index_select(0, indices.to(device_));
}

bool FrozenBase::can_stack(const TensorMap& tensors) const {
  if (tensors.empty()) return false;
  if (tensors.count(kProbeWeight)) return tensors.size() == 2 && tensors.count(kProbeBias) == 1;
  const auto& names = classic_net_names();
  if (std::find(names.begin(), names.end(), model_->name()) == names.end()) return false;
  for (const auto& [name, t] : tensors) {
    const auto base = model_->state().find(name);
    if (base == model_->state().end() || !base->second.sizes().equals(t.sizes())) return false;
  }
  return true;
}

at::Tensor FrozenBase::stacked_logits(const std::vector<at::Tensor>& indices, const std::vector<const TensorMap*>& clients,
                                      bool dropout_active, const std::vector<at::Generator>& generators) const {
  if (indices.size() != clients.size() || clients.empty())
    throw std::invalid_argument("FrozenBase::stacked_logits: " + std::to_string(indices.size()) + " index sets for " +
                                std::to_string(clients.size()) + " clients");
  std::vector<at::Tensor> on_device;
  for (const at::Tensor& i : indices) on_device.push_back(i.to(device_));
  const auto frozen_features = [&] {
    std::vector<at::Tensor> parts;
    at::NoGradGuard no_grad;
    for (const at::Tensor& i : on_device)
      parts.push_back(features_.defined() ? features_.index_select(0, i)
                                          : model_->features(pool_.images.index_select(0, i), ForwardContext{}));
    return at::stack(parts, 0); // (K, B, F)
  };
  if (clients.front()->count(kProbeWeight)) {
    std::vector<at::Tensor> w, b;
    for (const TensorMap* c : clients) {
      w.push_back(c->at(kProbeWeight));
      b.push_back(c->at(kProbeBias));
    }
    return at::baddbmm(at::stack(b, 0).unsqueeze(1), frozen_features(), at::stack(w, 0).transpose(1, 2));
  }
  if (features_.defined()) // every trained tensor is in the head: the trunk's cached output
    return classic_net_stacked_logits(*model_, clients, frozen_features(), dropout_active, generators);
  std::vector<at::Tensor> images;
  for (const at::Tensor& i : on_device) images.push_back(pool_.images.index_select(0, i));
  return classic_net_stacked_logits(*model_, clients, at::stack(images, 0), dropout_active, generators);
}

} // namespace fedvlm
