// model/florence2_native_layout.cpp — native transformers Florence-2 names → remote-code names.
#include "model/florence2_native_layout.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>

#include <regex>
#include <string>
#include <utility>

namespace fedvlm {
namespace {

// Prefix renames, longest first where one prefix contains another.
const std::pair<const char*, const char*> kPrefixes[] = {
    {"model.multi_modal_projector.image_proj_norm.", "image_proj_norm."},
    {"model.multi_modal_projector.image_position_embed.", "image_pos_embed."},
    {"model.multi_modal_projector.visual_temporal_embed.", "visual_temporal_embed."},
    {"model.language_model.", "language_model.model."},
    {"lm_head.", "language_model.lm_head."},
};
const char* const kNativeProjection = "model.multi_modal_projector.image_projection.weight";

// The port flattened the original's PreNorm(norm, fn) wrappers: norm1/norm2 were the attention
// and FFN wrappers' norms, and conv1/conv2 were PreNorm(None, DepthWiseConv2d).
std::string block_name(const std::string& kind, const std::string& rest) {
  const std::string attn = kind == "spatial" ? "window_attn" : "channel_attn";
  static const std::regex part(R"(^(conv1|conv2|norm1|norm2|(window_attn|channel_attn)\.(qkv|proj)|ffn\.(fc1|fc2))\.(weight|bias)$)");
  std::smatch m;
  if (!std::regex_match(rest, m, part)) return "";
  const std::string module = m[1], param = m[5];
  if (module == "conv1" || module == "conv2") return module + ".fn.dw." + param;
  if (module == "norm1") return attn + ".norm." + param;
  if (module == "norm2") return "ffn.norm." + param;
  if (starts_with(module, "ffn.")) return "ffn.fn.net." + module.substr(4) + "." + param;
  if (m[2] != attn) return ""; // a window_attn in a channel block: not a name the port writes
  return attn + ".fn." + std::string(m[3]) + "." + param;
}

std::string remote_name(const std::string& native) {
  for (const auto& [from, to] : kPrefixes)
    if (starts_with(native, from)) return to + native.substr(std::string(from).size());
  static const std::regex conv(R"(^model\.vision_tower\.convs\.(\d+)\.(conv|norm)\.(weight|bias)$)");
  static const std::regex block(R"(^model\.vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial|channel)_block\.(.+)$)");
  std::smatch m;
  if (std::regex_match(native, m, conv))
    return "vision_tower.convs." + std::string(m[1]) + (m[2] == "conv" ? ".proj." : ".norm.") + std::string(m[3]);
  if (std::regex_match(native, m, block)) {
    const std::string tail = block_name(m[3], m[4]);
    if (!tail.empty())
      return "vision_tower.blocks." + std::string(m[1]) + "." + std::string(m[2]) + "." + std::string(m[3]) +
             "_block." + tail;
  }
  return native;
}

} // namespace

bool is_florence2_native_layout(const TensorMap& state) {
  for (const auto& [name, t] : state)
    if (starts_with(name, "model.vision_tower.") || starts_with(name, "model.language_model.") ||
        starts_with(name, "model.multi_modal_projector."))
      return true;
  return false;
}

TensorMap florence2_from_native_layout(const TensorMap& state) {
  TensorMap out;
  for (const auto& [name, t] : state) {
    if (name == kNativeProjection) {
      out["image_projection"] = t.dim() == 2 ? t.t().contiguous() : t;
    } else if (!out.emplace(remote_name(name), t).second) {
      out[name] = t; // both layouts name this tensor: keep the native name, so it is reported
    }
  }
  return out;
}

} // namespace fedvlm
