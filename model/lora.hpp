// model/lora.hpp — functional LoRA: W x + (alpha/r) · B (A dropout(x)), adapters passed per call.
//
// The frozen base weights are never modified by LoRA: adapters live in a TensorMap owned by
// each client and are handed to the forward pass in a ForwardContext. That is what lets one
// base model serve 40 clients at once, from any number of threads.
//
// Adapter names: "<layer>.lora_A" (r × in) and "<layer>.lora_B" (out × r), where <layer> is the
// base model's module name (e.g. "classifier.3"). A starts random (Kaiming-uniform, as PEFT
// does), B starts at zero, so B·A = 0 and an untrained adapter leaves the model unchanged.
// The scale is alpha / r with r the rows of that layer's A, so clients of different ranks
// (heterogeneous-rank aggregation rules) each use their own.
//
// "<layer>.weight" / "<layer>.bias" in the adapters are a client's own trained copies of base
// tensors (full fine-tuning): looked up before the shared frozen ones (base_or_override).
//
// "<layer>.lora_delta" (out × in, in weight units, never trained) is a per-client dense
// correction of the frozen weight: what aggregation rules that fold a global update into the
// base (FedEx-LoRA's residual, stacking's merged product) leave with the client, so the shared
// base itself stays untouched and shared.
#pragma once

#include "model/tensor_map.hpp"

#include <ATen/core/Generator.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fedvlm {

struct LoraSettings {
  int64_t rank = 4;
  double alpha = 8.0;
  double dropout = 0.0;
  [[nodiscard]] double scale() const { return alpha / static_cast<double>(rank); }
};

/// Shape of a layer LoRA may adapt: a Linear (out × in) or a 1×1 convolution (out × in × 1 × 1).
struct AdaptableLayer {
  int64_t out_features = 0;
  int64_t in_features = 0;
};

inline const std::string kLoraA = ".lora_A";
inline const std::string kLoraB = ".lora_B";
inline const std::string kLoraDelta = ".lora_delta";
/// A linear classifier on the frozen features (linear probe): "probe.weight" (classes × F),
/// "probe.bias" (classes). A task that finds them classifies with them instead of its own head.
inline const std::string kProbeWeight = "probe.weight";
inline const std::string kProbeBias = "probe.bias";

struct ForwardContext;

/// Several clients' mini-batches in one forward pass (scheduler.batch_clients): the frozen
/// base runs once over the union, each client's adapters only on its own rows. Rows
/// [r_0 + … + r_{k-1}, r_0 + … + r_k) along dimension 0 are client k's — or m times that
/// where dimension 0 is batch × m (attention heads).
struct ClientRows {
  std::vector<const TensorMap*> adapters; ///< per client: LoRA adapters only (no base copies, no probe)
  std::vector<int64_t> rows;              ///< per client, in order
  std::vector<at::Generator> generators;  ///< per client: its dropout draws, the same as when it runs alone
  [[nodiscard]] int64_t total_rows() const;
};

/// Everything a forward pass needs besides the input: which adapters, and train/eval behaviour.
struct ForwardContext {
  const TensorMap* adapters = nullptr; ///< null: the plain base model
  LoraSettings lora;
  bool dropout_active = false;  ///< LoRA dropout and the model's own dropout layers
  bool batchnorm_update = false; ///< BatchNorm uses batch statistics and updates running stats
  /// Overrides the model's BatchNorm momentum while batchnorm_update is on; 1/(k+1) on the k-th
  /// batch turns the running statistics into an exact average (BatchNorm recalibration).
  std::optional<double> batchnorm_momentum;
  std::optional<at::Generator> generator; ///< randomness for dropout; per client, per job
  /// Set for a pass over several clients' rows (then `adapters` and `generator` are unset).
  const ClientRows* clients = nullptr;
};

/// The context of client `k` of ctx.clients alone: its adapters and generator.
[[nodiscard]] ForwardContext client_context(const ForwardContext& ctx, std::size_t k);

/// `per_client(rows of client k, client_context(ctx, k))` for every client of ctx.clients,
/// concatenated back along dimension 0. Throws std::invalid_argument when x's dimension 0 is
/// not a multiple of the clients' rows.
template <class F>
[[nodiscard]] at::Tensor for_each_client_rows(const at::Tensor& x, const ForwardContext& ctx, F per_client);

/// Fresh adapters for `targets` (layer name → shape). Deterministic in `seed`.
/// Throws std::invalid_argument naming the layer when rank exceeds its dimensions.
[[nodiscard]] TensorMap lora_init(const std::map<std::string, AdaptableLayer>& targets,
                                  const LoraSettings& settings, uint64_t seed);

/// y = x (W + Δ)ᵀ + b + (alpha/r) · (x Aᵀ) Bᵀ: the LoRA path when `ctx.adapters` holds
/// "<layer>.lora_A/B", the correction Δ when it holds "<layer>.lora_delta".
/// `x` is (..., in); `weight` is (out, in) or (out, in, 1, 1); `bias` may be undefined.
[[nodiscard]] at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight,
                                     const at::Tensor& bias, const std::string& layer,
                                     const ForwardContext& ctx);

/// The tensor a forward uses for the base tensor `name` (e.g. "fc1.weight"): the client's own
/// copy in ctx.adapters when it has one (full fine-tuning), else `base`, the shared frozen one.
[[nodiscard]] const at::Tensor& base_or_override(const at::Tensor& base, const std::string& name, const ForwardContext& ctx);

/// The same for a 1×1 convolution over (N, C, H, W).
[[nodiscard]] at::Tensor lora_conv1x1(const at::Tensor& x, const at::Tensor& weight,
                                      const at::Tensor& bias, const std::string& layer,
                                      const ForwardContext& ctx);

/// W0 + scale · B A, shaped like `weight` (the merged weight an exported model would carry).
[[nodiscard]] at::Tensor lora_merge(const at::Tensor& weight, const at::Tensor& lora_a,
                                    const at::Tensor& lora_b, double scale);

/// The same adapters started afresh: every lora_A redrawn as lora_init draws it (its shape
/// kept, deterministic in `seed`), every lora_B zero; other tensors (lora_delta) untouched.
void lora_restart(TensorMap& adapters, uint64_t seed);

/// A Bernoulli(keep) mask of `sizes` drawn on the CPU from `gen` (a client's CPU generator)
/// and moved to `like`'s device and dtype: the same masks on every device.
[[nodiscard]] at::Tensor cpu_drawn_mask(at::IntArrayRef sizes, double keep, at::Generator gen, const at::Tensor& like);

/// Dropout that draws from `ctx.generator` when set, so masks are reproducible per client.
[[nodiscard]] at::Tensor dropout_with(const at::Tensor& x, double p, const ForwardContext& ctx);

/// at::cat along dimension 0 (kept out of this header's includes).
[[nodiscard]] at::Tensor concat_rows(const std::vector<at::Tensor>& parts);

/// The split of x's dimension 0 into the clients' rows (scaled by batch × m layouts).
[[nodiscard]] std::vector<at::Tensor> split_client_rows(const at::Tensor& x, const ClientRows& clients);

template <class F>
at::Tensor for_each_client_rows(const at::Tensor& x, const ForwardContext& ctx, F per_client) {
  const std::vector<at::Tensor> parts = split_client_rows(x, *ctx.clients);
  std::vector<at::Tensor> out;
  out.reserve(parts.size());
  for (std::size_t k = 0; k < parts.size(); ++k) out.push_back(per_client(parts[k], client_context(ctx, k)));
  return concat_rows(out);
}

/// Layer names present in an adapter map (the part before ".lora_A" / ".lora_B").
[[nodiscard]] std::vector<std::string> lora_layers(const TensorMap& adapters);

} // namespace fedvlm
