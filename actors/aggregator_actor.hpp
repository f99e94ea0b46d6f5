// actors/aggregator_actor.hpp — runs the rounds: collects client updates, averages, broadcasts, evaluates.
#pragma once

#include "fl/experiment_config.hpp"
#include "fl/run_records.hpp"
#include "fl/strategy.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <string>
#include <vector>

namespace fedvlm {

struct AggregatorConfig {
  std::string run;
  StrategyKind strategy = StrategyKind::plora;
  FederationSettings federation;
  uint64_t seed = 0;
  std::vector<caf::actor> clients; ///< index = client id
  caf::actor central_trainer;      ///< centralized strategy only
  RunObserver* observer = nullptr; ///< outlives the actor system
};

/// Handles (start_atom) → RunDone after round 0 (evaluation before fine-tuning) and
/// federation.rounds rounds. A round closes when every selected client has answered or failed
/// (a request times out after round_timeout_s); with fewer answers than the quorum, the
/// round's aggregation is skipped and the previous global matrices stay.
caf::actor spawn_aggregator(caf::actor_system& system, AggregatorConfig config);

/// Clients taking part in `round`: all, or a seeded sample of `per_round`, ascending.
[[nodiscard]] std::vector<int> select_clients(int clients, int per_round, uint64_t seed, int round);

} // namespace fedvlm
