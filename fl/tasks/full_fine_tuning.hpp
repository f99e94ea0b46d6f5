// fl/tasks/full_fine_tuning.hpp — which base tensors full fine-tuning (FedFFT) trains: every tensor of the modules its globs name.
//
// `full` trains each client's own copies of base tensors (looked up before the shared frozen ones,
// model/lora.hpp's base_or_override) and averages them. Its unit is a module, as LoRA's, but any
// module holding tensors qualifies — a LayerNorm, an embedding, a projection without bias — not
// only the Linears LoRA can adapt. A module is a tensor's name less a last component "weight" or
// "bias" ("text_model.final_layer_norm.weight" → "text_model.final_layer_norm"); tensors named
// otherwise (CLIP's vision class_embedding and logit_scale) belong to no module and stay frozen.
#pragma once

#include "model/lora.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

/// Tensor name → shape.
using TensorShapes = std::map<std::string, std::vector<int64_t>>;

/// The name and shape of every tensor in `tensors`.
[[nodiscard]] TensorShapes tensor_shapes(const TensorMap& tensors);

/// Every module of the tensors in `shapes`, by module name → {rows, numel / rows} of its
/// ".weight" (of its ".bias" when it has no weight): a Linear's {out, in}, an embedding's
/// {count, width}, a LayerNorm's {width, 1}. What the globs of strategy.trainable match against.
[[nodiscard]] std::map<std::string, AdaptableLayer> weighted_modules(const TensorShapes& shapes);

/// The tensors full fine-tuning trains and sends for `modules`: each module's "<module>.weight"
/// and "<module>.bias" that `shapes` holds, in name order.
[[nodiscard]] std::vector<std::string> full_tensor_names(const std::map<std::string, AdaptableLayer>& modules,
                                                         const TensorShapes& shapes);

} // namespace fedvlm
