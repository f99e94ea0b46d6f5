// actors/run_driver.hpp — one federated run: spawn scheduler, clients and aggregator, run, shut down.
#pragma once

#include "actors/messages.hpp"
#include "fl/experiment_config.hpp"
#include "fl/run_records.hpp"
#include "fl/run_setup.hpp"

#include <string>

namespace fedvlm {

/// The adapters client `client` starts with (-1: the centralized trainer): A from the client's
/// own seed, or from one seed shared by all when the strategy wants a common A; B = 0.
[[nodiscard]] TensorMap initial_adapters(const ExperimentConfig& config, const RunSetup& setup, int client);

/// Runs `config` on the prepared `setup` (execute mode) and reports through `observer`.
/// Blocks until the last round's evaluation; RunDone then holds every client's final adapters.
/// Throws std::runtime_error when the actors fail.
RunDone run_federation(const ExperimentConfig& config, const std::string& run_id,
                       const RunSetup& setup, RunObserver& observer);

} // namespace fedvlm
