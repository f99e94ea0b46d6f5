// model/clip.cpp — CLIP towers, logits, random init, weight checks and the Hugging Face loader.
#include "model/clip.hpp"

#include "model/json_error.hpp"
#include "model/json_section.hpp"
#include "model/name_affixes.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kVision = "vision_model.";
const std::string kText = "text_model.";
const std::string kLogitScale = "logit_scale";
const std::string kPositionIds = ".embeddings.position_ids";

const at::Tensor& get(const TensorMap& weights, const std::string& key) {
  auto it = weights.find(key);
  if (it == weights.end()) throw std::runtime_error("clip: weights have no tensor '" + key + "'");
  return it->second;
}

// The tensor a forward uses for `key`: a client's own trained copy in ctx.adapters (full
// fine-tuning) before the shared frozen one, so any tensor of the model can be fine-tuned.
const at::Tensor& param(const TensorMap& weights, const std::string& key, const ForwardContext& ctx) {
  return base_or_override(get(weights, key), key, ctx);
}

std::string layer_prefix(const std::string& tower, int64_t i) {
  return tower + "encoder.layers." + std::to_string(i) + ".";
}

// -- shared encoder pieces --------------------------------------------------------------------------

at::Tensor layer_norm(const TensorMap& w, const std::string& module, const at::Tensor& x, double eps,
                      const ForwardContext& ctx) {
  return at::layer_norm(x, {x.size(-1)}, param(w, module + ".weight", ctx), param(w, module + ".bias", ctx), eps,
                        /*cudnn_enable=*/false);
}

at::Tensor linear(const TensorMap& w, const std::string& module, const at::Tensor& x, const ForwardContext& ctx) {
  auto bias = w.find(module + ".bias");
  return lora_linear(x, get(w, module + ".weight"), bias == w.end() ? at::Tensor() : bias->second, module, ctx);
}

at::Tensor activate(const at::Tensor& x, ClipActivation act) {
  if (act == ClipActivation::gelu) return at::gelu(x);
  return x * at::sigmoid(1.702 * x); // quick_gelu
}

// (B, S, d) → (B, H, S, d/H).
at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

// Multi-head self-attention of `x` (B, S, d); `module` is e.g. "text_model.encoder.layers.0.self_attn".
at::Tensor self_attention(const TensorMap& w, const std::string& module, const at::Tensor& x, int64_t heads,
                          bool causal, const ForwardContext& ctx) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  const double scaling = 1.0 / std::sqrt(static_cast<double>(d / heads));
  // q is scaled after its projection (bias and any LoRA delta included), as the reference does.
  const at::Tensor q = split_heads(linear(w, module + ".q_proj", x, ctx) * scaling, heads);
  const at::Tensor k = split_heads(linear(w, module + ".k_proj", x, ctx), heads);
  const at::Tensor v = split_heads(linear(w, module + ".v_proj", x, ctx), heads);
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)); // (B, H, S, S)
  if (causal) {
    // Position i sees keys 0..i; the diagonal stays visible, so no row is all -inf.
    const at::Tensor future = at::ones({s, s}, x.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  const at::Tensor out = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({b, s, d});
  return linear(w, module + ".out_proj", out, ctx);
}

// One pre-LN encoder layer: attention and MLP, each added to the residual stream.
at::Tensor encoder_layer(const TensorMap& w, const std::string& layer, const at::Tensor& h, int64_t heads,
                         double eps, ClipActivation act, bool causal, const ForwardContext& ctx) {
  at::Tensor x = h + self_attention(w, layer + "self_attn", layer_norm(w, layer + "layer_norm1", h, eps, ctx), heads,
                                    causal, ctx);
  const at::Tensor y =
      activate(linear(w, layer + "mlp.fc1", layer_norm(w, layer + "layer_norm2", x, eps, ctx), ctx), act);
  return x + linear(w, layer + "mlp.fc2", y, ctx);
}

void add_layer_shapes(std::map<std::string, std::vector<int64_t>>& out, const std::string& tower, int64_t layers,
                      int64_t hidden, int64_t intermediate) {
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = layer_prefix(tower, i);
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      out[p + "self_attn." + proj + ".weight"] = {hidden, hidden};
      out[p + "self_attn." + proj + ".bias"] = {hidden};
    }
    for (const char* norm : {"layer_norm1", "layer_norm2"}) {
      out[p + norm + ".weight"] = {hidden};
      out[p + norm + ".bias"] = {hidden};
    }
    out[p + "mlp.fc1.weight"] = {intermediate, hidden};
    out[p + "mlp.fc1.bias"] = {intermediate};
    out[p + "mlp.fc2.weight"] = {hidden, intermediate};
    out[p + "mlp.fc2.bias"] = {hidden};
  }
}

// -- config.json ---------------------------------------------------------------------------------


ClipActivation read_activation(const JsonSection& s) {
  const std::string act = s.text("hidden_act", "quick_gelu");
  if (act == "quick_gelu") return ClipActivation::quick_gelu;
  if (act == "gelu") return ClipActivation::gelu;
  s.fail("hidden_act", "\"quick_gelu\" or \"gelu\", got \"" + act + "\"");
}

// Defaults are CLIPTextConfig's / CLIPVisionConfig's (ViT-B/32 sized).
void read_text(const JsonSection& t, ClipTextConfig& c) {
  c.vocab_size = t.integer("vocab_size", 49408, 1);
  c.hidden_size = t.integer("hidden_size", 512, 1);
  c.num_layers = t.integer("num_hidden_layers", 12, 1);
  c.num_heads = t.integer("num_attention_heads", 8, 1);
  c.intermediate_size = t.integer("intermediate_size", 2048, 1);
  c.max_positions = t.integer("max_position_embeddings", 77, 1);
  c.bos_token_id = t.integer("bos_token_id", 49406, 0);
  c.eos_token_id = t.integer("eos_token_id", 49407, 0);
  c.pad_token_id = t.integer("pad_token_id", 1, 0);
  c.layer_norm_eps = t.positive("layer_norm_eps", 1e-5);
  c.activation = read_activation(t);
  if (c.hidden_size % c.num_heads != 0) t.fail("hidden_size", "a multiple of num_attention_heads");
}

void read_vision(const JsonSection& v, ClipVisionConfig& c) {
  c.hidden_size = v.integer("hidden_size", 768, 1);
  c.num_layers = v.integer("num_hidden_layers", 12, 1);
  c.num_heads = v.integer("num_attention_heads", 12, 1);
  c.intermediate_size = v.integer("intermediate_size", 3072, 1);
  c.image_size = v.integer("image_size", 224, 1);
  c.patch_size = v.integer("patch_size", 32, 1);
  if (v.integer("num_channels", 3, 1) != 3) v.fail("num_channels", "3 (RGB)");
  c.layer_norm_eps = v.positive("layer_norm_eps", 1e-5);
  c.activation = read_activation(v);
  if (c.hidden_size % c.num_heads != 0) v.fail("hidden_size", "a multiple of num_attention_heads");
  if (c.image_size % c.patch_size != 0) v.fail("image_size", "a multiple of patch_size");
}


} // namespace

// -- configs ------------------------------------------------------------------------------------

ClipConfig clip_vit_b32() {
  ClipConfig c; // every default is openai/clip-vit-base-patch32's
  c.name = "clip_vit_b32";
  return c;
}

ClipConfig clip_vit_b16() {
  ClipConfig c;
  c.name = "clip_vit_b16";
  c.vision.patch_size = 16;
  return c;
}

ClipConfig clip_vit_l14() {
  ClipConfig c;
  c.name = "clip_vit_l14";
  c.vision.hidden_size = 1024;
  c.vision.num_layers = 24;
  c.vision.num_heads = 16;
  c.vision.intermediate_size = 4096;
  c.vision.patch_size = 14;
  c.text.hidden_size = 768;
  c.text.num_heads = 12;
  c.text.intermediate_size = 3072;
  c.projection_dim = 768;
  return c;
}

ClipConfig clip_tiny() {
  ClipConfig c;
  c.name = "clip_tiny";
  c.vision.hidden_size = 32;
  c.vision.num_layers = 2;
  c.vision.num_heads = 2;
  c.vision.intermediate_size = 64;
  c.vision.image_size = 32;
  c.vision.patch_size = 8;
  c.text.vocab_size = 600;
  c.text.hidden_size = 32;
  c.text.num_layers = 2;
  c.text.num_heads = 2;
  c.text.intermediate_size = 64;
  c.text.max_positions = 16;
  c.text.bos_token_id = 598;
  c.text.eos_token_id = 599;
  c.text.pad_token_id = 0;
  c.projection_dim = 24;
  return c;
}

ClipConfig clip_config_named(const std::string& arch) {
  if (arch == "clip_vit_b32") return clip_vit_b32();
  if (arch == "clip_vit_b16") return clip_vit_b16();
  if (arch == "clip_vit_l14") return clip_vit_l14();
  if (arch == "clip_tiny") return clip_tiny();
  throw std::invalid_argument("clip: unknown model.arch \"" + arch +
                              "\", expected clip_vit_b32, clip_vit_b16, clip_vit_l14 or clip_tiny");
}

void clip_config_check(const ClipConfig& c) {
  auto positive = [](int64_t v, const char* what) {
    if (v < 1) throw std::invalid_argument(std::string("clip: ") + what + " must be >= 1, got " + std::to_string(v));
  };
  positive(c.vision.hidden_size, "vision.hidden_size");
  positive(c.vision.num_layers, "vision.num_layers");
  positive(c.vision.num_heads, "vision.num_heads");
  positive(c.vision.intermediate_size, "vision.intermediate_size");
  positive(c.vision.image_size, "vision.image_size");
  positive(c.vision.patch_size, "vision.patch_size");
  positive(c.text.vocab_size, "text.vocab_size");
  positive(c.text.hidden_size, "text.hidden_size");
  positive(c.text.num_layers, "text.num_layers");
  positive(c.text.num_heads, "text.num_heads");
  positive(c.text.intermediate_size, "text.intermediate_size");
  positive(c.text.max_positions, "text.max_positions");
  positive(c.projection_dim, "projection_dim");
  if (c.vision.hidden_size % c.vision.num_heads != 0)
    throw std::invalid_argument("clip: vision.hidden_size " + std::to_string(c.vision.hidden_size) +
                                " is not divisible by vision.num_heads " + std::to_string(c.vision.num_heads));
  if (c.text.hidden_size % c.text.num_heads != 0)
    throw std::invalid_argument("clip: text.hidden_size " + std::to_string(c.text.hidden_size) +
                                " is not divisible by text.num_heads " + std::to_string(c.text.num_heads));
  if (c.vision.image_size % c.vision.patch_size != 0)
    throw std::invalid_argument("clip: vision.image_size " + std::to_string(c.vision.image_size) +
                                " is not a multiple of vision.patch_size " + std::to_string(c.vision.patch_size));
  if (!(c.vision.layer_norm_eps > 0.0) || !(c.text.layer_norm_eps > 0.0))
    throw std::invalid_argument("clip: layer_norm_eps must be > 0");
}

std::string clip_architecture_difference(const ClipConfig& a, const ClipConfig& b) {
  std::string diff;
  auto check = [&](const char* key, int64_t x, int64_t y) {
    if (diff.empty() && x != y) diff = std::string(key) + " " + std::to_string(x) + " vs " + std::to_string(y);
  };
  check("vision_config.hidden_size", a.vision.hidden_size, b.vision.hidden_size);
  check("vision_config.num_hidden_layers", a.vision.num_layers, b.vision.num_layers);
  check("vision_config.num_attention_heads", a.vision.num_heads, b.vision.num_heads);
  check("vision_config.intermediate_size", a.vision.intermediate_size, b.vision.intermediate_size);
  check("vision_config.image_size", a.vision.image_size, b.vision.image_size);
  check("vision_config.patch_size", a.vision.patch_size, b.vision.patch_size);
  check("text_config.vocab_size", a.text.vocab_size, b.text.vocab_size);
  check("text_config.hidden_size", a.text.hidden_size, b.text.hidden_size);
  check("text_config.num_hidden_layers", a.text.num_layers, b.text.num_layers);
  check("text_config.num_attention_heads", a.text.num_heads, b.text.num_heads);
  check("text_config.intermediate_size", a.text.intermediate_size, b.text.intermediate_size);
  check("text_config.max_position_embeddings", a.text.max_positions, b.text.max_positions);
  check("projection_dim", a.projection_dim, b.projection_dim);
  return diff;
}

// -- weights ------------------------------------------------------------------------------------

std::map<std::string, std::vector<int64_t>> clip_parameter_shapes(const ClipConfig& c) {
  std::map<std::string, std::vector<int64_t>> out;
  const int64_t vh = c.vision.hidden_size, th = c.text.hidden_size;
  out[kVision + "embeddings.class_embedding"] = {vh};
  out[kVision + "embeddings.patch_embedding.weight"] = {vh, 3, c.vision.patch_size, c.vision.patch_size};
  out[kVision + "embeddings.position_embedding.weight"] = {c.vision.num_positions(), vh};
  out[kVision + "pre_layrnorm.weight"] = {vh}; // sic: HF's spelling
  out[kVision + "pre_layrnorm.bias"] = {vh};
  add_layer_shapes(out, kVision, c.vision.num_layers, vh, c.vision.intermediate_size);
  out[kVision + "post_layernorm.weight"] = {vh};
  out[kVision + "post_layernorm.bias"] = {vh};
  out["visual_projection.weight"] = {c.projection_dim, vh};
  out[kText + "embeddings.token_embedding.weight"] = {c.text.vocab_size, th};
  out[kText + "embeddings.position_embedding.weight"] = {c.text.max_positions, th};
  add_layer_shapes(out, kText, c.text.num_layers, th, c.text.intermediate_size);
  out[kText + "final_layer_norm.weight"] = {th};
  out[kText + "final_layer_norm.bias"] = {th};
  out["text_projection.weight"] = {c.projection_dim, th};
  out[kLogitScale] = {};
  return out;
}

std::map<std::string, AdaptableLayer> clip_adaptable_layers(const ClipConfig& c) {
  std::map<std::string, AdaptableLayer> out;
  for (const auto& [name, shape] : clip_parameter_shapes(c)) {
    if (shape.size() != 2 || !ends_with(name, ".weight") || ends_with(name, "_embedding.weight")) continue;
    out[name.substr(0, name.size() - std::string(".weight").size())] = {shape[0], shape[1]};
  }
  return out;
}

TensorMap clip_random_weights(const ClipConfig& c, uint64_t seed) {
  clip_config_check(c);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  TensorMap out;
  auto normal = [&](const std::vector<int64_t>& shape, double std) {
    at::Tensor t = at::empty(shape, at::kFloat);
    t.normal_(0.0, std, gen);
    return t;
  };
  // One generator drawn in sorted-name order, so the seed fixes every weight.
  for (const auto& [name, shape] : clip_parameter_shapes(c)) {
    const bool vision = starts_with(name, kVision);
    const auto hidden = static_cast<double>(vision ? c.vision.hidden_size : c.text.hidden_size);
    const auto layers = static_cast<double>(vision ? c.vision.num_layers : c.text.num_layers);
    const double in_proj_std = std::pow(hidden, -0.5) * std::pow(2.0 * layers, -0.5);
    at::Tensor t;
    if (name == kLogitScale) {
      t = at::full({}, c.logit_scale_init, at::kFloat);
    } else if (ends_with(name, ".bias")) {
      t = at::zeros(shape, at::kFloat);
    } else if (ends_with(name, "class_embedding")) {
      t = normal(shape, std::pow(hidden, -0.5));
    } else if (shape.size() == 1) {
      t = at::ones(shape, at::kFloat); // a LayerNorm weight: the only other 1-D tensor
    } else if (ends_with(name, "_embedding.weight")) {
      t = normal(shape, 0.02); // token, position and patch embeddings
    } else if (name == "visual_projection.weight") {
      t = normal(shape, std::pow(static_cast<double>(c.vision.hidden_size), -0.5));
    } else if (name == "text_projection.weight") {
      t = normal(shape, std::pow(static_cast<double>(c.text.hidden_size), -0.5));
    } else if (ends_with(name, "out_proj.weight")) {
      t = normal(shape, std::pow(hidden, -0.5));
    } else if (ends_with(name, "mlp.fc1.weight")) {
      t = normal(shape, std::pow(2.0 * hidden, -0.5));
    } else {
      t = normal(shape, in_proj_std); // q, k, v and fc2
    }
    out.emplace(name, t);
  }
  return out;
}

void clip_validate_weights(const TensorMap& weights, const ClipConfig& c) {
  const auto shapes = clip_parameter_shapes(c);
  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [name, shape] : shapes) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      missing.push_back(name + " " + tensor_shape_string(shape));
    } else if (!it->second.defined()) {
      misshaped.push_back(name + " (undefined tensor)");
    } else if (!it->second.is_floating_point()) {
      misshaped.push_back(name + " (expected a floating tensor, got " +
                          std::string(c10::toString(it->second.scalar_type())) + ")");
    } else if (it->second.sizes() != at::IntArrayRef(shape)) {
      misshaped.push_back(name + " (expected " + tensor_shape_string(shape) + ", got " +
                          tensor_shape_string(it->second.sizes()) + ")");
    }
  }
  for (const auto& [name, t] : weights)
    if (!shapes.count(name) && !ends_with(name, kPositionIds)) unexpected.push_back(name);
  if (missing.empty() && unexpected.empty() && misshaped.empty()) return;

  std::ostringstream os;
  os << "clip (" << c.name << "): weights do not fit the model";
  auto list = [&](const char* what, const std::vector<std::string>& items) {
    if (items.empty()) return;
    os << "; " << items.size() << ' ' << what << ": ";
    for (size_t i = 0; i < items.size(); ++i) os << (i ? ", " : "") << items[i];
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("mis-shaped", misshaped);
  throw std::runtime_error(os.str());
}

// -- forward --------------------------------------------------------------------------------------

at::Tensor clip_encode_image(const TensorMap& w, const ClipConfig& c, const at::Tensor& pixels,
                             const ForwardContext& ctx) {
  const ClipVisionConfig& v = c.vision;
  if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) != v.image_size || pixels.size(3) != v.image_size)
    throw std::invalid_argument("clip_encode_image: expected pixels (N, 3, " + std::to_string(v.image_size) + ", " +
                                std::to_string(v.image_size) + "), got " + tensor_shape_string(pixels.sizes()));
  const at::Tensor& patch_w = param(w, kVision + "embeddings.patch_embedding.weight", ctx);
  const int64_t n = pixels.size(0);
  // (N, D, g, g) → (N, g², D); the class token goes first, then positions are added.
  const at::Tensor patches = at::conv2d(pixels.to(patch_w.scalar_type()), patch_w, {}, {v.patch_size})
                                 .flatten(2)
                                 .transpose(1, 2);
  const at::Tensor cls =
      param(w, kVision + "embeddings.class_embedding", ctx).view({1, 1, v.hidden_size}).expand({n, 1, v.hidden_size});
  at::Tensor h =
      at::cat({cls, patches}, 1) + param(w, kVision + "embeddings.position_embedding.weight", ctx).unsqueeze(0);
  h = layer_norm(w, kVision + "pre_layrnorm", h, v.layer_norm_eps, ctx);
  for (int64_t i = 0; i < v.num_layers; ++i)
    h = encoder_layer(w, layer_prefix(kVision, i), h, v.num_heads, v.layer_norm_eps, v.activation,
                      /*causal=*/false, ctx);
  const at::Tensor pooled = layer_norm(w, kVision + "post_layernorm", h.select(1, 0), v.layer_norm_eps, ctx);
  return linear(w, "visual_projection", pooled, ctx);
}

ClipTextPooling clip_text_pooling(const ClipTextConfig& config) {
  return config.eos_token_id == 2 ? ClipTextPooling::legacy_argmax : ClipTextPooling::first_eos;
}

at::Tensor clip_text_pool_positions(const ClipTextConfig& config, const at::Tensor& ids) {
  if (ids.dim() != 2 || ids.size(1) < 1)
    throw std::invalid_argument("clip text ids: expected (N, L) with L >= 1, got " + tensor_shape_string(ids.sizes()));
  if (clip_text_pooling(config) == ClipTextPooling::legacy_argmax) return ids.to(at::kLong).argmax(-1);
  const at::Tensor is_eos = ids.eq(config.eos_token_id);
  const at::Tensor has_eos = is_eos.any(-1);
  if (!has_eos.all().item<bool>()) {
    const int64_t row = has_eos.logical_not().nonzero().select(1, 0)[0].item<int64_t>();
    throw std::invalid_argument("clip text ids: row " + std::to_string(row) + " holds no end-of-text token (id " +
                                std::to_string(config.eos_token_id) + ", text_config.eos_token_id) to pool at");
  }
  return is_eos.to(at::kInt).argmax(-1); // first maximum: the first eos
}

at::Tensor clip_encode_text(const TensorMap& w, const ClipConfig& c, const at::Tensor& ids, const ForwardContext& ctx) {
  const ClipTextConfig& t = c.text;
  if (ids.dim() != 2 || ids.size(1) < 1 || ids.size(1) > t.max_positions || ids.scalar_type() != at::kLong)
    throw std::invalid_argument("clip_encode_text: expected int64 ids (N, L) with 1 <= L <= " +
                                std::to_string(t.max_positions) + ", got " +
                                std::string(c10::toString(ids.scalar_type())) + " " + tensor_shape_string(ids.sizes()));
  if (ids.numel() > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= t.vocab_size))
    throw std::invalid_argument("clip_encode_text: token ids must lie in [0, " + std::to_string(t.vocab_size) +
                                "), got [" + std::to_string(ids.min().item<int64_t>()) + ", " +
                                std::to_string(ids.max().item<int64_t>()) + "]");
  const at::Tensor positions = clip_text_pool_positions(t, ids);
  const int64_t len = ids.size(1);
  at::Tensor h = at::embedding(param(w, kText + "embeddings.token_embedding.weight", ctx), ids) +
                 param(w, kText + "embeddings.position_embedding.weight", ctx).slice(0, 0, len).unsqueeze(0);
  for (int64_t i = 0; i < t.num_layers; ++i)
    h = encoder_layer(w, layer_prefix(kText, i), h, t.num_heads, t.layer_norm_eps, t.activation, /*causal=*/true, ctx);
  h = layer_norm(w, kText + "final_layer_norm", h, t.layer_norm_eps, ctx);
  const at::Tensor rows = at::arange(ids.size(0), positions.options().dtype(at::kLong));
  const at::Tensor pooled = h.index({rows, positions.to(at::kLong)});
  return linear(w, "text_projection", pooled, ctx);
}

at::Tensor clip_logits(const at::Tensor& image_embeds, const at::Tensor& text_embeds, const at::Tensor& logit_scale) {
  if (image_embeds.dim() != 2 || text_embeds.dim() != 2 || image_embeds.size(1) != text_embeds.size(1))
    throw std::invalid_argument("clip_logits: expected (N, P) image and (M, P) text embeddings, got " +
                                tensor_shape_string(image_embeds.sizes()) + " and " +
                                tensor_shape_string(text_embeds.sizes()));
  const at::Tensor img = image_embeds / image_embeds.norm(2, {-1}, /*keepdim=*/true);
  const at::Tensor txt = text_embeds / text_embeds.norm(2, {-1}, /*keepdim=*/true);
  return at::matmul(img, txt.t()) * logit_scale.exp();
}

// -- Hugging Face checkpoints ---------------------------------------------------------------------

ClipConfig clip_config_from_hf(const fs::path& config_json) {
  const json root = read_json_file(config_json);
  if (!root.is_object()) throw std::runtime_error(config_json.string() + ": expected a JSON object");
  const JsonSection top(config_json, root, "");
  const std::string type = top.text("model_type", "");
  if (type != "clip") top.fail("model_type", "\"clip\" (a CLIPModel checkpoint), got \"" + type + "\"");
  ClipConfig c;
  c.name = "hf:" + config_json.parent_path().filename().string();
  // Older uploads (openai/clip-vit-*) also carry text_config_dict / vision_config_dict; as in
  // CLIPConfig, their keys override those of text_config / vision_config. A checkpoint always
  // carries one or the other, so a missing pair is an error rather than a default.
  auto merged = [&](const std::string& key) {
    json out = json::object();
    for (const std::string& k : {key, key + "_dict"}) {
      if (!top.has(k)) continue;
      if (!root[k].is_object()) top.fail(k, "an object");
      for (const auto& [name, value] : root[k].items()) out[name] = value;
    }
    if (out.empty()) top.fail(key, "an object (or " + key + "_dict)");
    return out;
  };
  const json text = merged("text_config"), vision = merged("vision_config");
  read_text(JsonSection(config_json, text, "text_config."), c.text);
  read_vision(JsonSection(config_json, vision, "vision_config."), c.vision);
  c.projection_dim = top.integer("projection_dim", 512, 1);
  c.logit_scale_init = top.number("logit_scale_init_value", 2.6592);
  clip_config_check(c);
  return c;
}

ClipCheckpoint clip_load_hf(const fs::path& dir, const std::string& expected_arch) {
  ClipCheckpoint out;
  out.config = clip_config_from_hf(dir / "config.json");
  if (!expected_arch.empty()) {
    const ClipConfig preset = clip_config_named(expected_arch);
    const std::string diff = clip_architecture_difference(out.config, preset);
    if (!diff.empty())
      throw std::runtime_error("CLIP checkpoint '" + dir.string() + "' describes another model than " + expected_arch +
                               " (" + diff + ", the checkpoint's value first); no weights were read");
  }
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path file = fs::exists(index) ? index : dir / "model.safetensors";
  const TensorMap state = safetensors_load_any(file);
  require_finite_weights(state, "CLIP checkpoint '" + file.string() + "'");
  try {
    clip_validate_weights(state, out.config);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("CLIP checkpoint '" + file.string() + "': " + e.what());
  }
  for (const auto& [name, t] : state) {
    if (ends_with(name, kPositionIds)) continue;
    out.weights.emplace(name, t.to(at::kFloat).contiguous());
  }
  return out;
}

} // namespace fedvlm
