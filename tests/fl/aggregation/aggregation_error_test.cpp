// tests/fl/aggregation/aggregation_error_test.cpp — the per-round aggregation error / client drift of each strategy, against products worked out here.
#include "fl/aggregation/aggregation_error.hpp"
#include "fl/privacy/privacy_budget.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace fedvlm;

const std::string kA = "head.lora_A", kB = "head.lora_B";

TensorMap adapters(const at::Tensor& A, const at::Tensor& B) { return {{kA, A}, {kB, B}}; }

/// A round whose every client downloads `sent` (the averaging rules). Rank 1 and alpha 1: scale 1.
RoundAggregate everyone_gets(const TensorMap& sent) {
  RoundAggregate r;
  r.broadcast = r.global = sent;
  return r;
}
constexpr double kAlpha = 1.0;

double rel(const at::Tensor& ideal, const at::Tensor& got) {
  return (ideal - got).norm().item<double>() / ideal.norm().item<double>();
}

struct TwoClients {
  // r = 1, in = 2, out = 2; weights 0.25 / 0.75.
  at::Tensor A0 = at::tensor({1.0, 2.0}, at::kDouble).reshape({1, 2});
  at::Tensor B0 = at::tensor({1.0, 0.0}, at::kDouble).reshape({2, 1});
  at::Tensor A1 = at::tensor({0.0, 1.0}, at::kDouble).reshape({1, 2});
  at::Tensor B1 = at::tensor({2.0, 1.0}, at::kDouble).reshape({2, 1});
  TensorMap m0 = adapters(A0, B0), m1 = adapters(A1, B1);
  std::vector<TrainedClient> clients() const { return {{0, 0.25, &m0}, {1, 0.75, &m1}}; }
  at::Tensor ideal() const { return 0.25 * at::matmul(B0, A0) + 0.75 * at::matmul(B1, A1); }
  at::Tensor mean_A() const { return 0.25 * A0 + 0.75 * A1; }
  at::Tensor mean_B() const { return 0.25 * B0 + 0.75 * B1; }
};

TEST(AggregationError, FedItIsMeasuredAgainstTheMeanOfProducts) {
  TwoClients t;
  const TensorMap global = {{kA, t.mean_A()}, {kB, t.mean_B()}};
  const auto m = measure_aggregation(strategy_spec(StrategyKind::flora), t.clients(), everyone_gets(global), kAlpha);
  ASSERT_TRUE(m.measured);
  ASSERT_EQ(m.error_by_layer.size(), 1u);
  // ideal = [[0.25, 2], [0, 0.75]]; mean B · mean A = [1.75, 0.75]ᵀ [0.25, 1.25].
  const double want = rel(t.ideal(), at::matmul(t.mean_B(), t.mean_A()));
  EXPECT_GT(want, 0.1);
  EXPECT_NEAR(m.error_by_layer.at("head"), want, 1e-12);
  EXPECT_NEAR(m.error, want, 1e-12);
  EXPECT_TRUE(m.drift_by_client.empty());
}

TEST(AggregationError, FfaLoraWithOneFrozenAIsExact) {
  TwoClients t;
  t.m1[kA] = t.A0; // both clients hold the shared frozen A
  const TensorMap global = {{kB, t.mean_B()}};
  const auto m = measure_aggregation(strategy_spec(StrategyKind::ffa_lora), t.clients(), everyone_gets(global), kAlpha);
  ASSERT_TRUE(m.measured);
  EXPECT_NEAR(m.error, 0.0, 1e-12);
}

TEST(AggregationError, PLoRAReportsEachClientsDrift) {
  TwoClients t;
  const TensorMap global = {{kB, t.mean_B()}};
  const auto m = measure_aggregation(strategy_spec(StrategyKind::plora), t.clients(), everyone_gets(global), kAlpha);
  ASSERT_TRUE(m.measured);
  EXPECT_TRUE(std::isnan(m.error));
  ASSERT_EQ(m.drift_by_client.size(), 2u);
  // Client k keeps A_k and takes mean B.
  EXPECT_NEAR(m.drift_by_client.at(0), rel(at::matmul(t.B0, t.A0), at::matmul(t.mean_B(), t.A0)), 1e-12);
  EXPECT_NEAR(m.drift_by_client.at(1), rel(at::matmul(t.B1, t.A1), at::matmul(t.mean_B(), t.A1)), 1e-12);
}

TEST(AggregationError, FedSaLoRAKeepsBAndTakesTheMeanA) {
  TwoClients t;
  const TensorMap global = {{kA, t.mean_A()}};
  const auto m = measure_aggregation(strategy_spec(StrategyKind::fedsa_lora), t.clients(), everyone_gets(global), kAlpha);
  EXPECT_NEAR(m.drift_by_client.at(1), rel(at::matmul(t.B1, t.A1), at::matmul(t.B1, t.mean_A())), 1e-12);
}

TEST(AggregationError, NothingSharedNothingMeasured) {
  TwoClients t;
  const auto m = measure_aggregation(strategy_spec(StrategyKind::local), t.clients(), RoundAggregate{}, kAlpha);
  EXPECT_FALSE(m.measured);
  EXPECT_TRUE(std::isnan(m.error));
}

TEST(PrivacyBudget, SamplingRateAndBudget) {
  FederationSettings f;
  f.clients = 40;
  f.clients_per_round = 10;
  f.rounds = 200;
  EXPECT_DOUBLE_EQ(client_sampling_rate(f), 0.25);
  f.clients_per_round = 0;
  EXPECT_DOUBLE_EQ(client_sampling_rate(f), 1.0);
  f.clients_per_round = 4;
  PrivacySettings p;
  EXPECT_TRUE(std::isnan(epsilon_after_rounds(p, f, 3))); // no DP: no epsilon
  p.clip_norm = 1.0;
  p.noise_multiplier = 1.0;
  EXPECT_EQ(rounds_within_budget(p, f), f.rounds); // no target: every round
  const double eps10 = epsilon_after_rounds(p, f, 10);
  p.target_epsilon = eps10 * (1 + 1e-9);
  EXPECT_EQ(rounds_within_budget(p, f), 10);
  p.target_epsilon = eps10 * (1 - 1e-9);
  EXPECT_EQ(rounds_within_budget(p, f), 9);
  EXPECT_LT(epsilon_after_rounds(p, f, 1), epsilon_after_rounds(p, f, 2));
}

} // namespace
