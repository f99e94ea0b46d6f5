// model/bart.hpp — BART encoder-decoder (Florence-2's language model) as pure functions with LoRA.
//
// Weights by the published Florence-2 checkpoint's names under `language_model.`
// (e.g. "language_model.model.decoder.layers.5.self_attn.q_proj.weight"). Every Linear goes
// through lora_linear with its module name (the weight name without ".weight"), so LoRA can
// target any of them by name, e.g. "language_model.model.decoder.layers.5.self_attn.q_proj".
#pragma once

#include "model/lora.hpp"
#include "model/tensor_map.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

struct BartConfig {
  int64_t vocab_size = 51289;
  int64_t d_model = 768;
  int64_t encoder_layers = 6;
  int64_t decoder_layers = 6;
  int64_t encoder_heads = 12;
  int64_t decoder_heads = 12;
  int64_t encoder_ffn_dim = 3072;
  int64_t decoder_ffn_dim = 3072;
  int64_t max_position_embeddings = 1024;
  double dropout = 0.1; ///< hidden dropout (applied only while ctx.dropout_active)
  /// Dropout on attention probabilities and after the FFN activation. The published configs
  /// set both to 0.1 (Florence2Config::base/large do); 0 here keeps a bare BartConfig plain.
  double attention_dropout = 0.0;
  double activation_dropout = 0.0;
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 2;
  int64_t decoder_start_token_id = 2;
};

/// inputs_embeds (B, S, d) → encoder hidden states (B, S, d). Learned positions (offset 2),
/// layernorm_embedding, post-LN layers, GELU FFN. No attention mask (as the reference).
[[nodiscard]] at::Tensor bart_encode(const TensorMap& weights, const BartConfig& config,
                                     const at::Tensor& inputs_embeds, const ForwardContext& ctx);

/// Teacher-forced decoder: decoder_input_ids (B, T) int64 → logits (B, T, vocab), causal
/// self-attention, cross-attention over `encoder_hidden` (B, S, d), lm_head + final_logits_bias.
/// Decoder layers below `first_grad_layer` run without autograd (their inputs never depend on
/// trainable tensors when LoRA sits only above them).
[[nodiscard]] at::Tensor bart_decode(const TensorMap& weights, const BartConfig& config,
                                     const at::Tensor& decoder_input_ids, const at::Tensor& encoder_hidden,
                                     const ForwardContext& ctx, int64_t first_grad_layer = 0);

/// Greedy decoding from decoder_start_token_id until eos or max_new_tokens, per batch row
/// (rows that finished are padded with pad_token_id). Returns (B, ≤ max_new_tokens) without the
/// start token. No autograd. Incremental: cross-attention keys/values are projected once and
/// each step runs only the newest token through the decoder, over cached self-attention keys.
[[nodiscard]] at::Tensor bart_generate_greedy(const TensorMap& weights, const BartConfig& config,
                                              const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                                              int64_t max_new_tokens);

struct GenerationSettings {
  int64_t max_new_tokens = 32;
  int64_t num_beams = 1;            ///< 1: greedy (Florence-2's own default is 3)
  int64_t no_repeat_ngram_size = 0; ///< ban tokens that would repeat an n-gram (Florence-2: 3)
  double length_penalty = 1.0;      ///< finished beams rank by log-prob / length^penalty
};

/// Beam search as Hugging Face's generate() does it for encoder-decoders: each row keeps
/// num_beams hypotheses, expands each by its 2·num_beams best tokens, moves those ending in eos
/// to the finished list (score / length^length_penalty, length counting the start token) and
/// stops when num_beams are finished and no live beam can still beat them. With num_beams 1
/// and no n-gram rule it is bart_generate_greedy. Returns (B, L) without the start token,
/// padded with pad_token_id. No autograd; incremental as bart_generate_greedy.
[[nodiscard]] at::Tensor bart_generate(const TensorMap& weights, const BartConfig& config,
                                       const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                                       const GenerationSettings& settings);

/// Token embedding: the shared table `language_model.model.shared.weight`.
[[nodiscard]] at::Tensor bart_embed_tokens(const TensorMap& weights, const at::Tensor& ids);

/// labels (B, T) with -100 for ignored positions → decoder inputs: shift right, start token first,
/// -100 replaced by pad.
[[nodiscard]] at::Tensor bart_shift_right(const at::Tensor& labels, const BartConfig& config);

/// Every tensor name and shape of the language model (tied embeddings listed once, as
/// language_model.model.shared.weight; lm_head shares it).
[[nodiscard]] std::map<std::string, std::vector<int64_t>> bart_parameter_shapes(const BartConfig& config);

/// Linear layers LoRA may target: module name → {out, in}.
[[nodiscard]] std::map<std::string, std::pair<int64_t, int64_t>> bart_linear_layers(const BartConfig& config);

} // namespace fedvlm
