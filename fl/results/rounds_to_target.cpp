// fl/results/rounds_to_target.cpp — running maximum, then linear interpolation at the crossing.
#include "fl/results/rounds_to_target.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace fedvlm {

std::optional<double> rounds_to_target(const std::vector<std::pair<int, double>>& curve, double target) {
  bool any = false;
  int prev_round = 0;
  double best = 0;
  for (std::size_t i = 0; i < curve.size(); ++i) {
    if (i > 0 && curve[i].first <= curve[i - 1].first)
      throw std::invalid_argument("rounds_to_target: rounds must increase, got round " + std::to_string(curve[i].first) +
                                  " after round " + std::to_string(curve[i - 1].first));
    const auto [round, accuracy] = curve[i];
    if (!std::isfinite(accuracy)) continue;
    if (!any) {
      if (accuracy >= target) return static_cast<double>(round);
      any = true;
    } else if (accuracy >= target) {
      // best < target <= accuracy, so the slope is positive and the result lies in (prev, round].
      return prev_round + (round - prev_round) * (target - best) / (accuracy - best);
    }
    best = std::max(best, accuracy);
    prev_round = round;
  }
  return std::nullopt;
}

double value_at_round(const std::vector<std::pair<int, double>>& points, double round) {
  const std::pair<int, double>* prev = nullptr;
  for (const auto& p : points) {
    if (!std::isfinite(p.second)) continue;
    if (p.first == round) return p.second;
    if (p.first > round) {
      if (prev == nullptr) return std::numeric_limits<double>::quiet_NaN();
      return prev->second + (p.second - prev->second) * (round - prev->first) / (p.first - prev->first);
    }
    prev = &p;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

TargetTracker::TargetTracker(double target, bool watch_global, const std::vector<RoundSummary>& earlier)
    : target_(target), watch_global_(watch_global), earlier_(earlier) {}

bool TargetTracker::record(RoundSummary& sum) {
  // A resumed run's earlier rounds, up to the one this process starts after.
  for (const auto& s : earlier_)
    if (s.round < sum.round && (global_.empty() || s.round > global_.back().first)) {
      global_.emplace_back(s.round, s.global_accuracy);
      mean_.emplace_back(s.round, s.mean_accuracy);
      seconds_.emplace_back(s.round, s.virtual_seconds);
      bytes_.emplace_back(s.round, static_cast<double>(s.cumulative_bytes));
    }
  earlier_.clear();
  global_.emplace_back(sum.round, sum.global_accuracy);
  mean_.emplace_back(sum.round, sum.mean_accuracy);
  seconds_.emplace_back(sum.round, sum.virtual_seconds);
  bytes_.emplace_back(sum.round, static_cast<double>(sum.cumulative_bytes));
  sum.target_accuracy = target_;
  const auto global = rounds_to_target(global_, target_);
  const auto mean = rounds_to_target(mean_, target_);
  if (global) sum.global_rounds_to_target = *global;
  if (mean) sum.mean_rounds_to_target = *mean;
  const bool was = reached();
  reached_at_ = watch_global_ ? global : mean;
  if (reached_at_) {
    sum.virtual_seconds_to_target = value_at_round(seconds_, *reached_at_);
    sum.bytes_to_target = value_at_round(bytes_, *reached_at_);
  }
  return !was && reached();
}

} // namespace fedvlm
