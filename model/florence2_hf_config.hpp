// model/florence2_hf_config.hpp — a Florence2Config from a checkpoint's own config.json (and preprocessor_config.json).
#pragma once

#include "model/florence2.hpp"

#include <filesystem>
#include <string>

namespace fedvlm {

/// Reads a Hugging Face Florence-2 `config.json`: the remote-code layout microsoft/Florence-2-*
/// publish (vision model_type "davit") or transformers' native port's ("florence_vision").
/// When `preprocessor_config.json` sits beside it, the image size, mean and std come from there;
/// otherwise Florence2Config's defaults stand.
/// Throws std::runtime_error naming the file, the key and what was expected, also for settings
/// this engine does not implement (another vision tower, heads != groups, a non-GELU FFN, ...).
/// `name` of the result is "hf:<directory name>".
[[nodiscard]] Florence2Config florence2_config_from_hf(const std::filesystem::path& config_json);

/// "" when `a` and `b` are the same size of model (widths, depths, heads, patches, windows);
/// otherwise the first difference in config.json's words, e.g. "text_config.d_model 1024 vs 768".
/// Table lengths are left out, the checkpoint decides them: uploads of one model disagree on
/// positions (Florence-2-large's max_position_embeddings is 4096 in one revision, 1024 in
/// another), and the native port pads the vocabulary (51289 → 51328).
[[nodiscard]] std::string florence2_architecture_difference(const Florence2Config& a, const Florence2Config& b);

/// Where a checkpoint's config.json would be: the directory itself, or the directory of a
/// model.safetensors / index file. The path may not exist.
[[nodiscard]] std::filesystem::path florence2_hf_config_path(const std::filesystem::path& checkpoint);

} // namespace fedvlm
