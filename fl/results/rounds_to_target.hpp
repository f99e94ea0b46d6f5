// fl/results/rounds_to_target.hpp — the round at which a learning curve first reaches a target accuracy, as FedAvg papers count it.
//
// McMahan et al. (2017) report "rounds to reach a target accuracy": the learning curve is first
// made monotone (each point the best accuracy so far), then the crossing is found by linear
// interpolation between the last point below the target and the first at or above it, so the
// answer may be a fractional round.
#pragma once

#include "fl/results/run_records.hpp"

#include <optional>
#include <utility>
#include <vector>

namespace fedvlm {

/// `curve`: (round, accuracy) in increasing round order; non-finite accuracies (a round that
/// was not measured) are skipped. Returns the fractional round at which the running maximum
/// first reaches `target`: the round itself when it is the first point or reaches the target
/// exactly, else r0 + (r1 − r0)·(target − m0)/(m1 − m0) between the previous measured round r0
/// (best so far m0 < target) and r1 (best so far m1 >= target). nullopt when it never does.
/// Throws std::invalid_argument when rounds do not increase.
[[nodiscard]] std::optional<double> rounds_to_target(const std::vector<std::pair<int, double>>& curve, double target);

/// The value of a per-round quantity (simulated seconds, cumulative bytes) at fractional round
/// `round`: `points` (round, value) in increasing round order, non-finite values skipped;
/// linear between the measured rounds around it, the value itself at a measured round. NaN
/// when `round` lies outside the measured rounds.
[[nodiscard]] double value_at_round(const std::vector<std::pair<int, double>>& points, double round);

/// evaluation.target_accuracy over a run: the global test and mean client accuracy curves so
/// far, and their rounds to target written into each round's summary.
class TargetTracker {
public:
  /// `target` in (0, 1]; `watch_global`: the global test decides reached() (else the mean
  /// client accuracy). `earlier`: a resumed run's summaries, whose rounds come first.
  TargetTracker(double target, bool watch_global, const std::vector<RoundSummary>& earlier = {});

  /// Adds `sum`'s accuracies and sets its target_accuracy, *_rounds_to_target and the watched
  /// curve's virtual_seconds_to_target and bytes_to_target (NaN while not reached). Returns true when the watched curve reaches the target in this round.
  bool record(RoundSummary& sum);

  [[nodiscard]] bool reached() const { return reached_at_.has_value(); }
  /// The watched curve's rounds to target; only when reached().
  [[nodiscard]] double reached_at() const { return reached_at_.value_or(0); }
  [[nodiscard]] double target() const { return target_; }
  [[nodiscard]] bool watches_global() const { return watch_global_; }

private:
  double target_;
  bool watch_global_;
  std::vector<RoundSummary> earlier_;
  std::vector<std::pair<int, double>> global_, mean_;
  std::vector<std::pair<int, double>> seconds_, bytes_; ///< the virtual clock and bytes per round
  std::optional<double> reached_at_;
};

} // namespace fedvlm
