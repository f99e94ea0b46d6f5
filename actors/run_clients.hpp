// actors/run_clients.hpp — a run's scheduler settings and client actors, for one process or a node.
#pragma once

#include "actors/messages.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/federation/run_setup.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "fl/results/run_records.hpp"

#include <caf/fwd.hpp>

#include <functional>
#include <optional>

namespace fedvlm {

/// The device scheduler's settings for a run.
[[nodiscard]] SchedulerConfig scheduler_config(const ExperimentConfig& config, const RunSetup& setup,
                                               RunObserver* observer);

/// Client `id`'s actor (kSharedInit: the centralized trainer) from `state`, training through
/// `scheduler`. `on_node`: it runs on a node (serve) and keeps its private factors there;
/// `save_state` (a node with --state): where it writes its state when the server asks;
/// `load_state`: where it reads back a saved state when the server rolls the run back.
[[nodiscard]] client_actor spawn_run_client(caf::actor_system& system, const ExperimentConfig& config,
                                          const RunSetup& setup, scheduler_actor scheduler, int id,
                                          const ClientCheckpoint& state, bool on_node = false,
                                          std::function<void(int, const ClientCheckpoint&)> save_state = {},
                                          std::function<std::optional<ClientCheckpoint>(int)> load_state = {});

} // namespace fedvlm
