// actors/experiment_driver.hpp — runs every run of an experiment plan and writes their results.
#pragma once

#include "actors/cluster.hpp"
#include "fl/config/experiment_toml.hpp"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fedvlm {

struct DriverOptions {
  bool dry_run = false;     ///< validate and print the plan only
  bool interactive = false; ///< live progress line (a terminal, and not --quiet)
  std::vector<std::string> only; ///< run labels to run (empty = all)
  /// --resume: a run whose directory OUTPUT_DIR/NAME/RUN exists continues there from its newest
  /// checkpoint (a completed one is skipped) instead of starting anew in RUN.2.
  bool resume = false;
  /// Accept a configuration that differs from the one the run started with (e.g. more rounds).
  bool force = false;
  /// `fedvlm-sim serve`: the clients run on node processes that join (actors/cluster.hpp).
  std::optional<ServeSettings> serve;
};

struct DriverOutcome {
  int runs_completed = 0;
  int runs_failed = 0;
  int runs_skipped = 0;     ///< --resume: already completed
  int interrupted_signal = 0; ///< SIGINT / SIGTERM stopped the plan (exit status 128 + signal)
  std::vector<std::filesystem::path> run_dirs;
};

/// Runs `plan` in order. A failing run is recorded (run.json status "failed", the error logged)
/// and the next run goes on; a stop signal ends the plan after writing the finished rounds
/// (run.json status "interrupted", with the resume command). Throws ConfigError /
/// std::runtime_error for problems found before any run starts (bad file, missing data,
/// unknown run label, exporter address in use, a resume whose configuration changed).
DriverOutcome run_experiment(const ExperimentPlan& plan, const DriverOptions& options, std::FILE* out);

/// `fedvlm-sim resume RUN_DIR`: continues the run in `run_dir` after its newest checkpoint, in
/// place. `plan` is the run's own config.toml, loaded with any --set overrides; keys that
/// differ from the stored configuration are refused (named) unless options.force. A run
/// without a checkpoint starts again from round 0 in the same directory.
DriverOutcome resume_run(const std::filesystem::path& run_dir, const ExperimentPlan& plan,
                         const DriverOptions& options, std::FILE* out);

} // namespace fedvlm
