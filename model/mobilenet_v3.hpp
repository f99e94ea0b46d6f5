// model/mobilenet_v3.hpp — MobileNetV3-Small/-Large as torchvision builds them, as a pure function.
//
// Weights use torchvision's state_dict names ("features.0.0.weight", "classifier.3.bias", ...),
// so a torchvision checkpoint exported to .safetensors loads as is. LoRA may target the
// classifier Linears ("classifier.0", "classifier.3") and any 1×1 convolution in the blocks
// (e.g. "features.12.0", "features.11.block.3.0", SE "features.4.block.2.fc1").
#pragma once

#include "model/image_classifier.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace fedvlm {

struct MobileNetV3Config {
  std::string variant = "small"; ///< "small" or "large"
  int64_t num_classes = 1000;
  int64_t in_channels = 3;       ///< 1 for grayscale data such as Fashion-MNIST
  double dropout = 0.2;          ///< classifier dropout, as torchvision
};

/// Random weights initialised as torchvision does (Kaiming-normal fan_out convs, BN 1/0,
/// Linear N(0, 0.01), zero biases), deterministic in `seed`.
/// Throws std::invalid_argument for an unknown variant or non-positive sizes.
[[nodiscard]] std::unique_ptr<ImageClassifier> make_mobilenet_v3(const MobileNetV3Config& config,
                                                                 uint64_t seed);

/// Replaces the weights with `state` (e.g. from safetensors_load). Every expected key must be
/// present with the expected shape; extra keys are errors too. Throws std::runtime_error listing
/// missing, unexpected and mis-shaped keys (up to a few of each, with counts). Tensors are cast to
/// float32; num_batches_tracked is optional.
void mobilenet_v3_load_state(ImageClassifier& model, const TensorMap& state);

} // namespace fedvlm
