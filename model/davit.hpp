// model/davit.hpp — Florence-2's DaViT vision tower and image-token projection, as pure functions.
//
// Weights are read by the published checkpoint's names (`vision_tower.*`, `image_projection`,
// `image_proj_norm.*`, `image_pos_embed.*`, `visual_temporal_embed.*`) from a TensorMap.
#pragma once

#include "model/tensor_map.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {

struct DaViTConfig {
  int64_t in_channels = 3;
  std::vector<int64_t> dims = {128, 256, 512, 1024};
  std::vector<int64_t> heads = {4, 8, 16, 32}; ///< window-attention heads = channel-attention groups
  std::vector<int64_t> depths = {1, 1, 9, 1};
  std::vector<int64_t> patch_size = {7, 3, 3, 3};
  std::vector<int64_t> patch_stride = {4, 2, 2, 2};
  std::vector<int64_t> patch_padding = {3, 1, 1, 1};
  std::vector<bool> patch_prenorm = {false, true, true, true};
  int64_t window_size = 12;
  double mlp_ratio = 4.0;
};

/// Image tokens → text space: 2-D learned position embedding, temporal embedding, mean token,
/// linear projection (no bias) to `projection_dim`, LayerNorm.
struct ImageProjectionConfig {
  int64_t projection_dim = 768;
  int64_t max_pos_embeddings = 50;      ///< rows (and columns) of the 2-D position tables
  int64_t max_temporal_embeddings = 100;
};

/// (B, 3, H, W) normalised pixels → (B, H/32 · W/32, dims.back()) tokens (eval: no drop-path).
[[nodiscard]] at::Tensor davit_forward(const TensorMap& weights, const DaViTConfig& config,
                                       const at::Tensor& pixels);

/// DaViT tokens (B, N, C) with N = h·w → (B, 1 + N, projection_dim) text-space image tokens.
[[nodiscard]] at::Tensor image_tokens_project(const TensorMap& weights, const ImageProjectionConfig& config,
                                              const at::Tensor& tokens, int64_t h, int64_t w);

/// Every tensor name and shape the vision tower + projection expect, for random init and loading.
[[nodiscard]] std::map<std::string, std::vector<int64_t>> davit_parameter_shapes(
    const DaViTConfig& vision, const ImageProjectionConfig& projection);

/// Final token grid (h, w) for a height × width input: the stage convolutions' output sizes
/// (768² → 24², 576 tokens). Pass it to image_tokens_project.
[[nodiscard]] std::pair<int64_t, int64_t> davit_output_grid(const DaViTConfig& config, int64_t height,
                                                           int64_t width);

// Building blocks, exposed so tests can hold them against naive formulas. Both take already
// layer-normed tokens and return the attention branch only (the caller adds the residual).

/// Non-overlapping window MHSA over (B, h·w, C): zero-pads the grid up to multiples of
/// `window_size` (padded tokens take part in attention unmasked, as in the reference), then crops.
[[nodiscard]] at::Tensor davit_window_attention(const at::Tensor& x, int64_t h, int64_t w,
                                                const at::Tensor& qkv_weight, const at::Tensor& qkv_bias,
                                                const at::Tensor& proj_weight, const at::Tensor& proj_bias,
                                                int64_t num_heads, int64_t window_size);

/// DaViT channel attention over (B, N, C): per group, a (C/G × C/G) softmax(q̂ᵀk) with q scaled by
/// N^-0.5 mixes the channels of v.
[[nodiscard]] at::Tensor davit_channel_attention(const at::Tensor& x, const at::Tensor& qkv_weight,
                                                 const at::Tensor& qkv_bias, const at::Tensor& proj_weight,
                                                 const at::Tensor& proj_bias, int64_t groups);

} // namespace fedvlm
