// model/florence2_native_layout.hpp — checkpoints of transformers' native Florence-2 port, renamed to the published remote-code layout.
#pragma once

#include "model/tensor_map.hpp"

namespace fedvlm {

/// True when `state` uses the names of transformers' built-in Florence2ForConditionalGeneration
/// (model.vision_tower.*, model.multi_modal_projector.*, model.language_model.*, lm_head.weight),
/// as florence-community/Florence-2-* and convert_florence2_original_pytorch_to_hf.py write them.
[[nodiscard]] bool is_florence2_native_layout(const TensorMap& state);

/// The same tensors under the remote-code names Florence2 loads (vision_tower.*, image_projection,
/// language_model.model.*, language_model.lm_head.weight); image_projection is transposed back
/// from the Linear weight the port keeps. Names it does not know are kept as they are, so the
/// loader reports them as unexpected.
[[nodiscard]] TensorMap florence2_from_native_layout(const TensorMap& state);

} // namespace fedvlm
