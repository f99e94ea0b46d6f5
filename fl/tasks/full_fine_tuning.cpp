// fl/tasks/full_fine_tuning.cpp — modules from tensor names, and the tensors full fine-tuning trains.
#include "fl/tasks/full_fine_tuning.hpp"

#include "model/name_affixes.hpp"

#include <algorithm>

namespace fedvlm {
namespace {

const std::string kWeight = ".weight";
const std::string kBias = ".bias";

} // namespace

TensorShapes tensor_shapes(const TensorMap& tensors) {
  TensorShapes out;
  for (const auto& [name, t] : tensors) out.emplace(name, t.sizes().vec());
  return out;
}

std::map<std::string, AdaptableLayer> weighted_modules(const TensorShapes& shapes) {
  std::map<std::string, AdaptableLayer> out;
  // Biases first, weights after: a module's weight decides its shape when it has one.
  for (const std::string* suffix : {&kBias, &kWeight}) {
    for (const auto& [name, shape] : shapes) {
      if (!ends_with(name, *suffix) || name.size() == suffix->size() || shape.empty() || shape[0] < 1) continue;
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      out[name.substr(0, name.size() - suffix->size())] = AdaptableLayer{shape[0], numel / shape[0]};
    }
  }
  return out;
}

std::vector<std::string> full_tensor_names(const std::map<std::string, AdaptableLayer>& modules,
                                           const TensorShapes& shapes) {
  std::vector<std::string> out;
  for (const auto& [module, shape] : modules)
    for (const std::string* suffix : {&kWeight, &kBias})
      if (shapes.count(module + *suffix)) out.push_back(module + *suffix);
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace fedvlm
