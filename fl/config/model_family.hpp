// fl/config/model_family.hpp — the table of model architectures: which family each arch belongs to and what it needs.
//
// One row per `model.arch`. The experiment schema validates against it and the run set-up
// dispatches on its family, so a new model is one row here plus its family's set-up, not name
// checks spread over several files.
#pragma once

#include <string>
#include <vector>

namespace fedvlm {

enum class ModelFamily {
  mobilenet_v3, ///< image classification; torchvision weights; pretraining on a public split
  classic,      ///< the FedAvg papers' small image classifiers (cnn_mnist, cnn_fedavg, mlp_2nn)
  florence2,    ///< vision-language: VQA with generated answers
  clip,         ///< zero-shot image classification by image-text similarity; LoRA on the text tower
};

/// What a model needs from the data.
enum class ModelData { images, vqa };

struct ModelArch {
  const char* arch;
  ModelFamily family;
  ModelData data;
  /// The size within the family, for builders that take one: MobileNetV3Config::variant
  /// ("small", "large"), Florence2Config::named ("tiny", "base", "large"). Empty where the
  /// builder takes the arch itself (clip_config_named, make_classic_net).
  const char* variant;
  /// A tiny model for tests and CPU demos that needs nothing from outside: its tokenizer is
  /// made here, not read from a checkpoint — CLIP's tiny caption tokenizer written into the
  /// pretraining cache (the model's bos/eos/pad ids taken from it), Florence-2's the synthetic
  /// VQA folder's (complete as it is: Florence-2's <loc_*> tokens are not added) — and
  /// Florence-2 starts from random weights without a warning.
  bool self_contained;
  bool bfloat16; ///< model.precision = "bfloat16" is supported
  const char* summary;
};

/// The row of `arch`. Throws std::invalid_argument listing every arch.
[[nodiscard]] const ModelArch& model_arch(const std::string& arch);
/// Every arch, in table order.
[[nodiscard]] const std::vector<ModelArch>& model_archs();
/// "a | b | c": for help texts and errors.
[[nodiscard]] std::string model_arch_list(const char* separator = " | ");

} // namespace fedvlm
