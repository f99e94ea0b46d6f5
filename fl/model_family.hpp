// fl/model_family.hpp — the table of model architectures: which family each arch belongs to and what it needs.
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
  classic,      ///< the FedAvg papers' small image classifiers (cnn_mnist, mlp_2nn)
  florence2,    ///< vision-language: VQA with generated answers
  clip,         ///< zero-shot image classification by image-text similarity; LoRA on the text tower
};

/// What a model needs from the data.
enum class ModelData { images, vqa };

struct ModelArch {
  const char* arch;
  ModelFamily family;
  ModelData data;
  const char* summary;
  bool bfloat16 = false; ///< model.precision = "bfloat16" is supported
};

/// The row of `arch`. Throws std::invalid_argument listing every arch.
[[nodiscard]] const ModelArch& model_arch(const std::string& arch);
/// Every arch, in table order.
[[nodiscard]] const std::vector<ModelArch>& model_archs();
/// "a | b | c": for help texts and errors.
[[nodiscard]] std::string model_arch_list(const char* separator = " | ");

} // namespace fedvlm
