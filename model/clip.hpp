// model/clip.hpp — CLIP (ViT image tower + causal text transformer) as pure functions over named weights, with LoRA.
//
// Weights carry the names of Hugging Face's `CLIPModel` (e.g.
// "text_model.encoder.layers.3.self_attn.q_proj.weight", "visual_projection.weight"), so a
// published `model.safetensors` (openai/clip-vit-base-patch32 and its kin) loads by name. Every
// Linear runs through lora_linear with its module name (the weight name without ".weight"), so
// an adapter named "text_model.encoder.layers.3.self_attn.q_proj.lora_A/B" in ctx.adapters
// applies to that layer and nothing else. Every tensor (LayerNorms, embeddings and projections
// included) is looked up through base_or_override, so a client's own copy of it in ctx.adapters
// (full fine-tuning) replaces the shared one. The functions hold no state: one frozen TensorMap
// serves every client from any thread.
//
// Architecture (Radford et al. 2021, as HF's modeling_clip implements it):
// - vision: Conv2d(3 → hidden, kernel = stride = patch, no bias) → tokens; a learned class token
//   in front; learned positions; `pre_layrnorm`; pre-LN encoder layers; the class token's
//   state through `post_layernorm`; `visual_projection` (no bias).
// - text: token + learned positions; pre-LN encoder layers under a causal mask; `final_layer_norm`;
//   the state at the end-of-text position (see ClipTextPooling); `text_projection` (no bias).
// - encoder layer: x += out_proj(MHA(layer_norm1(x))); x += fc2(act(fc1(layer_norm2(x)))), with
//   q scaled by head_dim^-0.5 after q_proj and act = quick_gelu (x·σ(1.702x)) unless configured.
// - logits: exp(logit_scale) · cosine similarity of the projected embeddings.
#pragma once

#include "model/lora.hpp"
#include "model/tensor_map.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

/// The MLP's activation. "quick_gelu" is what OpenAI's CLIP was trained with; some later CLIPs
/// (e.g. LAION's) say "gelu" (exact, erf-based). Nothing else is accepted.
enum class ClipActivation { quick_gelu, gelu };

struct ClipVisionConfig {
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  double layer_norm_eps = 1e-5;
  ClipActivation activation = ClipActivation::quick_gelu;
  /// Tokens per image: (image_size / patch_size)² patches + the class token.
  [[nodiscard]] int64_t num_positions() const {
    const int64_t side = image_size / patch_size;
    return side * side + 1;
  }
};

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t num_layers = 12;
  int64_t num_heads = 8;
  int64_t intermediate_size = 2048;
  int64_t max_positions = 77;
  int64_t bos_token_id = 0; ///< as the published (old) configs say; the tokenizer's is 49406
  /// 2 in the published (old) configs, which selects the legacy pooling rule (ClipTextPooling).
  int64_t eos_token_id = 2;
  int64_t pad_token_id = 1;
  double layer_norm_eps = 1e-5;
  ClipActivation activation = ClipActivation::quick_gelu;
};

struct ClipConfig {
  /// The model.arch it stands for ("clip_vit_b32", ...) or "hf:<directory>" when read from a
  /// checkpoint's config.json.
  std::string name = "clip_vit_b32";
  ClipVisionConfig vision;
  ClipTextConfig text;
  int64_t projection_dim = 512;
  /// Initial value of the `logit_scale` parameter: ln(1/0.07), as CLIP was initialised.
  double logit_scale_init = 2.6592;
};

/// openai/clip-vit-base-patch32 (FLoRA's model; the default), -base-patch16, -large-patch14
/// (224 px), and a tiny random model for tests (vision 32 wide, 2 layers, 2 heads, 32 px images
/// of 8×8 patches; text vocabulary 600, 16 positions, 2 layers; eos id 599, the largest id, so
/// the first-eos pooling rule applies).
[[nodiscard]] ClipConfig clip_vit_b32();
[[nodiscard]] ClipConfig clip_vit_b16();
[[nodiscard]] ClipConfig clip_vit_l14();
[[nodiscard]] ClipConfig clip_tiny();
/// "clip_vit_b32" | "clip_vit_b16" | "clip_vit_l14" | "clip_tiny"; std::invalid_argument otherwise.
[[nodiscard]] ClipConfig clip_config_named(const std::string& arch);

/// Throws std::invalid_argument naming the field when a size is < 1, a width is not divisible
/// by its head count, the image is not a whole number of patches, or an eps is not > 0.
void clip_config_check(const ClipConfig& config);

/// "" when `a` and `b` are the same size of model (every width, depth, head count, image and
/// patch size, vocabulary, positions and projection); otherwise the first difference in
/// config.json's words, e.g. "vision_config.patch_size 16 vs 32". Token ids, eps and the
/// activation are not sizes and are left out.
[[nodiscard]] std::string clip_architecture_difference(const ClipConfig& a, const ClipConfig& b);

// -- weights ------------------------------------------------------------------------------------

/// Every tensor name of HF's CLIPModel and its shape. `logit_scale` is a 0-d tensor.
[[nodiscard]] std::map<std::string, std::vector<int64_t>> clip_parameter_shapes(const ClipConfig& config);

/// Every Linear LoRA may adapt, by module name → {out, in}: per layer of both towers
/// self_attn.{q,k,v,out}_proj, mlp.fc1, mlp.fc2, plus visual_projection and text_projection.
/// The patch convolution is not a Linear and is not offered.
[[nodiscard]] std::map<std::string, AdaptableLayer> clip_adaptable_layers(const ClipConfig& config);

/// Random float32 weights with every tensor of clip_parameter_shapes, deterministic in `seed`,
/// scaled as HF's CLIPPreTrainedModel._init_weights does with initializer_factor 1: embeddings
/// and positions normal(0, 0.02); class token normal(0, hidden^-0.5); attention projections
/// normal(0, hidden^-0.5 · (2·layers)^-0.5), out_proj normal(0, hidden^-0.5); fc1 normal(0,
/// (2·hidden)^-0.5), fc2 normal(0, hidden^-0.5 · (2·layers)^-0.5); patch conv normal(0, 0.02);
/// projections normal(0, hidden^-0.5); LayerNorm 1 / 0; biases 0; logit_scale = logit_scale_init.
[[nodiscard]] TensorMap clip_random_weights(const ClipConfig& config, uint64_t seed);

/// Throws std::runtime_error unless `weights` holds exactly the tensors of
/// clip_parameter_shapes, each floating-point and of its shape. The message lists every
/// missing, unexpected and mis-shaped tensor (name, expected and actual shape), all of them, in
/// one line. `*.embeddings.position_ids` (a buffer some checkpoints store) is accepted and ignored.
void clip_validate_weights(const TensorMap& weights, const ClipConfig& config);

// -- forward --------------------------------------------------------------------------------------

/// pixels (N, 3, image_size, image_size), already preprocessed (ClipImageProcessor) →
/// projected image embeddings (N, projection_dim), not normalised. Throws std::invalid_argument
/// on another shape. Computes in the weights' dtype.
[[nodiscard]] at::Tensor clip_encode_image(const TensorMap& weights, const ClipConfig& config,
                                           const at::Tensor& pixels, const ForwardContext& ctx);

/// How the text tower picks the one state it projects, as HF's CLIPTextTransformer does:
/// - legacy (text_config.eos_token_id == 2, what the published OpenAI configs say): the position
///   of the largest id in the row (OpenAI's rule: their end-of-text token 49407 is the largest id
///   of the vocabulary); ties go to the first.
/// - first_eos (any other eos_token_id): the first position holding eos_token_id.
enum class ClipTextPooling { legacy_argmax, first_eos };
[[nodiscard]] ClipTextPooling clip_text_pooling(const ClipTextConfig& config);

/// The pooled position of every row of `ids` (N, L) → (N) int64, by the rule above. Under
/// first_eos a row without eos_token_id throws std::invalid_argument naming the row (HF would
/// silently pool position 0).
[[nodiscard]] at::Tensor clip_text_pool_positions(const ClipTextConfig& config, const at::Tensor& ids);

/// ids (N, L) int64, 1 ≤ L ≤ max_positions, every id in [0, vocab_size) → projected text
/// embeddings (N, projection_dim), not normalised. No padding mask is taken: the causal mask
/// already keeps the pooled end-of-text state from seeing any padding that follows it.
[[nodiscard]] at::Tensor clip_encode_text(const TensorMap& weights, const ClipConfig& config,
                                          const at::Tensor& ids, const ForwardContext& ctx);

/// exp(logit_scale) · cos(image_i, text_j): logits per image (N_image, N_text); transpose for
/// logits per text. Embeddings are divided by their L2 norms (as HF: no epsilon). `logit_scale`
/// is the 0-d weight (gradients flow to it if it requires them).
[[nodiscard]] at::Tensor clip_logits(const at::Tensor& image_embeds, const at::Tensor& text_embeds,
                                     const at::Tensor& logit_scale);

// -- Hugging Face checkpoints ---------------------------------------------------------------------

/// Reads a Hugging Face CLIP `config.json` (model_type "clip"): text_config and vision_config
/// (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, image_size,
/// patch_size, vocab_size, max_position_embeddings, bos/eos/pad_token_id, hidden_act,
/// layer_norm_eps), projection_dim, logit_scale_init_value. Keys of text_config_dict /
/// vision_config_dict (older uploads carry both) override those of text_config / vision_config,
/// as in CLIPConfig; one of each pair must be there. Absent keys take the defaults of
/// transformers' CLIP configs (ViT-B/32 sizes; bos/eos/pad 49406/49407/1). Throws
/// std::runtime_error naming the file, the key and what was expected (also for num_channels != 3
/// or an activation other than quick_gelu / gelu).
/// `name` of the result is "hf:<directory name>".
[[nodiscard]] ClipConfig clip_config_from_hf(const std::filesystem::path& config_json);

struct ClipCheckpoint {
  ClipConfig config;
  TensorMap weights; ///< float32, exactly clip_parameter_shapes(config) (position_ids dropped)
};

/// Loads `dir`/config.json, then — only when `expected_arch` is "" or a preset whose sizes equal
/// the config's (clip_architecture_difference) — `dir`/model.safetensors (or a sharded
/// model.safetensors.index.json) by parameter name. F16/BF16 tensors are widened to float32.
/// Throws std::runtime_error naming the directory: a size mismatch with `expected_arch` (before
/// any weight is read), a bad config, non-finite weights, or every missing / unexpected /
/// mis-shaped tensor (clip_validate_weights).
[[nodiscard]] ClipCheckpoint clip_load_hf(const std::filesystem::path& dir, const std::string& expected_arch = "");

} // namespace fedvlm
