// tests/fl/results/rounds_to_target_test.cpp — rounds to a target accuracy on synthetic learning curves, checked by hand.
#include "fl/results/rounds_to_target.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include <limits>
#include <stdexcept>

namespace fedvlm {
namespace {

using Curve = std::vector<std::pair<int, double>>;

TEST(RoundsToTarget, InterpolatesLinearlyBetweenTheRoundBeforeAndTheRoundThatReachesIt) {
  // 0.5 after round 1, 0.9 after round 2: 0.8 lies 0.3 / 0.4 of the way, at round 1.75.
  const auto r = rounds_to_target({{0, 0.1}, {1, 0.5}, {2, 0.9}, {3, 0.95}}, 0.8);
  ASSERT_TRUE(r.has_value());
  EXPECT_DOUBLE_EQ(*r, 1.75);
  // A target just above round 1's value lands just after round 1.
  EXPECT_NEAR(*rounds_to_target({{0, 0.1}, {1, 0.5}, {2, 0.9}}, 0.504), 1.01, 1e-12);
}

TEST(RoundsToTarget, ADipAfterTheCrossingChangesNothing) {
  // Crossed between rounds 1 (0.6) and 2 (0.95): 1 + 0.3 / 0.35; the dip at round 3 and the
  // later peak do not move it.
  const Curve curve{{0, 0.2}, {1, 0.6}, {2, 0.95}, {3, 0.7}, {4, 0.99}};
  EXPECT_DOUBLE_EQ(*rounds_to_target(curve, 0.9), 1.0 + 0.3 / 0.35);
  const Curve without_dip{{0, 0.2}, {1, 0.6}, {2, 0.95}};
  EXPECT_DOUBLE_EQ(*rounds_to_target(curve, 0.9), *rounds_to_target(without_dip, 0.9));
}

TEST(RoundsToTarget, ADipBeforeTheCrossingIsReplacedByTheBestSoFar) {
  // Monotone curve 0.5, 0.8, 0.8, 1.0: the crossing of 0.9 is between (2, 0.8) and (3, 1.0), at
  // 2.5; interpolating from the raw dip (2, 0.6) would give 2.75.
  const auto r = rounds_to_target({{0, 0.5}, {1, 0.8}, {2, 0.6}, {3, 1.0}}, 0.9);
  ASSERT_TRUE(r.has_value());
  EXPECT_DOUBLE_EQ(*r, 2.5);
}

TEST(RoundsToTarget, ACurveThatNeverReachesTheTargetHasNoValue) {
  EXPECT_FALSE(rounds_to_target({{0, 0.1}, {1, 0.5}, {2, 0.89}, {3, 0.8999}}, 0.9).has_value());
  EXPECT_FALSE(rounds_to_target({}, 0.9).has_value());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(rounds_to_target({{0, nan}, {1, nan}}, 0.5).has_value());
}

TEST(RoundsToTarget, ReachingTheTargetExactlyAtARoundGivesThatRound) {
  EXPECT_EQ(*rounds_to_target({{0, 0.3}, {1, 0.6}, {2, 0.9}, {3, 0.95}}, 0.9), 2.0);
  EXPECT_EQ(*rounds_to_target({{0, 0.3}, {1, 0.6}, {2, 0.99}}, 0.99), 2.0);
}

TEST(RoundsToTarget, ReachedAtTheFirstMeasuredRound) {
  // Already there before training (round 0), or at round 1 of a curve that starts there (no
  // round-0 evaluation): no point before it to interpolate from.
  EXPECT_EQ(*rounds_to_target({{0, 0.95}, {1, 0.97}}, 0.9), 0.0);
  EXPECT_EQ(*rounds_to_target({{1, 0.92}, {2, 0.97}}, 0.9), 1.0);
  // Reached at round 1 from round 0: interpolated inside the first round.
  EXPECT_DOUBLE_EQ(*rounds_to_target({{0, 0.1}, {1, 0.92}}, 0.5), 0.4 / 0.82);
}

TEST(RoundsToTarget, UnmeasuredRoundsAreSkippedAndGapsInterpolatedOver) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // (0, 0.5) to (2, 1.0): 0.75 is half-way, round 1.
  EXPECT_DOUBLE_EQ(*rounds_to_target({{0, 0.5}, {1, nan}, {2, 1.0}}, 0.75), 1.0);
  // Rounds 5 and 9 only: a quarter of the way is round 6.
  EXPECT_DOUBLE_EQ(*rounds_to_target({{5, 0.2}, {9, 0.6}}, 0.3), 6.0);
}

TEST(RoundsToTarget, RoundsOutOfOrderAreRefused) {
  EXPECT_THROW((void)rounds_to_target({{0, 0.1}, {2, 0.2}, {1, 0.9}}, 0.5), std::invalid_argument);
  EXPECT_THROW((void)rounds_to_target({{3, 0.1}, {3, 0.9}}, 0.5), std::invalid_argument);
}

RoundSummary summary(int round, double global, double mean) {
  RoundSummary s;
  s.round = round;
  s.global_accuracy = global;
  s.mean_accuracy = mean;
  return s;
}

TEST(TargetTracker, FillsEverySummaryAndSaysOnceWhenTheWatchedCurveArrives) {
  TargetTracker t(0.8, /*watch_global=*/true);
  RoundSummary s0 = summary(0, 0.1, 0.5), s1 = summary(1, 0.6, 0.9), s2 = summary(2, 0.9, 0.95), s3 = summary(3, 0.7, 0.95);
  EXPECT_FALSE(t.record(s0));
  EXPECT_EQ(s0.target_accuracy, 0.8);
  EXPECT_TRUE(std::isnan(s0.global_rounds_to_target));
  EXPECT_TRUE(std::isnan(s0.mean_rounds_to_target));
  // The mean client accuracy crosses in round 1 (0.5 → 0.9: at 0.75), but the global test is watched.
  EXPECT_FALSE(t.record(s1));
  EXPECT_DOUBLE_EQ(s1.mean_rounds_to_target, 0.75);
  EXPECT_TRUE(std::isnan(s1.global_rounds_to_target));
  EXPECT_FALSE(t.reached());
  EXPECT_TRUE(t.record(s2)); // 0.6 → 0.9: 0.8 at 1 + 2/3
  EXPECT_DOUBLE_EQ(s2.global_rounds_to_target, 1.0 + 0.2 / 0.3);
  EXPECT_TRUE(t.reached());
  EXPECT_DOUBLE_EQ(t.reached_at(), 1.0 + 0.2 / 0.3);
  EXPECT_FALSE(t.record(s3)); // already reached; the dip changes nothing
  EXPECT_DOUBLE_EQ(s3.global_rounds_to_target, 1.0 + 0.2 / 0.3);
  EXPECT_DOUBLE_EQ(s3.mean_rounds_to_target, 0.75);
}

TEST(TargetTracker, AResumedRunStartsFromItsEarlierRounds) {
  // Rounds 0..2 ran before; rounds 3.. after a resume from round 2. A later round in the old
  // files (3, from a round the checkpoint did not cover) is not used.
  const std::vector<RoundSummary> earlier{summary(0, 0.1, NAN), summary(1, 0.5, NAN), summary(2, 0.7, NAN),
                                          summary(3, 0.99, NAN)};
  TargetTracker resumed(0.8, true, earlier);
  RoundSummary s3 = summary(3, 0.9, NAN);
  EXPECT_TRUE(resumed.record(s3));
  EXPECT_DOUBLE_EQ(s3.global_rounds_to_target, 2.5); // from (2, 0.7), not from round 3 alone
  // Without the earlier rounds it would say 3: the first point it saw.
  TargetTracker fresh(0.8, true);
  RoundSummary again = summary(3, 0.9, NAN);
  EXPECT_TRUE(fresh.record(again));
  EXPECT_EQ(again.global_rounds_to_target, 3.0);
  // Watching the mean client accuracy, which is not measured here: never reached.
  TargetTracker mean(0.8, false, earlier);
  RoundSummary m = summary(3, 0.9, NAN);
  EXPECT_FALSE(mean.record(m));
  EXPECT_FALSE(mean.reached());
}

TEST(ValueAtRound, InterpolatesBetweenMeasuredRounds) {
  const Curve seconds{{0, 0}, {1, 100}, {2, NAN}, {3, 400}};
  EXPECT_EQ(value_at_round(seconds, 1), 100);
  EXPECT_DOUBLE_EQ(value_at_round(seconds, 0.25), 25);
  EXPECT_DOUBLE_EQ(value_at_round(seconds, 2.5), 100 + 300 * 1.5 / 2); // round 2 unmeasured: from 1 to 3
  EXPECT_TRUE(std::isnan(value_at_round(seconds, 3.5)));
  EXPECT_TRUE(std::isnan(value_at_round({}, 1)));
}

TEST(TargetTracker, TheCrossingOnTheVirtualClockAndInBytes) {
  // Mean client accuracy 0.5, 0.7, 0.9 at 0, 600, 1800 simulated s and 0, 1000, 3000 bytes:
  // 0.8 is reached at round 1.5, so at 1200 s and 2000 bytes.
  TargetTracker t(0.8, /*watch_global=*/false);
  const double acc[] = {0.5, 0.7, 0.9}, secs[] = {0, 600, 1800};
  const int64_t bytes[] = {0, 1000, 3000};
  RoundSummary last;
  for (int round = 0; round <= 2; ++round) {
    RoundSummary s = summary(round, NAN, acc[round]);
    s.virtual_seconds = secs[round];
    s.cumulative_bytes = bytes[round];
    EXPECT_EQ(t.record(s), round == 2);
    if (round < 2) EXPECT_TRUE(std::isnan(s.virtual_seconds_to_target));
    last = s;
  }
  EXPECT_DOUBLE_EQ(last.mean_rounds_to_target, 1.5);
  EXPECT_DOUBLE_EQ(last.virtual_seconds_to_target, 1200);
  EXPECT_DOUBLE_EQ(last.bytes_to_target, 2000);
}

} // namespace
} // namespace fedvlm
