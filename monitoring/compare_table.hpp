// monitoring/compare_table.hpp — final-round comparison of strategies across runs and seeds.
#pragma once

#include "fl/results/results_reader.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

/// Mean and population standard deviation of `n` pooled values.
struct MeanStd {
  double mean = 0;
  double std = 0;
  std::size_t n = 0;
};

/// One group of runs: the same strategy and sweep values, any seed.
struct ComparisonRow {
  std::string strategy;
  std::map<std::string, std::string> sweep; ///< without seed keys
  int runs = 0;
  int min_clients = 0, max_clients = 0; ///< clients evaluated in the final round, over the runs
  // Over every client's final-round record of every run in the group, pooled.
  MeanStd accuracy, precision, recall, f1, loss;
  MeanStd gain; ///< final accuracy − "before" accuracy, per client that has both
  MeanStd epsilon; ///< differential privacy: ε spent by the end, over the group's DP runs (n = 0: none)
  /// evaluation.global_test: the global model's accuracy on the official test split in each
  /// run's final round, over the group's runs (n = 0: none measured)
  MeanStd global_accuracy;
  /// evaluation.holdout_clients: the new clients' mean accuracy as received and after adapting,
  /// in each run's final round, over the group's runs (n = 0: none measured)
  MeanStd holdout_accuracy, holdout_adapted_accuracy;
  /// Each run's final round: the 10th percentile and the worst of its clients' accuracies, over
  /// the group's runs (n = 0: not in the files, written before p10 was recorded).
  MeanStd p10_accuracy, worst_accuracy;
  /// evaluation.target_accuracy: rounds to target (global test where measured, else the mean
  /// client accuracy) over the runs that reached it; `target_not_reached` runs did not.
  MeanStd rounds_to_target;
  /// ... and the simulated seconds and cumulative bytes at that crossing (the virtual clock).
  MeanStd seconds_to_target, bytes_to_target;
  int target_not_reached = 0;
  /// The task's own metrics (e.g. exact_match), by name, pooled like accuracy
  std::map<std::string, MeanStd> task_metrics;
  int64_t bytes_up_total = 0;   ///< all rounds, all runs of the group
  double bytes_up_per_run = 0;  ///< bytes_up_total / runs: comparable across seed counts
  /// Runs of the group that did not complete, e.g. "q/run: interrupted at round 3 of 5": their
  /// "final" round is the last one they reached, and the table says so.
  std::vector<std::string> incomplete;
  /// Final records exist but none has a local test score (data.test_fraction = 0 with
  /// evaluation.global_test): the table says "no local test split" instead of nan.
  bool no_local_test = false;
};

/// Groups `runs` by strategy and sweep values other than seeds, ordered by strategy and then
/// sweep values (numerically where both values are numbers). A run's final round is the
/// highest round of its non-"before" records.
std::vector<ComparisonRow> compare_runs(const std::vector<RunResults>& runs);

/// compare_runs() as an aligned plain-text table with a header line saying what the ± means.
std::string format_comparison(const std::vector<RunResults>& runs);

} // namespace fedvlm
