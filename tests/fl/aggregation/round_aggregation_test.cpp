// tests/fl/aggregation/round_aggregation_test.cpp — every aggregation rule end to end on known matrices: what travels, what each client ends up with.
#include "fl/aggregation/aggregation_error.hpp"
#include "fl/aggregation/round_aggregation.hpp"
#include "model/lora.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace {

using namespace fedvlm;

const std::string kA = "head.lora_A", kB = "head.lora_B", kDelta = "head.lora_delta";

/// Client k's adapters: rank r, in = 3, out = 3; seeded so products differ between clients.
TensorMap client_adapters(int64_t rank, uint64_t seed) {
  at::manual_seed(seed);
  return {{kA, at::randn({rank, 3}, at::kFloat)}, {kB, at::randn({3, rank}, at::kFloat)}};
}

/// (α/r) B A + lora_delta, in float64: the weight change a client's adapters make (independent
/// of the library: plain matmuls).
at::Tensor effective(const TensorMap& m, double alpha) {
  const at::Tensor& A = m.at(kA);
  at::Tensor w = at::matmul(m.at(kB).to(at::kDouble), A.to(at::kDouble)) * (alpha / static_cast<double>(A.size(0)));
  if (m.count(kDelta)) w = w + m.at(kDelta).to(at::kDouble);
  return w;
}

double rel(const at::Tensor& ideal, const at::Tensor& got) {
  return (ideal - got).norm().item<double>() / ideal.norm().item<double>();
}

struct Round {
  TensorMap m0, m1;
  int64_t n0 = 30, n1 = 10; // sample weights 0.75 / 0.25
  double alpha = 8.0;
  std::vector<ClientContribution> updates() const { return {{0, n0, &m0}, {1, n1, &m1}}; }
  /// Σ p_k (α/r_k) B_k A_k, worked out here.
  at::Tensor ideal() const { return 0.75 * effective(m0, alpha) + 0.25 * effective(m1, alpha); }
  RoundRule rule(StrategyKind kind) const {
    RoundRule r;
    r.spec = strategy_spec(kind);
    r.lora_alpha = alpha;
    r.client_ranks = {static_cast<int>(m0.at(kA).size(0)), static_cast<int>(m1.at(kA).size(0))};
    return r;
  }
};

Round equal_ranks() { return {client_adapters(2, 1), client_adapters(2, 2)}; }
Round mixed_ranks() { return {client_adapters(1, 3), client_adapters(2, 4)}; }

/// What client `k` holds after applying its download.
TensorMap after(const Round& r, int k, const RoundAggregate& agg, StrategyKind kind) {
  TensorMap m = k == 0 ? r.m0 : r.m1;
  (void)apply_download(strategy_spec(kind), m, agg.download_for(k), /*restart_seed=*/99);
  return m;
}

TEST(RoundAggregation, FedItIsInexactOnRandomFactors) {
  const Round r = equal_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::flora), r.updates(), {});
  const TensorMap a0 = after(r, 0, agg, StrategyKind::flora);
  EXPECT_GT(rel(r.ideal(), effective(a0, r.alpha)), 1e-2);
  EXPECT_EQ(agg.bytes_for(0), (2 * 3 + 3 * 2) * 4); // A and B, float32
}

TEST(RoundAggregation, FedExLoRAMakesEveryClientsProductExact) {
  const Round r = equal_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::fedex_lora), r.updates(), {});
  for (int k = 0; k < 2; ++k) {
    const TensorMap a = after(r, k, agg, StrategyKind::fedex_lora);
    EXPECT_LT(rel(r.ideal(), effective(a, r.alpha)), 1e-6) << k;
    // Its factors are FedIT's averages; the rest is the residual in lora_delta.
    EXPECT_TRUE(at::allclose(a.at(kA), 0.75 * r.m0.at(kA) + 0.25 * r.m1.at(kA), 1e-6, 1e-6));
  }
  // Down: A, B and the dense 3 × 3 residual.
  EXPECT_EQ(agg.bytes_for(1), (2 * 3 + 3 * 2 + 3 * 3) * 4);
  // A second round adds its residual on top of the first: the global keeps the sum.
  const auto again = aggregate_round(r.rule(StrategyKind::fedex_lora), r.updates(), agg.global);
  EXPECT_TRUE(at::allclose(again.global.at(kDelta), 2 * agg.global.at(kDelta), 1e-6, 1e-6));
}

TEST(RoundAggregation, StackingIsExactWithHeterogeneousRanksAndRestartsTheAdapters) {
  const Round r = mixed_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::stacking), r.updates(), {});
  // Down: the stacked factors, rank 1 + 2 = 3: (3 × 3) + (3 × 3) floats.
  EXPECT_EQ(agg.bytes_for(0), (3 * 3 + 3 * 3) * 4);
  for (int k = 0; k < 2; ++k) {
    const TensorMap a = after(r, k, agg, StrategyKind::stacking);
    // Fresh adapters: B back to zero, A redrawn at the client's own rank.
    EXPECT_EQ(a.at(kB).abs().max().item<float>(), 0.0f) << k;
    EXPECT_EQ(a.at(kA).size(0), (k == 0 ? r.m0 : r.m1).at(kA).size(0));
    EXPECT_FALSE(at::equal(a.at(kA), (k == 0 ? r.m0 : r.m1).at(kA)));
    EXPECT_LT(rel(r.ideal(), a.at(kDelta).to(at::kDouble)), 1e-6) << k;
  }
}

TEST(RoundAggregation, FlexLoRAGivesEachClientTheBestApproximationAtItsRank) {
  const Round r = mixed_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::flexlora), r.updates(), {});
  // Eckart–Young: the rank-k error is the norm of the singular values beyond k.
  const at::Tensor s = at::linalg_svdvals(r.ideal());
  const double total = s.norm().item<double>();
  for (int k = 0; k < 2; ++k) {
    const TensorMap a = after(r, k, agg, StrategyKind::flexlora);
    const int64_t rank = (k == 0 ? r.m0 : r.m1).at(kA).size(0);
    ASSERT_EQ(a.at(kA).size(0), rank);
    const double want = s.slice(0, rank).norm().item<double>() / total;
    EXPECT_NEAR(rel(r.ideal(), effective(a, r.alpha)), want, 1e-5) << k;
    EXPECT_EQ(agg.bytes_for(k), rank * (3 + 3) * 4);
  }
}

TEST(RoundAggregation, HetLoRAPadsAveragesAndTruncates) {
  const Round r = mixed_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::hetlora), r.updates(), {});
  // Scales folded in (α/1 for client 0, α/2 for client 1), zero-padded to rank 2, averaged.
  const double s0 = r.alpha / 1, s1 = r.alpha / 2;
  const at::Tensor pad_A0 = at::cat({r.m0.at(kA), at::zeros({1, 3})}, 0);
  const at::Tensor pad_B0 = at::cat({r.m0.at(kB) * s0, at::zeros({3, 1})}, 1);
  const at::Tensor A = 0.75 * pad_A0 + 0.25 * r.m1.at(kA);
  const at::Tensor B = 0.75 * pad_B0 + 0.25 * r.m1.at(kB) * s1;
  const TensorMap a1 = after(r, 1, agg, StrategyKind::hetlora);
  EXPECT_TRUE(at::allclose(a1.at(kA), A, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(a1.at(kB), B / s1, 1e-5, 1e-6));
  const TensorMap a0 = after(r, 0, agg, StrategyKind::hetlora); // truncated to rank 1
  EXPECT_TRUE(at::allclose(a0.at(kA), A.slice(0, 0, 1), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(a0.at(kB), B.slice(1, 0, 1) / s0, 1e-5, 1e-6));
}

TEST(RoundAggregation, HetLoRAWithEqualRanksIsFedIt) {
  const Round r = equal_ranks();
  const auto het = aggregate_round(r.rule(StrategyKind::hetlora), r.updates(), {});
  const auto fedit = aggregate_round(r.rule(StrategyKind::flora), r.updates(), {});
  for (int k = 0; k < 2; ++k)
    for (const auto& name : {kA, kB})
      EXPECT_TRUE(at::allclose(het.download_for(k).at(name), fedit.download_for(k).at(name), 1e-5, 1e-6)) << name;
}

TEST(RoundAggregation, MeasuredErrorIsZeroForExactRulesAndPositiveForFedIt) {
  for (const auto& [kind, exact] : std::vector<std::pair<StrategyKind, bool>>{{StrategyKind::flora, false},
                                                                              {StrategyKind::fedex_lora, true},
                                                                              {StrategyKind::stacking, true},
                                                                              {StrategyKind::flexlora, false}}) {
    const Round r = kind == StrategyKind::stacking || kind == StrategyKind::flexlora ? mixed_ranks() : equal_ranks();
    const auto agg = aggregate_round(r.rule(kind), r.updates(), {});
    const auto m = measure_aggregation(strategy_spec(kind), {{0, 0.75, &r.m0}, {1, 0.25, &r.m1}}, agg, r.alpha);
    ASSERT_TRUE(m.measured) << to_string(kind);
    if (exact) EXPECT_LT(m.error, 1e-6) << to_string(kind);
    else EXPECT_GT(m.error, 1e-3) << to_string(kind);
    if (kind == StrategyKind::flexlora) {
      // Each client's own truncation error, weighted (W has rank 3; the clients' ranks are 1 and 2).
      const at::Tensor s = at::linalg_svdvals(r.ideal());
      const double total = s.norm().item<double>();
      const double want = 0.75 * s.slice(0, 1).norm().item<double>() / total + 0.25 * s.slice(0, 2).norm().item<double>() / total;
      EXPECT_NEAR(m.error, want, 1e-5);
    }
  }
}

TEST(RoundAggregation, PerClientRanksCappedByWhatTheRoundCanGive) {
  // Only the rank-1 client answered; the rank-2 client receives rank 1 in its leading block.
  Round r = mixed_ranks();
  const std::vector<ClientContribution> only0 = {{0, r.n0, &r.m0}};
  const auto agg = aggregate_round(r.rule(StrategyKind::hetlora), only0, {});
  TensorMap m1 = r.m1;
  EXPECT_FALSE(apply_download(strategy_spec(StrategyKind::hetlora), m1, agg.download_for(1), 0)); // no restart
  ASSERT_EQ(m1.at(kA).size(0), 2);
  EXPECT_TRUE(at::equal(m1.at(kA).slice(0, 0, 1), r.m0.at(kA)));
  EXPECT_TRUE(at::equal(m1.at(kA).slice(0, 1, 2), r.m1.at(kA).slice(0, 1, 2))); // kept: can still learn
  EXPECT_EQ(m1.at(kB).slice(1, 1, 2).abs().max().item<float>(), 0.0f);         // zeroed: adds nothing
  // So its product is client 0's, rescaled to its own rank: (α/2)·B'A' = (α/1)·B_0 A_0.
  EXPECT_LT(rel(effective(r.m0, r.alpha), effective(m1, r.alpha)), 1e-6);
}

TEST(RoundAggregation, UnknownDownloadsAndHalfStacksAreRefused) {
  TensorMap m = client_adapters(2, 5);
  const auto spec = strategy_spec(StrategyKind::stacking);
  try {
    (void)apply_download(spec, m, {{"head.lora_C", at::zeros({3, 3})}}, 0);
    FAIL() << "an unknown tensor was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("head.lora_C"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)apply_download(spec, m, {{"head.lora_stack_A", at::zeros({2, 3})}}, 0), std::invalid_argument);
  // A restart is reported, so the client drops its optimizer moments with the old adapters.
  const Round r = mixed_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::stacking), r.updates(), {});
  TensorMap m0 = r.m0;
  EXPECT_TRUE(apply_download(spec, m0, agg.download_for(0), 1));
  EXPECT_FALSE(apply_download(spec, m0, {}, 1)); // round 0: nothing downloaded, nothing restarted
}

// FlexLoRA's download is an SVD re-factorisation: the client is told to drop its optimizer
// moments (built for the old factors; carried over, 3 local epochs of SGD momentum diverged),
// while its adapters are not restarted: the product is the truncated average.
TEST(RoundAggregation, FlexLoraDownloadAsksForAFreshOptimizer) {
  const Round r = mixed_ranks();
  const auto agg = aggregate_round(r.rule(StrategyKind::flexlora), r.updates(), {});
  TensorMap m0 = r.m0;
  EXPECT_TRUE(apply_download(strategy_spec(StrategyKind::flexlora), m0, agg.download_for(0), 1));
  EXPECT_TRUE(at::equal(m0.at(kA), agg.download_for(0).at(kA))); // the download, not a restart
  EXPECT_FALSE(apply_download(strategy_spec(StrategyKind::flexlora), m0, {}, 1));
}

TEST(RoundAggregation, AnEqualRankRuleNamesTheModuleAndTheRules) {
  const Round r = mixed_ranks();
  try {
    (void)aggregate_round(r.rule(StrategyKind::fedex_lora), r.updates(), {});
    FAIL() << "mixed ranks were averaged";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("module 'head'"), std::string::npos) << what;
    EXPECT_NE(what.find("stacking, FlexLoRA and HetLoRA"), std::string::npos) << what;
  }
}

TEST(LoraDelta, ForwardAddsTheDenseCorrectionAndEachAdapterUsesItsOwnRank) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({4, 3}), w = at::randn({2, 3});
  const at::Tensor A = at::randn({1, 3}), B = at::randn({2, 1}), D = at::randn({2, 3});
  TensorMap ad = {{"l.lora_A", A}, {"l.lora_B", B}, {"l.lora_delta", D}};
  ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora.rank = 4; // the settings' rank is not this adapter's: its A has one row
  ctx.lora.alpha = 6.0;
  const at::Tensor y = lora_linear(x, w, at::Tensor(), "l", ctx);
  const at::Tensor want = at::matmul(x, (w + D).t()) + 6.0 * at::matmul(at::matmul(x, A.t()), B.t());
  EXPECT_TRUE(at::allclose(y, want, 1e-5, 1e-5));
}

TEST(LoraRestart, RedrawsAKeepsShapesZeroesBLeavesDelta) {
  TensorMap m = client_adapters(2, 7);
  m[kDelta] = at::ones({3, 3});
  const TensorMap before = m;
  lora_restart(m, 11);
  EXPECT_EQ(m.at(kA).sizes(), before.at(kA).sizes());
  EXPECT_FALSE(at::equal(m.at(kA), before.at(kA)));
  EXPECT_LE(m.at(kA).abs().max().item<float>(), 1.0f / std::sqrt(3.0f)); // Kaiming-uniform bound
  EXPECT_EQ(m.at(kB).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(at::equal(m.at(kDelta), before.at(kDelta)));
  TensorMap again = before;
  lora_restart(again, 11);
  EXPECT_TRUE(at::equal(again.at(kA), m.at(kA))); // deterministic in the seed
}

} // namespace
