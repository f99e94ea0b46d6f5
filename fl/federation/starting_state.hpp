// fl/federation/starting_state.hpp — the adapters and optimizer state each client starts a run with.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/federation/run_setup.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "model/tensor_map.hpp"

#include <vector>

namespace fedvlm {

/// The adapters client `client` starts with (-1: the centralized trainer): A from the client's
/// own seed, or from one seed shared by all when the strategy wants a common A; B = 0.
[[nodiscard]] TensorMap initial_adapters(const ExperimentConfig& config, const RunSetup& setup, int client);

/// The id of the centralized trainer (and of the shared initialisation stream).
constexpr int kSharedInit = -1;

/// The clients' starting states (index = id): fresh adapters when `from` is round 0, else the
/// checkpoint's (checked against the configuration, so a checkpoint of another run cannot be
/// mixed in silently); the centralized trainer's goes to `central`.
[[nodiscard]] std::vector<ClientCheckpoint> starting_states(const ExperimentConfig& config, const RunSetup& setup,
                                                            const RunCheckpoint& from, ClientCheckpoint& central);

} // namespace fedvlm
