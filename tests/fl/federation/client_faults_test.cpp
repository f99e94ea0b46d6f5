// tests/fl/federation/client_faults_test.cpp — fault draws: reproducible per client and round, right rates and means.
#include "fl/federation/client_faults.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace fedvlm;

TEST(ClientFaults, ListedClientsFailAndCrashOnlyWhereListed) {
  FaultSettings f;
  f.failing_clients = {2};
  f.crash_clients = {1};
  f.crash_rounds = {3};
  EXPECT_TRUE(draw_client_faults(f, 7, 2, 1).fails);
  EXPECT_FALSE(draw_client_faults(f, 7, 1, 1).fails);
  EXPECT_TRUE(draw_client_faults(f, 7, 1, 3).crashes);
  EXPECT_FALSE(draw_client_faults(f, 7, 1, 2).crashes);
  EXPECT_FALSE(draw_client_faults(f, 7, 0, 3).crashes);
  EXPECT_FALSE(draw_client_faults(f, 7, 0, 3).drops_out);
  EXPECT_EQ(draw_client_faults(f, 7, 0, 3).delay_seconds, 0.0);
}

TEST(ClientFaults, DropOutRateAndReproducibility) {
  FaultSettings f;
  f.dropout_probability = 0.3;
  int drops = 0, n = 0;
  for (int client = 0; client < 40; ++client)
    for (int round = 1; round <= 150; ++round, ++n) {
      const bool d = draw_client_faults(f, 11, client, round).drops_out;
      drops += d;
      EXPECT_EQ(d, draw_client_faults(f, 11, client, round).drops_out);
    }
  // 6000 Bernoulli(0.3) draws: 4 standard deviations is about ±0.024.
  EXPECT_NEAR(static_cast<double>(drops) / n, 0.3, 0.024);
  // Another seed gives other draws.
  int same = 0;
  for (int round = 1; round <= 200; ++round)
    same += draw_client_faults(f, 11, 0, round).drops_out == draw_client_faults(f, 12, 0, round).drops_out;
  EXPECT_LT(same, 180);
}

TEST(ClientFaults, SlowFractionDrawsDelaysWithTheConfiguredMean) {
  for (DelayDistribution dist : {DelayDistribution::exponential, DelayDistribution::lognormal}) {
    FaultSettings f;
    f.slow_fraction = 0.5;
    f.slow_seconds = 2.0;
    f.slow_distribution = dist;
    f.slow_sigma = 0.5;
    double sum = 0;
    int slow = 0, n = 0;
    for (int client = 0; client < 50; ++client)
      for (int round = 1; round <= 200; ++round, ++n) {
        const double d = draw_client_faults(f, 5, client, round).delay_seconds;
        if (d > 0) {
          ++slow;
          sum += d;
        }
      }
    EXPECT_NEAR(static_cast<double>(slow) / n, 0.5, 0.03) << to_string(dist);
    // Exponential: sd = mean, so 5000 draws give sd(mean) ≈ 0.028; lognormal is tighter.
    EXPECT_NEAR(sum / slow, 2.0, 0.12) << to_string(dist);
  }
}

TEST(DrawDelay, MatchesTheClosedForms) {
  EXPECT_DOUBLE_EQ(draw_delay(DelayDistribution::fixed, 1.5, 0.5, 0.3, 0.9), 1.5);
  // Exponential by inversion: -mean·ln(u).
  EXPECT_DOUBLE_EQ(draw_delay(DelayDistribution::exponential, 2.0, 0.5, std::exp(-1.0), 0.5), 2.0);
  // Lognormal with u2 = 0.25: cos(π/2) = 0, so z = 0 and the delay is the median exp(mu).
  const double mu = std::log(3.0) - 0.5 * 0.5 / 2.0;
  EXPECT_NEAR(draw_delay(DelayDistribution::lognormal, 3.0, 0.5, 0.7, 0.25), std::exp(mu), 1e-12);
}

} // namespace
