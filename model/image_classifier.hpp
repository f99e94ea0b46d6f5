// model/image_classifier.hpp — the frozen base model interface every vision backbone implements.
//
// A model is a set of named weights (the checkpoint's own names) plus a pure forward function.
// It splits into a trunk (features) and a head, so that when every LoRA target sits in the
// head, the trunk's output can be computed once per sample and reused by all clients.
#pragma once

#include "model/lora.hpp"
#include "model/tensor_map.hpp"

#include <map>
#include <memory>
#include <string>

namespace fedvlm {

class ImageClassifier {
public:
  virtual ~ImageClassifier() = default;

  // -- properties -----------------------------------------------------------

  /// Architecture name, e.g. "mobilenet_v3_small".
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual int64_t num_classes() const = 0;
  /// Every Linear / 1×1-conv layer LoRA may target, by module name.
  [[nodiscard]] virtual std::map<std::string, AdaptableLayer> adaptable_layers() const = 0;
  /// True when `layer` lies in the head, i.e. after the cached trunk output.
  [[nodiscard]] virtual bool in_head(const std::string& layer) const = 0;

  /// The weights (and buffers such as BatchNorm running stats) by checkpoint name.
  [[nodiscard]] virtual const TensorMap& state() const = 0;
  [[nodiscard]] virtual TensorMap& mutable_state() = 0;
  /// Names in state() that are trainable parameters (not buffers).
  [[nodiscard]] virtual std::vector<std::string> parameter_names() const = 0;

  // -- forward --------------------------------------------------------------

  /// images (N, C, H, W) → trunk features (N, F).
  [[nodiscard]] virtual at::Tensor features(const at::Tensor& images,
                                            const ForwardContext& ctx) const = 0;
  /// trunk features (N, F) → logits (N, classes).
  [[nodiscard]] virtual at::Tensor head(const at::Tensor& features,
                                        const ForwardContext& ctx) const = 0;

  [[nodiscard]] at::Tensor forward(const at::Tensor& images, const ForwardContext& ctx) const {
    return head(features(images, ctx), ctx);
  }
};

} // namespace fedvlm
