// model/florence2.hpp — Florence-2 (DaViT + BART) for VQA fine-tuning: config, weights, forward.
#pragma once

#include "model/bart.hpp"
#include "model/davit.hpp"
#include "model/lora.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace fedvlm {

/// Numeric type of the frozen weights and activations. LoRA adapters stay float32 (they are cast
/// at use, so their gradients and optimizer state keep full precision) and the loss is float32.
/// float16 is left out: LibTorch's CPU kernels lack it, and the models do not run on CUDA yet.
enum class Precision { float32, bfloat16 };

struct Florence2Config {
  std::string name = "base";
  DaViTConfig vision;
  ImageProjectionConfig projection;
  BartConfig text;
  int64_t image_size = 768;
  std::vector<double> image_mean = {0.485, 0.456, 0.406};
  std::vector<double> image_std = {0.229, 0.224, 0.225};
  Precision precision = Precision::float32;

  /// microsoft/Florence-2-base (~0.23B), -large (~0.77B), and a tiny one for tests (64 px).
  [[nodiscard]] static Florence2Config base();
  [[nodiscard]] static Florence2Config large();
  [[nodiscard]] static Florence2Config tiny();
  /// "base" | "large" | "tiny"; std::invalid_argument otherwise.
  [[nodiscard]] static Florence2Config named(const std::string& name);
};

class Florence2 {
public:
  /// Random weights (normal(0, 0.02) matrices and embeddings, LayerNorm 1/0, biases 0, the
  /// temporal sinusoid buffer exact; deterministic in seed) with every tensor the checkpoint has.
  Florence2(Florence2Config config, uint64_t seed);

  /// Loads a Hugging Face checkpoint (model.safetensors, a sharded index, or a directory holding
  /// either) by parameter name, in the published remote-code layout or in transformers' native
  /// one. Tied embeddings may be stored once (shared / encoder / decoder embed_tokens / lm_head).
  /// Throws std::runtime_error listing missing, unexpected and mis-shaped keys.
  void load(const std::filesystem::path& checkpoint);
  void load_state(const TensorMap& state);

  [[nodiscard]] const Florence2Config& config() const { return config_; }
  [[nodiscard]] const TensorMap& state() const { return weights_; }
  [[nodiscard]] TensorMap& mutable_state() { return weights_; }
  /// Every Linear of the decoder plus lm_head, by module name → {out, in}. Encoder Linears are
  /// not offered: encode() runs without adapters, so an adapter there would do nothing.
  [[nodiscard]] std::map<std::string, AdaptableLayer> adaptable_layers() const;
  /// Module names of the last decoder layer's Linears (the paper's pLoRA placement).
  [[nodiscard]] std::vector<std::string> last_decoder_layer_targets() const;

  /// pixels (B, 3, S, S) + prompt ids (B, P) → encoder hidden states (B, 577-ish + P, d). No
  /// adapters here (ctx.adapters is ignored) and no autograd: the paper adapts only the decoder,
  /// so this is computed once per sample. Dropout follows ctx.dropout_active: pass an eval
  /// context when caching the result.
  [[nodiscard]] at::Tensor encode(const at::Tensor& pixels, const at::Tensor& prompt_ids,
                                  const ForwardContext& ctx) const;
  /// Teacher-forced logits (B, T, vocab) for labels (B, T) (-100 = ignore).
  [[nodiscard]] at::Tensor decode_logits(const at::Tensor& encoder_hidden, const at::Tensor& labels,
                                         const ForwardContext& ctx) const;
  /// Mean token cross-entropy over labels != -100 (the paper's eq. 1).
  [[nodiscard]] at::Tensor loss(const at::Tensor& logits, const at::Tensor& labels) const;
  [[nodiscard]] at::Tensor generate(const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                                    int64_t max_new_tokens) const;
  /// Beam search / n-gram blocking as GenerationSettings says (bart_generate).
  [[nodiscard]] at::Tensor generate(const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                                    const GenerationSettings& settings) const;

  /// Lowest decoder layer holding any adapter in `adapters` (decoder_layers when none).
  [[nodiscard]] int64_t first_adapted_decoder_layer(const TensorMap* adapters) const;

private:
  /// load_state on remote-code names; `layout_note` tells error messages where names came from.
  void load_state_checked(const TensorMap& state, const std::string& layout_note);
  /// Casts every floating weight to config_.precision.
  void apply_precision();

  Florence2Config config_;
  TensorMap weights_;
};

/// Every Linear LoRA may adapt (decoder and lm_head), by module name → {out, in}.
[[nodiscard]] std::map<std::string, AdaptableLayer> florence2_adaptable_layers(const Florence2Config& config);
/// The last decoder layer's Linears: the FedVLM paper's pLoRA placement.
[[nodiscard]] std::vector<std::string> florence2_last_decoder_layer_targets(const Florence2Config& config);

} // namespace fedvlm
