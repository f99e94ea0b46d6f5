// tests/fl/federation/async_federation_test.cpp — FedBuff's pieces on their own: staleness weights, virtual durations, event order, the server step.
#include "fl/federation/async_federation.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace fedvlm;

TEST(AsyncStaleness, RulesWeighStaleUpdates) {
  FederationSettings f;
  EXPECT_DOUBLE_EQ(staleness_weight(f, 0), 1.0); // inverse_sqrt is the default
  EXPECT_DOUBLE_EQ(staleness_weight(f, 3), 0.5);
  f.staleness = StalenessRule::constant;
  EXPECT_DOUBLE_EQ(staleness_weight(f, 7), 1.0);
  f.staleness = StalenessRule::polynomial;
  f.staleness_exponent = 2;
  EXPECT_DOUBLE_EQ(staleness_weight(f, 1), 0.25);
  EXPECT_DOUBLE_EQ(staleness_weight(f, 0), 1.0);
}

TEST(AsyncBuffer, DefaultIsHalfTheClients) {
  FederationSettings f;
  f.clients = 9;
  EXPECT_EQ(effective_buffer_size(f), 4);
  f.clients = 1;
  EXPECT_EQ(effective_buffer_size(f), 1);
  f.buffer_size = 3;
  EXPECT_EQ(effective_buffer_size(f), 3);
}

TEST(AsyncClock, DurationScalesWithDataEpochsAndSpeed) {
  FederationSettings f;
  f.client_seconds = 2.0;
  const ClientClock clock(f, NetworkSettings{}, /*local_epochs=*/3, FaultSettings{}, /*seed=*/1, {10, 30});
  // Mean data 20: client 0 has half of it, client 1 one and a half.
  EXPECT_DOUBLE_EQ(clock.compute_seconds(0, 1), 2.0 * 3 * 0.5);
  EXPECT_DOUBLE_EQ(clock.compute_seconds(1, 5), 2.0 * 3 * 1.5);
  EXPECT_THROW((void)clock.compute_seconds(2, 1), std::out_of_range);

  f.speed_sigma = 1.0;
  const ClientClock varied(f, NetworkSettings{}, 1, FaultSettings{}, 1, {20, 20, 20, 20});
  const ClientClock again(f, NetworkSettings{}, 1, FaultSettings{}, 1, {20, 20, 20, 20});
  EXPECT_NE(varied.speed_factor(0), varied.speed_factor(1)); // lasting per-client factors
  for (int k = 0; k < 4; ++k) {
    EXPECT_GT(varied.speed_factor(k), 0);
    EXPECT_DOUBLE_EQ(varied.speed_factor(k), again.speed_factor(k)); // from the seed
    EXPECT_DOUBLE_EQ(varied.compute_seconds(k, 1), varied.compute_seconds(k, 2));  // no stragglers: the same each job
  }

  FaultSettings slow;
  slow.slow_clients = {1};
  slow.slow_seconds = 4.0;
  const ClientClock stragglers(FederationSettings{}, NetworkSettings{}, 1, slow, 1, {20, 20});
  EXPECT_DOUBLE_EQ(stragglers.compute_seconds(0, 1), 1.0);
  EXPECT_DOUBLE_EQ(stragglers.compute_seconds(1, 1), 1.0 + 4.0); // a fixed delay on the virtual clock
}

TEST(AsyncTimeline, EarliestEndFirstTiesByClient) {
  AsyncTimeline t;
  t.start({2, 1, 0, 5.0});
  t.start({1, 1, 0, 5.0});
  t.start({0, 1, 0, 7.5});
  t.start({3, 1, 0, 1.0});
  EXPECT_EQ(t.pop().client, 3);
  EXPECT_DOUBLE_EQ(t.now(), 1.0);
  EXPECT_EQ(t.pop().client, 1);
  EXPECT_EQ(t.pop().client, 2);
  EXPECT_DOUBLE_EQ(t.now(), 5.0);
  t.start({3, 2, 1, t.now() + 1.0});
  EXPECT_EQ(t.next()->client, 3);
  EXPECT_EQ(t.pop().job, 2);
  EXPECT_EQ(t.pop().client, 0);
  EXPECT_TRUE(t.empty());
  EXPECT_THROW(t.pop(), std::logic_error);
}

TEST(FedBuffStep, WeightedStalenessDiscountedMeanOfUpdates) {
  FederationSettings f; // samples weighting, inverse_sqrt
  f.server_lr = 0.5;
  const TensorMap global = {{"b", at::full({2}, 1.0)}};
  const TensorMap base0 = {{"b", at::full({2}, 1.0)}}, base1 = {{"b", at::full({2}, 0.0)}};
  const TensorMap sent0 = {{"b", at::full({2}, 3.0)}}, sent1 = {{"b", at::full({2}, 4.0)}};
  // Client 0: 30 samples, fresh (Δ = 2); client 1: 10 samples, 3 versions old (Δ = 4, weight 1/2).
  const std::vector<BufferedUpdate> buffer = {{0, 30, 0, &sent0, &base0}, {1, 10, 3, &sent1, &base1}};
  const TensorMap out = fedbuff_step(global, buffer, f);
  const double want = 1.0 + 0.5 * (0.75 * 1.0 * 2.0 + 0.25 * 0.5 * 4.0);
  EXPECT_TRUE(at::allclose(out.at("b"), at::full({2}, want)));
  EXPECT_TRUE(at::equal(global.at("b"), at::full({2}, 1.0))); // the input is not written

  f.server_lr = 1;
  f.staleness = StalenessRule::constant;
  // One fresh update with lr 1 is that client's model: FedAvg of one.
  EXPECT_TRUE(at::allclose(fedbuff_step(global, {{0, 30, 0, &sent0, &base0}}, f).at("b"), sent0.at("b")));
  EXPECT_THROW((void)fedbuff_step(global, {}, f), std::invalid_argument);
  const TensorMap wrong = {{"b", at::zeros({3})}};
  EXPECT_THROW((void)fedbuff_step(global, {{0, 1, 0, &wrong, &wrong}}, f), std::invalid_argument);
}

} // namespace
