// model/davit.cpp — Florence-2 DaViT vision tower and image-token projection: ATen over checkpoint-named weights.
//
// Semantics follow the remote code of microsoft/Florence-2-base (`modeling_florence2.py`: DaViT,
// ConvEmbed, SpatialBlock, ChannelBlock, WindowAttention, ChannelAttention, `_encode_image`), in
// eval mode: drop-path is the identity. Tokens stay channels-last (B, h·w, C) between stages as
// there, so LayerNorm and Linear act on the last dimension; only the convolutions see maps.
#include "model/davit.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {
namespace {

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

// nn.LayerNorm's default: every norm of the reference (stage, block, projection) is built bare.
constexpr double kLayerNormEps = 1e-5;
// Every block convolution is DepthWiseConv2d(dim, kernel 3, padding 1, stride 1).
constexpr int64_t kBlockConvKernel = 3;


std::string conv_prefix(size_t stage) { return "vision_tower.convs." + std::to_string(stage); }

std::string block_prefix(size_t stage, int64_t j, const char* kind) {
  return "vision_tower.blocks." + std::to_string(stage) + "." + std::to_string(j) + "." + kind;
}

void validate_vision(const DaViTConfig& c) {
  const size_t n = c.dims.size();
  if (n == 0) throw std::invalid_argument("davit: config needs at least one stage");
  const auto same = [n](size_t m, const char* what) {
    if (m != n)
      throw std::invalid_argument(std::string("davit: config.") + what + " has " +
                                  std::to_string(m) + " entries, dims has " + std::to_string(n));
  };
  same(c.heads.size(), "heads");
  same(c.depths.size(), "depths");
  same(c.patch_size.size(), "patch_size");
  same(c.patch_stride.size(), "patch_stride");
  same(c.patch_padding.size(), "patch_padding");
  same(c.patch_prenorm.size(), "patch_prenorm");
  if (c.in_channels < 1) throw std::invalid_argument("davit: in_channels must be >= 1");
  if (c.window_size < 1) throw std::invalid_argument("davit: window_size must be >= 1");
  if (!(c.mlp_ratio > 0.0)) throw std::invalid_argument("davit: mlp_ratio must be > 0");
  for (size_t i = 0; i < n; ++i) {
    const std::string stage = "davit: stage " + std::to_string(i) + ": ";
    if (c.dims[i] < 1 || c.heads[i] < 1 || c.dims[i] % c.heads[i] != 0)
      throw std::invalid_argument(stage + "dim " + std::to_string(c.dims[i]) +
                                  " must be a positive multiple of heads " +
                                  std::to_string(c.heads[i]));
    if (c.depths[i] < 0) throw std::invalid_argument(stage + "depth must be >= 0");
    if (c.patch_size[i] < 1 || c.patch_stride[i] < 1 || c.patch_padding[i] < 0)
      throw std::invalid_argument(stage + "patch size/stride must be >= 1 and padding >= 0");
  }
}

void validate_projection(const ImageProjectionConfig& p) {
  if (p.projection_dim < 1 || p.max_pos_embeddings < 1 || p.max_temporal_embeddings < 1)
    throw std::invalid_argument("image projection: projection_dim, max_pos_embeddings and "
                                "max_temporal_embeddings must be >= 1");
}

// The reference sizes the MLP with int(dim * mlp_ratio), i.e. truncation.
int64_t mlp_hidden(const DaViTConfig& c, int64_t dim) {
  return static_cast<int64_t>(static_cast<double>(dim) * c.mlp_ratio);
}

// SpatialBlock and ChannelBlock hold the same tensors; only the attention's module name differs.
void add_block_shapes(ShapeMap& s, const std::string& p, const std::string& attn, int64_t dim,
                      int64_t hidden) {
  for (const char* conv : {".conv1", ".conv2"}) {
    s[p + conv + ".fn.dw.weight"] = {dim, 1, kBlockConvKernel, kBlockConvKernel};
    s[p + conv + ".fn.dw.bias"] = {dim};
  }
  s[p + "." + attn + ".norm.weight"] = {dim};
  s[p + "." + attn + ".norm.bias"] = {dim};
  s[p + "." + attn + ".fn.qkv.weight"] = {3 * dim, dim};
  s[p + "." + attn + ".fn.qkv.bias"] = {3 * dim};
  s[p + "." + attn + ".fn.proj.weight"] = {dim, dim};
  s[p + "." + attn + ".fn.proj.bias"] = {dim};
  s[p + ".ffn.norm.weight"] = {dim};
  s[p + ".ffn.norm.bias"] = {dim};
  s[p + ".ffn.fn.net.fc1.weight"] = {hidden, dim};
  s[p + ".ffn.fn.net.fc1.bias"] = {hidden};
  s[p + ".ffn.fn.net.fc2.weight"] = {dim, hidden};
  s[p + ".ffn.fn.net.fc2.bias"] = {dim};
}

// No `vision_tower.norms` / `vision_tower.head`: Florence2ForConditionalGeneration deletes them,
// so the checkpoint does not carry them.
ShapeMap vision_shapes(const DaViTConfig& c) {
  ShapeMap s;
  for (size_t i = 0; i < c.dims.size(); ++i) {
    const int64_t in = i == 0 ? c.in_channels : c.dims[i - 1];
    const int64_t out = c.dims[i];
    const int64_t k = c.patch_size[i];
    const std::string cp = conv_prefix(i);
    s[cp + ".proj.weight"] = {out, in, k, k};
    s[cp + ".proj.bias"] = {out};
    // ConvEmbed normalises the conv's input channels when pre_norm, its output channels otherwise.
    const int64_t norm_dim = c.patch_prenorm[i] ? in : out;
    s[cp + ".norm.weight"] = {norm_dim};
    s[cp + ".norm.bias"] = {norm_dim};
    for (int64_t j = 0; j < c.depths[i]; ++j) {
      add_block_shapes(s, block_prefix(i, j, "spatial_block"), "window_attn", out,
                       mlp_hidden(c, out));
      add_block_shapes(s, block_prefix(i, j, "channel_block"), "channel_attn", out,
                       mlp_hidden(c, out));
    }
  }
  return s;
}

ShapeMap projection_shapes(int64_t c_last, const ImageProjectionConfig& p) {
  ShapeMap s;
  s["image_projection"] = {c_last, p.projection_dim}; // a bare Parameter used as x @ P: (in, out)
  s["image_proj_norm.weight"] = {p.projection_dim};
  s["image_proj_norm.bias"] = {p.projection_dim};
  // LearnedAbsolutePositionEmbedding2D splits C unevenly when odd: rows get the floor half.
  s["image_pos_embed.row_embeddings.weight"] = {p.max_pos_embeddings, c_last / 2};
  s["image_pos_embed.column_embeddings.weight"] = {p.max_pos_embeddings, c_last - c_last / 2};
  // A persistent buffer (sinusoids), so it is in the checkpoint and is loaded, not recomputed.
  s["visual_temporal_embed.pos_idx_to_embed"] = {p.max_temporal_embeddings, c_last};
  return s;
}

// Checks the whole layout before any compute, so a bad checkpoint fails with every offending
// name at once rather than with an ATen shape error deep inside stage 3.
void check_weights(const TensorMap& weights, const ShapeMap& expected, const char* who) {
  std::vector<std::string> problems;
  for (const auto& [name, shape] : expected) {
    const auto it = weights.find(name);
    if (it == weights.end() || !it->second.defined())
      problems.push_back("missing weight '" + name + "'");
    else if (it->second.sizes() != at::IntArrayRef(shape))
      problems.push_back("weight '" + name + "' has shape " + tensor_shape_string(it->second.sizes()) +
                         ", expected " + tensor_shape_string(shape));
  }
  if (problems.empty()) return;
  constexpr size_t kShown = 8;
  std::string msg = std::string(who) + ": ";
  for (size_t i = 0; i < problems.size() && i < kShown; ++i) msg += (i ? "; " : "") + problems[i];
  if (problems.size() > kShown)
    msg += "; and " + std::to_string(problems.size() - kShown) + " more";
  throw std::runtime_error(msg);
}

const at::Tensor& get(const TensorMap& weights, const std::string& name) {
  const auto it = weights.find(name);
  if (it == weights.end()) throw std::runtime_error("davit: missing weight '" + name + "'");
  return it->second;
}

at::Tensor layer_norm(const at::Tensor& x, const TensorMap& weights, const std::string& prefix) {
  return at::layer_norm(x, {x.size(-1)}, get(weights, prefix + ".weight"),
                        get(weights, prefix + ".bias"), kLayerNormEps);
}

at::Tensor tokens_to_map(const at::Tensor& x, int64_t h, int64_t w) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), h, w});
}

at::Tensor map_to_tokens(const at::Tensor& x) { return x.flatten(2).transpose(1, 2); }

// PreNorm(None, DepthWiseConv2d): a 3×3 depthwise conv as a residual (conditional position
// encoding), applied before both the attention and the MLP.
at::Tensor depthwise_residual(const at::Tensor& x, int64_t h, int64_t w, const TensorMap& weights,
                              const std::string& prefix) {
  const int64_t c = x.size(2);
  const at::Tensor y = at::conv2d(tokens_to_map(x, h, w), get(weights, prefix + ".fn.dw.weight"),
                                  get(weights, prefix + ".fn.dw.bias"), {1, 1}, {1, 1}, {1, 1}, c);
  return x + map_to_tokens(y);
}

at::Tensor ffn_residual(const at::Tensor& x, const TensorMap& weights, const std::string& prefix) {
  at::Tensor y = layer_norm(x, weights, prefix + ".norm");
  y = at::linear(y, get(weights, prefix + ".fn.net.fc1.weight"),
                 get(weights, prefix + ".fn.net.fc1.bias"));
  y = at::gelu(y, "none"); // nn.GELU() default: the exact erf form
  y = at::linear(y, get(weights, prefix + ".fn.net.fc2.weight"),
                 get(weights, prefix + ".fn.net.fc2.bias"));
  return x + y;
}

at::Tensor spatial_block(const at::Tensor& in, int64_t h, int64_t w, const TensorMap& weights,
                         const std::string& p, int64_t heads, int64_t window) {
  at::Tensor x = depthwise_residual(in, h, w, weights, p + ".conv1");
  const std::string a = p + ".window_attn";
  x = x + davit_window_attention(
              layer_norm(x, weights, a + ".norm"), h, w, get(weights, a + ".fn.qkv.weight"),
              get(weights, a + ".fn.qkv.bias"), get(weights, a + ".fn.proj.weight"),
              get(weights, a + ".fn.proj.bias"), heads, window);
  x = depthwise_residual(x, h, w, weights, p + ".conv2");
  return ffn_residual(x, weights, p + ".ffn");
}

at::Tensor channel_block(const at::Tensor& in, int64_t h, int64_t w, const TensorMap& weights,
                         const std::string& p, int64_t groups) {
  at::Tensor x = depthwise_residual(in, h, w, weights, p + ".conv1");
  const std::string a = p + ".channel_attn";
  x = x + davit_channel_attention(
              layer_norm(x, weights, a + ".norm"), get(weights, a + ".fn.qkv.weight"),
              get(weights, a + ".fn.qkv.bias"), get(weights, a + ".fn.proj.weight"),
              get(weights, a + ".fn.proj.bias"), groups);
  x = depthwise_residual(x, h, w, weights, p + ".conv2");
  return ffn_residual(x, weights, p + ".ffn");
}

} // namespace

std::map<std::string, std::vector<int64_t>>
davit_parameter_shapes(const DaViTConfig& vision, const ImageProjectionConfig& projection) {
  validate_vision(vision);
  validate_projection(projection);
  ShapeMap s = vision_shapes(vision);
  for (auto& [name, shape] : projection_shapes(vision.dims.back(), projection)) s[name] = shape;
  return s;
}

std::pair<int64_t, int64_t> davit_output_grid(const DaViTConfig& config, int64_t height,
                                              int64_t width) {
  validate_vision(config);
  int64_t h = height, w = width;
  for (size_t i = 0; i < config.dims.size(); ++i) {
    const int64_t k = config.patch_size[i], s = config.patch_stride[i], p = config.patch_padding[i];
    if (h + 2 * p < k || w + 2 * p < k)
      throw std::invalid_argument("davit: a " + std::to_string(height) + "x" +
                                  std::to_string(width) + " input is too small for stage " +
                                  std::to_string(i));
    h = (h + 2 * p - k) / s + 1;
    w = (w + 2 * p - k) / s + 1;
  }
  return {h, w};
}

at::Tensor davit_window_attention(const at::Tensor& x, int64_t h, int64_t w,
                                  const at::Tensor& qkv_weight, const at::Tensor& qkv_bias,
                                  const at::Tensor& proj_weight, const at::Tensor& proj_bias,
                                  int64_t num_heads, int64_t window_size) {
  if (x.dim() != 3 || x.size(1) != h * w)
    throw std::invalid_argument("davit_window_attention: expected (B, " + std::to_string(h * w) +
                                ", C) tokens, got " + tensor_shape_string(x.sizes()));
  const int64_t b = x.size(0), c = x.size(2), ws = window_size;
  if (num_heads < 1 || c % num_heads != 0 || ws < 1)
    throw std::invalid_argument("davit_window_attention: channels " + std::to_string(c) +
                                " must split into " + std::to_string(num_heads) +
                                " heads; window >= 1");
  const int64_t pad_b = (ws - h % ws) % ws, pad_r = (ws - w % ws) % ws;
  at::Tensor grid = x.reshape({b, h, w, c});
  // Zero tokens, not masked: the reference pads after the norm and lets them into the softmax.
  if (pad_b > 0 || pad_r > 0) grid = at::constant_pad_nd(grid, {0, 0, 0, pad_r, 0, pad_b}, 0);
  const int64_t hp = h + pad_b, wp = w + pad_r, nh = hp / ws, nw = wp / ws;
  const int64_t n = ws * ws, hd = c / num_heads, windows = b * nh * nw;

  // Windows ordered (image, window row, window column); tokens row-major inside a window.
  const at::Tensor win =
      grid.reshape({b, nh, ws, nw, ws, c}).permute({0, 1, 3, 2, 4, 5}).reshape({windows, n, c});
  // qkv features are laid out (q|k|v) × heads × head_dim.
  const at::Tensor qkv = at::linear(win, qkv_weight, qkv_bias)
                             .reshape({windows, n, 3, num_heads, hd})
                             .permute({2, 0, 3, 1, 4});
  const at::Tensor q = qkv[0] * std::pow(static_cast<double>(hd), -0.5);
  const at::Tensor attn = at::softmax(at::matmul(q, qkv[1].transpose(-2, -1)), -1);
  at::Tensor out = at::matmul(attn, qkv[2]).transpose(1, 2).reshape({windows, n, c});
  out = at::linear(out, proj_weight, proj_bias);

  out = out.reshape({b, nh, nw, ws, ws, c}).permute({0, 1, 3, 2, 4, 5}).reshape({b, hp, wp, c});
  if (pad_b > 0 || pad_r > 0) out = out.slice(1, 0, h).slice(2, 0, w);
  return out.reshape({b, h * w, c});
}

at::Tensor davit_channel_attention(const at::Tensor& x, const at::Tensor& qkv_weight,
                                   const at::Tensor& qkv_bias, const at::Tensor& proj_weight,
                                   const at::Tensor& proj_bias, int64_t groups) {
  if (x.dim() != 3)
    throw std::invalid_argument("davit_channel_attention: expected (B, N, C), got " +
                                tensor_shape_string(x.sizes()));
  const int64_t b = x.size(0), n = x.size(1), c = x.size(2);
  if (groups < 1 || c % groups != 0)
    throw std::invalid_argument("davit_channel_attention: channels " + std::to_string(c) +
                                " must split into " + std::to_string(groups) + " groups");
  const int64_t d = c / groups;
  const at::Tensor qkv =
      at::linear(x, qkv_weight, qkv_bias).reshape({b, n, 3, groups, d}).permute({2, 0, 3, 1, 4});
  // Scaled by the token count, not the head width: the dot products run over tokens here.
  const at::Tensor q = qkv[0] * std::pow(static_cast<double>(n), -0.5);
  const at::Tensor attn = at::softmax(at::matmul(q.transpose(-1, -2), qkv[1]), -1); // (B, G, d, d)
  const at::Tensor out =
      at::matmul(attn, qkv[2].transpose(-1, -2)).transpose(-1, -2); // (B, G, N, d)
  return at::linear(out.transpose(1, 2).reshape({b, n, c}), proj_weight, proj_bias);
}

at::Tensor davit_forward(const TensorMap& weights, const DaViTConfig& config,
                         const at::Tensor& pixels) {
  validate_vision(config);
  if (pixels.dim() != 4 || pixels.size(1) != config.in_channels)
    throw std::invalid_argument("davit_forward: expected pixels (B, " +
                                std::to_string(config.in_channels) + ", H, W), got " +
                                tensor_shape_string(pixels.sizes()));
  (void)davit_output_grid(config, pixels.size(2), pixels.size(3)); // clear error for tiny inputs
  check_weights(weights, vision_shapes(config), "davit_forward");

  at::Tensor x;
  int64_t h = pixels.size(2), w = pixels.size(3);
  for (size_t i = 0; i < config.dims.size(); ++i) {
    const std::string cp = conv_prefix(i);
    const bool pre = config.patch_prenorm[i];
    // ConvEmbed pre-normalises only token input; the image enters as a map, so a pre-norm set for
    // stage 0 is skipped, exactly as the reference does.
    const at::Tensor in =
        i == 0 ? pixels : tokens_to_map(pre ? layer_norm(x, weights, cp + ".norm") : x, h, w);
    const int64_t s = config.patch_stride[i], p = config.patch_padding[i];
    const at::Tensor map = at::conv2d(in, get(weights, cp + ".proj.weight"),
                                      get(weights, cp + ".proj.bias"), {s, s}, {p, p});
    h = map.size(2);
    w = map.size(3);
    x = map_to_tokens(map);
    if (!pre) x = layer_norm(x, weights, cp + ".norm");
    for (int64_t j = 0; j < config.depths[i]; ++j) {
      x = spatial_block(x, h, w, weights, block_prefix(i, j, "spatial_block"), config.heads[i],
                        config.window_size);
      x = channel_block(x, h, w, weights, block_prefix(i, j, "channel_block"), config.heads[i]);
    }
  }
  return x.contiguous();
}

at::Tensor image_tokens_project(const TensorMap& weights, const ImageProjectionConfig& config,
                                const at::Tensor& tokens, int64_t h, int64_t w) {
  validate_projection(config);
  if (tokens.dim() != 3 || h < 1 || w < 1 || tokens.size(1) != h * w)
    throw std::invalid_argument("image_tokens_project: expected (B, " + std::to_string(h) + "·" +
                                std::to_string(w) + ", C) tokens, got " +
                                tensor_shape_string(tokens.sizes()));
  if (h > config.max_pos_embeddings || w > config.max_pos_embeddings)
    throw std::invalid_argument("image_tokens_project: a " + std::to_string(h) + "x" +
                                std::to_string(w) + " grid exceeds the " +
                                std::to_string(config.max_pos_embeddings) +
                                "-entry position tables");
  const int64_t c = tokens.size(2);
  check_weights(weights, projection_shapes(c, config), "image_tokens_project");

  // Token (i, j) gets cat(column[j], row[i]): the column half comes first. The reference only
  // accepts square grids; the same formula covers h != w.
  const at::Tensor col = get(weights, "image_pos_embed.column_embeddings.weight").slice(0, 0, w);
  const at::Tensor row = get(weights, "image_pos_embed.row_embeddings.weight").slice(0, 0, h);
  const at::Tensor pos = at::cat({col.unsqueeze(0).expand({h, w, col.size(1)}),
                                  row.unsqueeze(1).expand({h, w, row.size(1)})},
                                 -1)
                             .reshape({h * w, c});
  // One frame (T = 1), so the temporal embedding is its row 0, added to every token.
  at::Tensor x = tokens + pos;
  x = x + get(weights, "visual_temporal_embed.pos_idx_to_embed").select(0, 0);
  // image_feature_source = [spatial_avg_pool, temporal_avg_pool]: the mean token, then all tokens
  // (the temporal mean over one frame is the frame itself).
  x = at::cat({x.mean(1, /*keepdim=*/true), x}, 1);
  x = at::matmul(x, get(weights, "image_projection"));
  return layer_norm(x, weights, "image_proj_norm");
}

} // namespace fedvlm
