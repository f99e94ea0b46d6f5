// fl/results/client_checkpoint.hpp — a served run's client states, each in its node's own directory, for resume.
//
// On a node (fedvlm-sim node --state DIR) every client it hosts writes its private state after
// the rounds the server checkpoints, as a one-client RunCheckpoint in
//   DIR/NAME/RUN/client_NNNNNN/checkpoints/round_NNNNNN.ckpt
// through checkpoint_save (atomic, the `keep` newest kept). Per client, not per node: a node that
// comes back in another join order hosts other clients, and nodes on one shared directory find
// each other's files.
#pragma once

#include "fl/results/run_checkpoint.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fedvlm {

/// True when a run with checkpoint.every = `every` (0: never) checkpoints after `round` of
/// `total_rounds`: every `every` rounds, and after the last one.
[[nodiscard]] bool checkpoint_due(int round, int every, int total_rounds);

/// DIR/RUN_ID/client_NNNNNN (RUN_ID is NAME/RUN).
[[nodiscard]] std::filesystem::path client_state_dir(const std::filesystem::path& state_dir, const std::string& run_id,
                                                     int client);

/// Writes `state` (its id) after `round` of run `run_id` under `state_dir`, keeping the `keep` newest.
void client_state_save(const std::filesystem::path& state_dir, const std::string& run_id, uint64_t config_hash,
                       int round, const ClientCheckpoint& state, int keep);

/// The state client `client` of run `run_id` saved after `round`; nothing when there is no such
/// file. Throws std::runtime_error when the file is damaged or belongs to another run or client.
[[nodiscard]] std::optional<ClientCheckpoint> client_state_load(const std::filesystem::path& state_dir,
                                                                const std::string& run_id, int client, int round);

} // namespace fedvlm
