// tests/fl/results/rounds_to_target_test.cpp — rounds to a target accuracy on synthetic learning curves, checked by hand.
#include "fl/results/rounds_to_target.hpp"

#include <gtest/gtest.h>

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

} // namespace
} // namespace fedvlm
