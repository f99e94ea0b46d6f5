// actors/run_driver.hpp — one federated run: spawn scheduler, clients and aggregator, run, shut down.
#pragma once

#include "actors/messages.hpp"
#include "fl/experiment_config.hpp"
#include "fl/run_checkpoint.hpp"
#include "fl/run_records.hpp"
#include "fl/run_setup.hpp"

#include <functional>
#include <stdexcept>
#include <string>

namespace fedvlm {

/// The adapters client `client` starts with (-1: the centralized trainer): A from the client's
/// own seed, or from one seed shared by all when the strategy wants a common A; B = 0.
[[nodiscard]] TensorMap initial_adapters(const ExperimentConfig& config, const RunSetup& setup, int client);

/// Where a run starts and where its state goes after each round.
struct RunHooks {
  /// round 0: a fresh run. Otherwise a checkpoint to continue from (its clients must match the
  /// configuration's).
  RunCheckpoint resume_from;
  /// After every finished round, with the whole state (see AggregatorConfig::on_round_state).
  std::function<void(const RunCheckpoint&)> on_round_state;
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
