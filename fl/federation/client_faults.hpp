// fl/federation/client_faults.hpp — which simulated faults hit a client in a round: drop-out, delay, crash.
//
// A plain function of (settings, run seed, client, round): every draw comes from the client's
// own fault stream, so a run with faults is as reproducible as one without, resumes without
// saved generator positions, and does not depend on which actor asks first.
#pragma once

#include "fl/config/experiment_config.hpp"

#include <cstdint>

namespace fedvlm {

struct ClientRoundFaults {
  bool fails = false;          ///< a listed failing client: answers with an error
  bool drops_out = false;      ///< dropout_probability hit: answers with an error
  bool crashes = false;        ///< its actor throws (crash_clients × crash_rounds)
  double delay_seconds = 0;    ///< answers this late (slow_clients, or slow_fraction hit)
};

[[nodiscard]] ClientRoundFaults draw_client_faults(const FaultSettings& faults, uint64_t run_seed,
                                                   int client, int round);

/// A delay with the given mean from `distribution` (fixed: exactly the mean), from `u1`, `u2`
/// uniform in (0, 1). lognormal uses log-space standard deviation `sigma` and keeps the mean.
[[nodiscard]] double draw_delay(DelayDistribution distribution, double mean, double sigma, double u1,
                                double u2);

} // namespace fedvlm
