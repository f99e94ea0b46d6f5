// actors/run_driver.hpp — one federated run: spawn scheduler, clients and aggregator, run, shut down.
#pragma once

#include "actors/cluster.hpp"
#include "actors/messages.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/experiment_config.hpp"
#include "fl/run_checkpoint.hpp"
#include "fl/run_records.hpp"
#include "fl/run_setup.hpp"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

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

/// The device scheduler's settings for a run.
[[nodiscard]] SchedulerConfig scheduler_config(const ExperimentConfig& config, const RunSetup& setup,
                                               RunObserver* observer);

/// Client `id`'s actor (kSharedInit: the centralized trainer) from `state`, training through
/// `scheduler`. `on_node`: it runs on a node (serve) and keeps its private factors there.
[[nodiscard]] client_actor spawn_run_client(caf::actor_system& system, const ExperimentConfig& config,
                                          const RunSetup& setup, caf::actor scheduler, int id,
                                          const ClientCheckpoint& state, bool on_node = false);

/// Where a run starts and where its state goes after each round.
struct RunHooks {
  /// round 0: a fresh run. Otherwise a checkpoint to continue from (its clients must match the
  /// configuration's).
  RunCheckpoint resume_from;
  /// After every finished round, with the whole state (see AggregatorConfig::on_round_state).
  std::function<void(const RunCheckpoint&)> on_round_state;
  /// Set: the clients run on other processes (actors/cluster.hpp) that join this one; only
  /// fresh runs (resume_from round 0).
  std::optional<ServeSettings> serve;
};

/// SIGINT / SIGTERM stopped the run; the rounds before the one in flight are complete.
class RunInterrupted : public std::runtime_error {
public:
  explicit RunInterrupted(int signal_number);
  [[nodiscard]] int signal_number() const { return signal_; }

private:
  int signal_;
};

/// Runs `config` on the prepared `setup` (execute mode) and reports through `observer`.
/// Blocks until the last round's evaluation; RunDone then holds every client's final adapters.
/// Throws RunInterrupted when a stop signal arrives, std::runtime_error when the run fails
/// (a job failed for real, e.g. a non-finite loss, or the actors failed).
RunDone run_federation(const ExperimentConfig& config, const std::string& run_id,
                       const RunSetup& setup, RunObserver& observer, const RunHooks& hooks = {});

} // namespace fedvlm
