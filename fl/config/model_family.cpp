// fl/config/model_family.cpp — the model architecture table.
#include "fl/config/model_family.hpp"

#include <stdexcept>

namespace fedvlm {

const std::vector<ModelArch>& model_archs() {
  // clang-format off
  // Columns in ModelArch's order: arch, family, data, variant, self_contained, bfloat16, summary.
  static const std::vector<ModelArch> rows = {
    {"mobilenet_v3_small", ModelFamily::mobilenet_v3, ModelData::images, "small", false, false, "MobileNetV3-Small (torchvision names)"},
    {"mobilenet_v3_large", ModelFamily::mobilenet_v3, ModelData::images, "large", false, false, "MobileNetV3-Large (torchvision names)"},
    {"cnn_mnist",          ModelFamily::classic,      ModelData::images, "",      false, false, "the FedAvg papers' CNN for 28x28 grey images (21,840 parameters)"},
    {"cnn_fedavg",         ModelFamily::classic,      ModelData::images, "",      false, false, "the FedAvg paper's CNN: conv 32, 64 (5x5, same), 2x2 pools, fc 512 (1,663,370 parameters)"},
    {"mlp_2nn",            ModelFamily::classic,      ModelData::images, "",      false, false, "the FedAvg paper's 2NN: 784-200-200-10 (199,210 parameters)"},
    {"clip_tiny",          ModelFamily::clip,         ModelData::images, "",      true,  false, "a tiny CLIP (32 px, 2+2 layers) for tests and CPU demos; pretrain it here"},
    {"clip_vit_b32",       ModelFamily::clip,         ModelData::images, "",      false, false, "CLIP ViT-B/32 (FLoRA's; openai/clip-vit-base-patch32 names)"},
    {"clip_vit_b16",       ModelFamily::clip,         ModelData::images, "",      false, false, "CLIP ViT-B/16"},
    {"clip_vit_l14",       ModelFamily::clip,         ModelData::images, "",      false, false, "CLIP ViT-L/14 (224 px)"},
    {"florence2_tiny",     ModelFamily::florence2,    ModelData::vqa,    "tiny",  true,  true,  "a tiny random-init Florence-2 for tests and CPU demos"},
    {"florence2_base",     ModelFamily::florence2,    ModelData::vqa,    "base",  false, true,  "Florence-2-base (0.23 B; microsoft/Florence-2-base names)"},
    {"florence2_large",    ModelFamily::florence2,    ModelData::vqa,    "large", false, true,  "Florence-2-large (0.77 B)"},
  };
  // clang-format on
  return rows;
}

std::string model_arch_list(const char* separator) {
  std::string out;
  for (const auto& row : model_archs()) out += (out.empty() ? "" : separator) + std::string(row.arch);
  return out;
}

const ModelArch& model_arch(const std::string& arch) {
  for (const auto& row : model_archs())
    if (arch == row.arch) return row;
  throw std::invalid_argument("unknown model.arch \"" + arch + "\" (expected one of: " + model_arch_list(", ") + ")");
}

} // namespace fedvlm
