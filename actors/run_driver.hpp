// actors/run_driver.hpp — one federated run: spawn scheduler, clients and aggregator, run, shut down.
#pragma once

#include "actors/cluster.hpp"
#include "actors/messages.hpp"
#include "actors/run_clients.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "fl/results/run_state_mirror.hpp"
#include "fl/results/run_records.hpp"
#include "fl/federation/run_setup.hpp"
#include "fl/federation/starting_state.hpp"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {

/// Where a served run goes on after losing a node: the newest round every node saved.
struct RollBackPoint {
  RunCheckpoint checkpoint;          ///< the server's checkpoint of that round (round 0: none, from the start)
  std::vector<RoundSummary> rounds;  ///< the round summaries up to it
};

/// Where a run starts and where its state goes after each round.
struct RunHooks {
  /// round 0: a fresh run. Otherwise a checkpoint to continue from (its clients must match the
  /// configuration's).
  RunCheckpoint resume_from;
  /// The round summaries a resumed run wrote before (evaluation.target_accuracy's curves).
  std::vector<RoundSummary> previous_rounds;
  /// After every finished round, with its state (see AggregatorConfig::on_round_state).
  std::function<void(RoundStateChange)> on_round_state;
  /// Ask every client for its state after each round (AggregatorConfig::collect_every_state).
  bool collect_every_state = false;
  /// Set: the clients run on other processes (actors/cluster.hpp) that join this one; only
  /// fresh runs (resume_from round 0).
  std::optional<ServeSettings> serve;
  /// Served synchronous runs whose nodes all keep their clients' states (--state): called when
  /// a node was lost; drops the records of the rounds after the server's newest checkpoint and
  /// returns it. The run then waits (serve.wait_seconds) for a node to take the lost clients
  /// with their states of that round, every client takes back that state, and the rounds after
  /// it run again: the records end as those of a run that lost nothing. Empty: a lost node's
  /// clients are left out until a node takes them back from their starting state.
  std::function<RollBackPoint()> roll_back;
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
