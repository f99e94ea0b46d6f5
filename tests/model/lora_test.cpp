// tests/model/lora_test.cpp — LoRA init, forward (Linear and 1×1 conv), merging, dropout and gradients.
#include "model/lora.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Inputs for the forward tests come from a fixed generator so a failure reproduces exactly.
at::Tensor randn(at::IntArrayRef sizes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes, gen, at::kFloat);
}

fedvlm::LoraSettings settings(int64_t rank, double alpha, double dropout = 0.0) {
  fedvlm::LoraSettings s;
  s.rank = rank;
  s.alpha = alpha;
  s.dropout = dropout;
  return s;
}

const std::map<std::string, fedvlm::AdaptableLayer> kTargets = {
    {"classifier.0", {16, 25}}, // out 16, in 25: bound 1/5
    {"classifier.3", {10, 16}}, // out 10, in 16: bound 1/4
};

TEST(LoraInit, BIsZeroAndAIsKaimingUniformBounded) {
  const fedvlm::TensorMap ad = fedvlm::lora_init(kTargets, settings(4, 8.0), 7);
  ASSERT_EQ(ad.size(), 4u);
  for (const auto& [layer, shape] : kTargets) {
    const at::Tensor& a = ad.at(layer + fedvlm::kLoraA);
    const at::Tensor& b = ad.at(layer + fedvlm::kLoraB);
    EXPECT_EQ(a.sizes(), (std::vector<int64_t>{4, shape.in_features})) << layer;
    EXPECT_EQ(b.sizes(), (std::vector<int64_t>{shape.out_features, 4})) << layer;
    EXPECT_EQ(a.scalar_type(), at::kFloat);
    EXPECT_EQ(b.scalar_type(), at::kFloat);
    // B = 0 is what makes an untrained adapter a no-op.
    EXPECT_TRUE(at::equal(b, at::zeros_like(b))) << layer;
    const double bound = 1.0 / std::sqrt(static_cast<double>(shape.in_features));
    const double max_abs = a.abs().max().item<double>();
    EXPECT_LE(max_abs, bound + 1e-7) << layer;
    // A must actually be random: uniform over [-bound, bound] spreads close to the bound.
    EXPECT_GT(max_abs, 0.5 * bound) << layer;
    EXPECT_GT(a.ne(0).sum().item<int64_t>(), a.numel() / 2) << layer;
  }
  // Two layers must not receive the same draw (the generator advances between layers).
  EXPECT_FALSE(at::equal(ad.at("classifier.0.lora_A").flatten().slice(0, 0, 40),
                         ad.at("classifier.3.lora_A").flatten().slice(0, 0, 40)));
}

TEST(LoraInit, DeterministicPerSeedDifferentAcrossSeeds) {
  const auto a1 = fedvlm::lora_init(kTargets, settings(4, 8.0), 123);
  const auto a2 = fedvlm::lora_init(kTargets, settings(4, 8.0), 123);
  const auto a3 = fedvlm::lora_init(kTargets, settings(4, 8.0), 124);
  for (const auto& [name, t] : a1) {
    EXPECT_TRUE(at::equal(t, a2.at(name))) << name;
  }
  EXPECT_FALSE(at::equal(a1.at("classifier.0.lora_A"), a3.at("classifier.0.lora_A")));
  EXPECT_FALSE(at::equal(a1.at("classifier.3.lora_A"), a3.at("classifier.3.lora_A")));
}

TEST(LoraInit, RankAboveLayerDimensionsThrowsNamingLayer) {
  const std::map<std::string, fedvlm::AdaptableLayer> targets = {{"features.big", {64, 64}},
                                                                 {"features.narrow", {3, 64}}};
  try {
    (void)fedvlm::lora_init(targets, settings(4, 8.0), 1);
    FAIL() << "rank 4 > out_features 3 must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("features.narrow"), std::string::npos) << e.what();
  }
  // rank == min(in, out) is still allowed.
  EXPECT_NO_THROW((void)fedvlm::lora_init({{"features.narrow", {3, 64}}}, settings(3, 8.0), 1));
  EXPECT_THROW((void)fedvlm::lora_init({{"x", {8, 2}}}, settings(3, 8.0), 1),
               std::invalid_argument);
}

TEST(LoraLinear, ZeroBIsExactlyTheBaseLayer) {
  const at::Tensor x = randn({5, 12}, 1);
  const at::Tensor w = randn({7, 12}, 2);
  const at::Tensor b = randn({7}, 3);
  const fedvlm::TensorMap ad = fedvlm::lora_init({{"fc", {7, 12}}}, settings(3, 6.0), 4);
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = settings(3, 6.0);
  EXPECT_TRUE(at::equal(fedvlm::lora_linear(x, w, b, "fc", ctx), at::linear(x, w, b)));
  // No adapters at all, and adapters for another layer, are the base layer too.
  fedvlm::ForwardContext plain;
  EXPECT_TRUE(at::equal(fedvlm::lora_linear(x, w, b, "fc", plain), at::linear(x, w, b)));
  EXPECT_TRUE(at::equal(fedvlm::lora_linear(x, w, b, "other", ctx), at::linear(x, w, b)));
}

TEST(LoraLinear, RandomAdaptersMatchTheFormula) {
  const at::Tensor x = randn({6, 10}, 11);
  const at::Tensor w = randn({4, 10}, 12);
  const at::Tensor b = randn({4}, 13);
  fedvlm::TensorMap ad = {{"fc.lora_A", randn({2, 10}, 14)}, {"fc.lora_B", randn({4, 2}, 15)}};
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = settings(2, 5.0); // scale 2.5, not 1, so a missing scale factor shows
  const at::Tensor expected =
      at::matmul(x, w.t()) + b + 2.5 * at::matmul(at::matmul(x, ad.at("fc.lora_A").t()), ad.at("fc.lora_B").t());
  const at::Tensor got = fedvlm::lora_linear(x, w, b, "fc", ctx);
  EXPECT_TRUE(at::allclose(got, expected, 0.0, 1e-5)) << (got - expected).abs().max();
  // Undefined bias and a leading batch dimension (…, in) are supported.
  const at::Tensor x3 = x.reshape({2, 3, 10});
  const at::Tensor got3 = fedvlm::lora_linear(x3, w, at::Tensor(), "fc", ctx);
  EXPECT_TRUE(at::allclose(got3.reshape({6, 4}), expected - b, 0.0, 1e-5));
}

TEST(LoraMerge, MergedLinearMatchesAdapterPath) {
  const at::Tensor x = randn({8, 9}, 21);
  const at::Tensor w = randn({5, 9}, 22);
  const at::Tensor b = randn({5}, 23);
  const at::Tensor a = randn({3, 9}, 24);
  const at::Tensor bb = randn({5, 3}, 25);
  fedvlm::TensorMap ad = {{"l.lora_A", a}, {"l.lora_B", bb}};
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = settings(3, 4.5);
  const at::Tensor merged = fedvlm::lora_merge(w, a, bb, ctx.lora.scale());
  EXPECT_EQ(merged.sizes(), w.sizes());
  const at::Tensor y_merged = at::linear(x, merged, b);
  const at::Tensor y_lora = fedvlm::lora_linear(x, w, b, "l", ctx);
  EXPECT_TRUE(at::allclose(y_merged, y_lora, 0.0, 1e-5)) << (y_merged - y_lora).abs().max();
  // The merge must not write the base weight.
  EXPECT_TRUE(at::equal(w, randn({5, 9}, 22)));
}

TEST(LoraMerge, MergedConv1x1MatchesAdapterPath) {
  const at::Tensor x = randn({2, 6, 3, 4}, 31); // N, C_in, H, W
  const at::Tensor w = randn({5, 6, 1, 1}, 32);
  const at::Tensor b = randn({5}, 33);
  const at::Tensor a = randn({2, 6}, 34);
  const at::Tensor bb = randn({5, 2}, 35);
  fedvlm::TensorMap ad = {{"conv.lora_A", a}, {"conv.lora_B", bb}};
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = settings(2, 3.0);
  const at::Tensor merged = fedvlm::lora_merge(w, a, bb, ctx.lora.scale());
  EXPECT_EQ(merged.sizes(), w.sizes());
  const at::Tensor y_merged = at::conv2d(x, merged, b);
  const at::Tensor y_lora = fedvlm::lora_conv1x1(x, w, b, "conv", ctx);
  ASSERT_EQ(y_lora.sizes(), (std::vector<int64_t>{2, 5, 3, 4}));
  EXPECT_TRUE(at::allclose(y_merged, y_lora, 0.0, 1e-5)) << (y_merged - y_lora).abs().max();
  // A 4-D 1×1 weight through lora_linear on (N, C) must agree with the conv on 1×1 images.
  const at::Tensor x1 = randn({4, 6}, 36);
  const at::Tensor y_lin = fedvlm::lora_linear(x1, w, b, "conv", ctx);
  const at::Tensor y_conv = fedvlm::lora_conv1x1(x1.reshape({4, 6, 1, 1}), w, b, "conv", ctx);
  EXPECT_TRUE(at::allclose(y_lin, y_conv.reshape({4, 5}), 0.0, 1e-5));
}

TEST(LoraDropout, InactiveOrZeroPIsIdentity) {
  const at::Tensor x = randn({50, 20}, 41);
  fedvlm::ForwardContext ctx; // dropout_active defaults to false: evaluation
  EXPECT_TRUE(at::equal(fedvlm::dropout_with(x, 0.5, ctx), x));
  ctx.dropout_active = true;
  EXPECT_TRUE(at::equal(fedvlm::dropout_with(x, 0.0, ctx), x));
}

TEST(LoraDropout, ActiveDropsAndRescales) {
  const at::Tensor x = at::ones({100, 100});
  fedvlm::ForwardContext ctx;
  ctx.dropout_active = true;
  ctx.generator = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor y = fedvlm::dropout_with(x, 0.25, ctx);
  // Survivors are scaled by 1/(1-p) so the expectation is unchanged; the rest are zero.
  const at::Tensor kept = y.ne(0);
  EXPECT_TRUE(at::allclose(y.masked_select(kept), at::full({}, 1.0 / 0.75), 0.0, 1e-6));
  const double frac_dropped = 1.0 - kept.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(frac_dropped, 0.25, 0.03); // 10,000 Bernoulli draws: σ ≈ 0.004
}

TEST(LoraDropout, SameSeedSameMaskDifferentSeedDifferentMask) {
  const at::Tensor x = randn({40, 30}, 51);
  auto run = [&](uint64_t seed) {
    fedvlm::ForwardContext ctx;
    ctx.dropout_active = true;
    ctx.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    return fedvlm::dropout_with(x, 0.5, ctx);
  };
  EXPECT_TRUE(at::equal(run(9), run(9)));
  EXPECT_FALSE(at::equal(run(9).ne(0), run(10).ne(0)));
  // The LoRA path of lora_linear uses the same seeded dropout: reproducible per generator.
  fedvlm::TensorMap ad = {{"fc.lora_A", randn({2, 30}, 52)}, {"fc.lora_B", randn({3, 2}, 53)}};
  const at::Tensor w = randn({3, 30}, 54);
  auto fwd = [&](uint64_t seed) {
    fedvlm::ForwardContext ctx;
    ctx.adapters = &ad;
    ctx.lora = settings(2, 2.0, 0.5);
    ctx.dropout_active = true;
    ctx.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    return fedvlm::lora_linear(x, w, at::Tensor(), "fc", ctx);
  };
  EXPECT_TRUE(at::equal(fwd(3), fwd(3)));
  EXPECT_FALSE(at::equal(fwd(3), fwd(4)));
}

TEST(LoraLayers, ListsEachLayerOnce) {
  const at::Tensor t = at::zeros({1});
  const fedvlm::TensorMap ad = {{"b.lora_A", t},      {"b.lora_B", t},     {"a.x.lora_A", t},
                                {"a.x.lora_B", t},    {"only_b.lora_B", t}, {"weight", t},
                                {".lora_A", t}}; // bare suffix: no layer name
  const std::vector<std::string> expected = {"a.x", "b", "only_b"};
  EXPECT_EQ(fedvlm::lora_layers(ad), expected);
  EXPECT_TRUE(fedvlm::lora_layers({}).empty());
}

TEST(LoraGrad, FlowsToAdaptersNotToFrozenWeight) {
  const at::Tensor x = randn({6, 5}, 61);
  const at::Tensor w = randn({4, 5}, 62); // frozen: requires_grad stays false
  const at::Tensor b = randn({4}, 63);
  fedvlm::TensorMap ad = {{"fc.lora_A", randn({2, 5}, 64).requires_grad_(true)},
                          {"fc.lora_B", randn({4, 2}, 65).requires_grad_(true)}};
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = settings(2, 3.0); // scale 1.5
  fedvlm::lora_linear(x, w, b, "fc", ctx).sum().backward();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  const at::Tensor& a = ad.at("fc.lora_A");
  const at::Tensor& bb = ad.at("fc.lora_B");
  ASSERT_TRUE(a.grad().defined());
  ASSERT_TRUE(bb.grad().defined());
  // L = Σ scale·(x Aᵀ) Bᵀ (+ terms without A, B):
  //   dL/dB = scale · 1_out ⊗ Σ_n (x Aᵀ)_n,   dL/dA = scale · (Σ_o B_o)ᵀ ⊗ Σ_n x_n.
  at::NoGradGuard no_grad;
  const at::Tensor h_sum = at::matmul(x, a.t()).sum(0);          // (r)
  const at::Tensor grad_b = 1.5 * at::ones({4, 1}) * h_sum.unsqueeze(0);
  const at::Tensor grad_a = 1.5 * bb.sum(0).unsqueeze(1) * x.sum(0).unsqueeze(0);
  EXPECT_TRUE(at::allclose(bb.grad(), grad_b, 0.0, 1e-5)) << bb.grad() << grad_b;
  EXPECT_TRUE(at::allclose(a.grad(), grad_a, 0.0, 1e-5)) << a.grad() << grad_a;
}

} // namespace
