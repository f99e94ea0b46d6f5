// fl/tasks/lora_target_globs.hpp — LoRA target lists written as module-name globs ("layers.*.self_attn.{q,v}_proj").
//
// A model offers its adaptable Linears by module name (clip_adaptable_layers,
// florence2_adaptable_layers, ...). A configuration names the ones to adapt; for a 12-layer
// tower, globs keep that list one line long. Pattern syntax, over the whole name:
// - `*`  any run of characters except '.' (so it stays inside one dotted component; may be empty);
// - `**` any run of characters, dots included (may be empty);
// - `{a,b,c}` one of the comma-separated alternatives (each may itself hold `*`, `**` or braces);
// - every other character matches itself: an exact module name is a pattern matching only itself.
#pragma once

#include "model/lora.hpp"

#include <map>
#include <string>
#include <vector>

namespace fedvlm {

/// The targets FLoRA adapts in CLIP: every attention projection of the text encoder.
inline const std::vector<std::string> kClipFloraTargets{"text_model.encoder.layers.*.self_attn.{q,k,v,out}_proj"};

/// `pattern` with its braces expanded, in order: "x.{a,b}_{c,d}" → x.a_c, x.a_d, x.b_c, x.b_d.
/// Throws std::invalid_argument naming the pattern for an unbalanced '{' or '}'.
[[nodiscard]] std::vector<std::string> expand_braces(const std::string& pattern);

/// Whether `name` matches `pattern` as a whole (`*`, `**` and braces as above).
/// Throws std::invalid_argument for unbalanced braces.
[[nodiscard]] bool lora_target_glob_match(const std::string& pattern, const std::string& name);

/// The union of the entries of `adaptable` that some pattern matches. Every pattern must match
/// at least one name: otherwise std::invalid_argument "lora.targets: pattern 'P' matches no
/// adaptable layer (N offered, e.g. A, B, C)", the examples chosen among names sharing the
/// pattern's literal prefix where there are any. An empty `patterns` list gives an empty map.
[[nodiscard]] std::map<std::string, AdaptableLayer> match_lora_targets(
    const std::map<std::string, AdaptableLayer>& adaptable, const std::vector<std::string>& patterns);

} // namespace fedvlm
