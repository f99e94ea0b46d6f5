// actors/run_driver.hpp — one federated run: spawn scheduler, clients and aggregator, run, shut down.
#pragma once

#include "actors/messages.hpp"
#include "fl/experiment_config.hpp"
#include "fl/run_records.hpp"
#include "fl/run_setup.hpp"

#include <string>

namespace fedvlm {

/// Runs `config` on the prepared `setup` (execute mode) and reports through `observer`.
/// Blocks until the last round's evaluation. Throws std::runtime_error when the actors fail.
RunDone run_federation(const ExperimentConfig& config, const std::string& run_id,
                       const RunSetup& setup, RunObserver& observer);

} // namespace fedvlm
