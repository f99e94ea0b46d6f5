// tests/model/davit_test.cpp — DaViT and image projection: shapes, batch independence, attention vs naive, layout.
#include "model/davit.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

DaViTConfig tiny_vision() {
  DaViTConfig c;
  c.dims = {16, 32, 64, 128};
  c.heads = {1, 2, 4, 8};
  c.depths = {1, 1, 1, 1};
  c.window_size = 2;
  return c;
}

ImageProjectionConfig tiny_projection() {
  ImageProjectionConfig p;
  p.projection_dim = 32;
  p.max_pos_embeddings = 50;
  p.max_temporal_embeddings = 100;
  return p;
}

// normal·0.02 everywhere except LayerNorm scales (1), like a freshly initialised model.
TensorMap random_weights(const ShapeMap& shapes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  TensorMap w;
  for (const auto& [name, shape] : shapes) {
    if (ends_with(name, "norm.weight"))
      w[name] = at::ones(shape, at::kFloat);
    else
      w[name] = at::empty(shape, at::kFloat).normal_(0.0, 0.02, gen);
  }
  return w;
}

at::Tensor randn(at::IntArrayRef shape, uint64_t seed, double std = 1.0) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::empty(shape, at::kFloat).normal_(0.0, std, gen);
}

template <typename Fn> std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

TEST(DaViT, TinyForwardAndProjectionShapes) {
  const DaViTConfig vision = tiny_vision();
  const ImageProjectionConfig projection = tiny_projection();
  const TensorMap w = random_weights(davit_parameter_shapes(vision, projection), 1);
  const at::Tensor pixels = randn({2, 3, 64, 64}, 2);

  const at::Tensor tokens = davit_forward(w, vision, pixels);
  ASSERT_EQ(tokens.sizes(), at::IntArrayRef({2, 4, 128}));
  EXPECT_TRUE(at::isfinite(tokens).all().item<bool>());
  // Different images must give different tokens (guards against a degenerate, input-blind path).
  EXPECT_GT((tokens[0] - tokens[1]).abs().max().item<float>(), 1e-3);

  const auto [h, w_] = davit_output_grid(vision, 64, 64);
  EXPECT_EQ(h, 2);
  EXPECT_EQ(w_, 2);
  const at::Tensor projected = image_tokens_project(w, projection, tokens, h, w_);
  ASSERT_EQ(projected.sizes(), at::IntArrayRef({2, 5, 32}));
  EXPECT_TRUE(at::isfinite(projected).all().item<bool>());
}

TEST(DaViT, BatchRowsAreIndependent) {
  const DaViTConfig vision = tiny_vision();
  const ImageProjectionConfig projection = tiny_projection();
  const TensorMap w = random_weights(davit_parameter_shapes(vision, projection), 3);
  const at::Tensor pixels = randn({2, 3, 64, 64}, 4);

  const at::Tensor both =
      image_tokens_project(w, projection, davit_forward(w, vision, pixels), 2, 2);
  const at::Tensor alone =
      image_tokens_project(w, projection, davit_forward(w, vision, pixels.slice(0, 0, 1)), 2, 2);
  EXPECT_TRUE(at::allclose(both.slice(0, 0, 1), alone, 1e-5, 1e-5))
      << "max diff " << (both.slice(0, 0, 1) - alone).abs().max().item<float>();
}

TEST(DaViT, OutputGridFollowsStageConvolutions) {
  const auto [h, w] = davit_output_grid(DaViTConfig{}, 768, 768);
  EXPECT_EQ(h, 24); // 768 → 192 → 96 → 48 → 24; 576 tokens, 577 after the mean token
  EXPECT_EQ(w, 24);
  const auto [h2, w2] = davit_output_grid(DaViTConfig{}, 100, 60);
  EXPECT_EQ(h2, 4); // 100 → 25 → 13 → 7 → 4
  EXPECT_EQ(w2, 2); // 60 → 15 → 8 → 4 → 2
}

// Sum over the reference's modules for Florence-2-base (dims 128/256/512/1024, depths 1/1/9/1,
// mlp 4×, qkv bias, projection 768, pos tables 50, temporal 100):
//   one SpatialBlock or ChannelBlock at width C: 2 dw convs 2·(9C + C), 2 LayerNorms 2·2C,
//     qkv 3C² + 3C, proj C² + C, fc1 4C² + 4C, fc2 4C² + C  →  12C² + 33C; a (spatial, channel)
//     pair → 24C² + 66C:
//     C=128: 401,664   C=256: 1,589,760   C=512: 6,325,248 × 9 = 56,927,232   C=1024: 25,233,408
//     blocks: 84,152,064
//   ConvEmbeds (conv w + b, LayerNorm on the output for stage 0, on the input for 1–3):
//     128·3·49 + 128 + 2·128 = 19,200;  256·128·9 + 256 + 2·128 = 295,424;
//     512·256·9 + 512 + 2·256 = 1,180,672;  1024·512·9 + 1024 + 2·512 = 4,720,640  → 6,215,936
//   vision tower: 90,368,000 (no `norms` / `head`: the reference deletes them)
//   image_projection 1024·768 = 786,432; image_proj_norm 1,536; pos tables 2·50·512 = 51,200;
//   temporal buffer 100·1024 = 102,400  → 941,568
//   total 91,309,568 (91,207,168 trainable parameters + the 102,400-entry sinusoid buffer).
// With the BART-base-sized language model (≈140.26M) that is the published ≈0.23B.
TEST(DaViT, BaseParameterShapesMatchReferenceCount) {
  const ShapeMap shapes = davit_parameter_shapes(DaViTConfig{}, ImageProjectionConfig{});
  int64_t total = 0, vision = 0;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
    if (name.rfind("vision_tower.", 0) == 0) vision += n;
  }
  EXPECT_EQ(vision, 90368000);
  EXPECT_EQ(total, 91309568);
  // 4 convs × 4 tensors + 12 block pairs × 2 blocks × 16 tensors + 6 projection tensors.
  EXPECT_EQ(shapes.size(), 16u + 12u * 2u * 16u + 6u);

  const auto shape_of = [&](const std::string& name) {
    const auto it = shapes.find(name);
    return it == shapes.end() ? std::vector<int64_t>{} : it->second;
  };
  using V = std::vector<int64_t>;
  EXPECT_EQ(shape_of("vision_tower.convs.0.proj.weight"), (V{128, 3, 7, 7}));
  EXPECT_EQ(shape_of("vision_tower.convs.0.norm.weight"), (V{128}));
  EXPECT_EQ(shape_of("vision_tower.convs.1.proj.weight"), (V{256, 128, 3, 3}));
  EXPECT_EQ(shape_of("vision_tower.convs.1.norm.weight"), (V{128})); // pre-norm: input channels
  EXPECT_EQ(shape_of("vision_tower.blocks.2.8.spatial_block.window_attn.fn.qkv.weight"),
            (V{1536, 512}));
  EXPECT_EQ(shape_of("vision_tower.blocks.2.3.channel_block.channel_attn.fn.proj.bias"), (V{512}));
  EXPECT_EQ(shape_of("vision_tower.blocks.3.0.channel_block.conv1.fn.dw.weight"),
            (V{1024, 1, 3, 3}));
  EXPECT_EQ(shape_of("vision_tower.blocks.0.0.spatial_block.ffn.fn.net.fc1.weight"), (V{512, 128}));
  EXPECT_EQ(shape_of("vision_tower.blocks.0.0.spatial_block.ffn.fn.net.fc2.weight"), (V{128, 512}));
  EXPECT_EQ(shape_of("image_projection"), (V{1024, 768}));
  EXPECT_EQ(shape_of("image_proj_norm.bias"), (V{768}));
  EXPECT_EQ(shape_of("image_pos_embed.row_embeddings.weight"), (V{50, 512}));
  EXPECT_EQ(shape_of("image_pos_embed.column_embeddings.weight"), (V{50, 512}));
  EXPECT_EQ(shape_of("visual_temporal_embed.pos_idx_to_embed"), (V{100, 1024}));
  EXPECT_EQ(shapes.count("vision_tower.blocks.2.9.spatial_block.conv1.fn.dw.bias"), 0u);
  EXPECT_EQ(shapes.count("vision_tower.head.weight"), 0u);
  EXPECT_EQ(shapes.count("vision_tower.norms.weight"), 0u);
}

// Naive window attention: per image and window, gather the ws×ws tokens (zeros outside the
// grid), run each head as explicit matrices, write back the in-grid rows.
at::Tensor naive_window_attention(const at::Tensor& x, int64_t h, int64_t w,
                                  const at::Tensor& qkv_w, const at::Tensor& qkv_b,
                                  const at::Tensor& proj_w, const at::Tensor& proj_b, int64_t heads,
                                  int64_t ws) {
  const int64_t b = x.size(0), c = x.size(2), hd = c / heads;
  at::Tensor out = at::zeros_like(x);
  for (int64_t img = 0; img < b; ++img) {
    for (int64_t r0 = 0; r0 < h; r0 += ws) {
      for (int64_t c0 = 0; c0 < w; c0 += ws) {
        at::Tensor win = at::zeros({ws * ws, c});
        for (int64_t dr = 0; dr < ws; ++dr)
          for (int64_t dc = 0; dc < ws; ++dc)
            if (r0 + dr < h && c0 + dc < w) win[dr * ws + dc] = x[img][(r0 + dr) * w + (c0 + dc)];
        const at::Tensor q = at::mm(win, qkv_w.slice(0, 0, c).t()) + qkv_b.slice(0, 0, c);
        const at::Tensor k = at::mm(win, qkv_w.slice(0, c, 2 * c).t()) + qkv_b.slice(0, c, 2 * c);
        const at::Tensor v =
            at::mm(win, qkv_w.slice(0, 2 * c, 3 * c).t()) + qkv_b.slice(0, 2 * c, 3 * c);
        std::vector<at::Tensor> per_head;
        for (int64_t hh = 0; hh < heads; ++hh) {
          const at::Tensor qh = q.slice(1, hh * hd, (hh + 1) * hd);
          const at::Tensor kh = k.slice(1, hh * hd, (hh + 1) * hd);
          const at::Tensor vh = v.slice(1, hh * hd, (hh + 1) * hd);
          const at::Tensor a =
              at::softmax(at::mm(qh, kh.t()) / std::sqrt(static_cast<double>(hd)), 1);
          per_head.push_back(at::mm(a, vh));
        }
        const at::Tensor o = at::mm(at::cat(per_head, 1), proj_w.t()) + proj_b;
        for (int64_t dr = 0; dr < ws; ++dr)
          for (int64_t dc = 0; dc < ws; ++dc)
            if (r0 + dr < h && c0 + dc < w) out[img][(r0 + dr) * w + (c0 + dc)] = o[dr * ws + dc];
      }
    }
  }
  return out;
}

TEST(DaViT, WindowAttentionMatchesNaivePerWindowAttention) {
  const int64_t c = 8, heads = 2;
  const at::Tensor qkv_w = randn({3 * c, c}, 10, 0.5), qkv_b = randn({3 * c}, 11, 0.1);
  const at::Tensor proj_w = randn({c, c}, 12, 0.5), proj_b = randn({c}, 13, 0.1);
  // 4×6 tiles exactly; 5×3 needs padding (bottom and right) and a crop.
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{4, 6}, {5, 3}}) {
    const at::Tensor x = randn({2, h * w, c}, 14 + h);
    const at::Tensor got = davit_window_attention(x, h, w, qkv_w, qkv_b, proj_w, proj_b, heads, 2);
    const at::Tensor want = naive_window_attention(x, h, w, qkv_w, qkv_b, proj_w, proj_b, heads, 2);
    ASSERT_EQ(got.sizes(), x.sizes());
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5))
        << h << "x" << w << ": max diff " << (got - want).abs().max().item<float>();
  }
  // A window covering the whole grid is global attention: a token's output depends on far tokens.
  const at::Tensor x = randn({1, 16, c}, 20);
  at::Tensor moved = x.clone();
  moved[0][15] += 1.0;
  const at::Tensor a = davit_window_attention(x, 4, 4, qkv_w, qkv_b, proj_w, proj_b, heads, 2);
  const at::Tensor b = davit_window_attention(moved, 4, 4, qkv_w, qkv_b, proj_w, proj_b, heads, 2);
  EXPECT_TRUE(at::equal(a[0][0], b[0][0])) << "token 0 must not see a token in another 2x2 window";
  EXPECT_FALSE(at::equal(a[0][10], b[0][10])) << "token 10 shares token 15's window";
}

TEST(DaViT, ChannelAttentionMatchesNaiveFormula) {
  const int64_t b = 2, n = 6, c = 8, groups = 2, d = c / groups;
  const at::Tensor qkv_w = randn({3 * c, c}, 30, 0.5), qkv_b = randn({3 * c}, 31, 0.1);
  const at::Tensor proj_w = randn({c, c}, 32, 0.5), proj_b = randn({c}, 33, 0.1);
  const at::Tensor x = randn({b, n, c}, 34);
  const at::Tensor got = davit_channel_attention(x, qkv_w, qkv_b, proj_w, proj_b, groups);

  const at::Tensor qkv = (at::matmul(x, qkv_w.t()) + qkv_b).to(at::kDouble);
  at::Tensor mixed = at::zeros({b, n, c}, at::kDouble);
  for (int64_t img = 0; img < b; ++img) {
    for (int64_t g = 0; g < groups; ++g) {
      // A[i][j] = softmax_j( Σ_t q[t][i] k[t][j] / √N ); out[t][i] = Σ_j A[i][j] v[t][j]
      const auto q = qkv[img].slice(1, g * d, (g + 1) * d);
      const auto k = qkv[img].slice(1, c + g * d, c + (g + 1) * d);
      const auto v = qkv[img].slice(1, 2 * c + g * d, 2 * c + (g + 1) * d);
      for (int64_t i = 0; i < d; ++i) {
        std::vector<double> logits(d);
        double top = -1e300;
        for (int64_t j = 0; j < d; ++j) {
          double s = 0;
          for (int64_t t = 0; t < n; ++t) s += q[t][i].item<double>() * k[t][j].item<double>();
          logits[j] = s / std::sqrt(static_cast<double>(n));
          top = std::max(top, logits[j]);
        }
        double z = 0;
        for (double& l : logits) z += (l = std::exp(l - top));
        for (int64_t t = 0; t < n; ++t) {
          double o = 0;
          for (int64_t j = 0; j < d; ++j) o += logits[j] / z * v[t][j].item<double>();
          mixed[img][t][g * d + i] = o;
        }
      }
    }
  }
  const at::Tensor want =
      (at::matmul(mixed, proj_w.to(at::kDouble).t()) + proj_b.to(at::kDouble)).to(at::kFloat);
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5))
      << "max diff " << (got - want).abs().max().item<float>();
}

TEST(DaViT, ProjectionMatchesNaiveFormula) {
  // Odd C checks the uneven split: column half ceil(C/2) first, then row half floor(C/2).
  const int64_t c = 5, h = 2, w = 3;
  ImageProjectionConfig p;
  p.projection_dim = 4;
  p.max_pos_embeddings = 7;
  p.max_temporal_embeddings = 3;
  DaViTConfig v;
  v.dims = {c};
  v.heads = {1};
  v.depths = {0};
  v.patch_size = {1};
  v.patch_stride = {1};
  v.patch_padding = {0};
  v.patch_prenorm = {false};
  ShapeMap shapes = davit_parameter_shapes(v, p);
  TensorMap weights;
  uint64_t seed = 40;
  for (const auto& [name, shape] : shapes) weights[name] = randn(shape, seed++);
  const at::Tensor tokens = randn({2, h * w, c}, 50);
  const at::Tensor got = image_tokens_project(weights, p, tokens, h, w);
  ASSERT_EQ(got.sizes(), at::IntArrayRef({2, 1 + h * w, 4}));

  const at::Tensor& col = weights.at("image_pos_embed.column_embeddings.weight"); // (7, 3)
  const at::Tensor& row = weights.at("image_pos_embed.row_embeddings.weight");    // (7, 2)
  const at::Tensor t0 = weights.at("visual_temporal_embed.pos_idx_to_embed")[0];
  for (int64_t img = 0; img < 2; ++img) {
    std::vector<at::Tensor> seq;
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        seq.push_back(tokens[img][i * w + j] + at::cat({col[j], row[i]}) + t0);
    at::Tensor all = at::stack(seq);
    all = at::cat({all.mean(0, true), all});
    at::Tensor y = at::mm(all, weights.at("image_projection"));
    const at::Tensor mu = y.mean(1, true);
    const at::Tensor var = (y - mu).pow(2).mean(1, true);
    y = (y - mu) / at::sqrt(var + 1e-5) * weights.at("image_proj_norm.weight") +
        weights.at("image_proj_norm.bias");
    EXPECT_TRUE(at::allclose(got[img], y, 1e-4, 1e-5)) << "image " << img;
  }
  EXPECT_THROW((void)image_tokens_project(weights, p, randn({1, 8, c}, 51), 8, 1),
               std::invalid_argument); // 8 rows > 7-entry tables
}

TEST(DaViT, MissingOrMisShapedWeightNamesTheTensor) {
  const DaViTConfig vision = tiny_vision();
  const ImageProjectionConfig projection = tiny_projection();
  const TensorMap full = random_weights(davit_parameter_shapes(vision, projection), 5);
  const at::Tensor pixels = randn({1, 3, 64, 64}, 6);

  const std::string gone = "vision_tower.blocks.2.0.channel_block.channel_attn.fn.proj.bias";
  TensorMap w = full;
  ASSERT_EQ(w.erase(gone), 1u);
  std::string msg = error_of([&] { (void)davit_forward(w, vision, pixels); });
  EXPECT_NE(msg.find("missing weight '" + gone + "'"), std::string::npos) << msg;
  EXPECT_THROW((void)davit_forward(w, vision, pixels), std::runtime_error);

  w = full;
  const std::string bent = "vision_tower.convs.1.norm.weight";
  w[bent] = at::ones({32}); // post-norm width instead of the pre-norm's 16 input channels
  msg = error_of([&] { (void)davit_forward(w, vision, pixels); });
  EXPECT_NE(msg.find(bent), std::string::npos) << msg;
  EXPECT_NE(msg.find("[32]"), std::string::npos) << msg;

  w = full;
  w.erase("image_pos_embed.row_embeddings.weight");
  const at::Tensor tokens = randn({1, 4, 128}, 7);
  msg = error_of([&] { (void)image_tokens_project(w, projection, tokens, 2, 2); });
  EXPECT_NE(msg.find("image_pos_embed.row_embeddings.weight"), std::string::npos) << msg;
}

TEST(DaViT, RejectsInconsistentConfigAndInput) {
  DaViTConfig bad = tiny_vision();
  bad.heads = {1, 2, 4};
  EXPECT_THROW((void)davit_parameter_shapes(bad, tiny_projection()), std::invalid_argument);
  bad = tiny_vision();
  bad.heads = {3, 2, 4, 8}; // 16 channels do not split into 3 heads
  EXPECT_THROW((void)davit_parameter_shapes(bad, tiny_projection()), std::invalid_argument);

  const TensorMap w = random_weights(davit_parameter_shapes(tiny_vision(), tiny_projection()), 8);
  EXPECT_THROW((void)davit_forward(w, tiny_vision(), randn({1, 1, 64, 64}, 9)),
               std::invalid_argument);
  EXPECT_THROW((void)image_tokens_project(w, tiny_projection(), randn({1, 5, 128}, 9), 2, 2),
               std::invalid_argument);
}

} // namespace
} // namespace fedvlm
