// actors/experiment_driver.hpp — runs every run of an experiment plan and writes their results.
#pragma once

#include "fl/experiment_toml.hpp"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

struct DriverOptions {
  bool dry_run = false;     ///< validate and print the plan only
  bool interactive = false; ///< live progress line (a terminal, and not --quiet)
  std::vector<std::string> only; ///< run labels to run (empty = all)
};

struct DriverOutcome {
  int runs_completed = 0;
  int runs_failed = 0;
  std::vector<std::filesystem::path> run_dirs;
};

/// Runs `plan` in order. A failing run is recorded (run.json status "failed", the error logged)
/// and the next run goes on. Throws ConfigError / std::runtime_error for problems found before
/// any run starts (bad file, missing data, unknown run label, exporter address in use).
DriverOutcome run_experiment(const ExperimentPlan& plan, const DriverOptions& options, std::FILE* out);

} // namespace fedvlm
