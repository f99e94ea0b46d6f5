// fl/runtime/random_streams.hpp — the one seed derivation: every random draw of a run is keyed by (run seed, client, round, purpose).
//
// Keyed streams need no saved position: a resumed run, a respawned client or another
// interleaving of the actors draws exactly the same numbers.
#pragma once

#include <cstdint>

namespace fedvlm {

/// What a stream is for. The values are part of every run's results: never renumber them.
enum class Stream : uint64_t {
  training = 1,      ///< a client's shuffling and dropout in one round's local training
  selection = 2,     ///< the server's sample of clients for a round (client -1)
  adapter_init = 3,  ///< lora_A at the start (round 0) and fresh adapters (round >= 1)
  faults = 5,        ///< simulated drop-outs, stragglers, delays
  privacy_noise = 6, ///< DP noise: per client (local mode) or the server's (client -1, central)
  client_speed = 7,  ///< the virtual clock: how long a client's local training takes
  client_link = 8,   ///< the virtual clock: a client's lasting bandwidth factor
  evaluation_sample = 9, ///< the server's sample of clients that did not train, evaluated in a round (client -1)
};

/// A seed for one purpose of one client (-1: the server or a shared draw) in one round, mixing
/// the run seed with splitmix64.
[[nodiscard]] uint64_t job_seed(uint64_t run_seed, int client, int round, Stream purpose);

} // namespace fedvlm
