// fl/federation/client_faults.cpp — the per-client, per-round fault draws.
#include "fl/federation/client_faults.hpp"

#include "fl/tasks/local_training.hpp"
#include "fl/runtime/random_streams.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace fedvlm {

namespace {


bool listed(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// mt19937_64's output is fixed by the standard; std's distributions are not, so uniforms are
// made by hand (53 random bits, never exactly 0 or 1).
double uniform01(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 0.5) / 9007199254740992.0; }

} // namespace

double draw_delay(DelayDistribution distribution, double mean, double sigma, double u1, double u2) {
  switch (distribution) {
  case DelayDistribution::fixed:
    return mean;
  case DelayDistribution::exponential:
    return -mean * std::log(u1);
  case DelayDistribution::lognormal: {
    // Box–Muller normal; mu chosen so that E[delay] = mean.
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    const double mu = std::log(mean) - sigma * sigma / 2.0;
    return std::exp(mu + sigma * z);
  }
  }
  return mean;
}

ClientRoundFaults draw_client_faults(const FaultSettings& f, uint64_t run_seed, int client, int round) {
  ClientRoundFaults out;
  std::mt19937_64 rng(job_seed(run_seed, client, round, Stream::faults));
  // Always draw the same number of values, so one setting never shifts another's stream.
  const double u_drop = uniform01(rng), u_slow = uniform01(rng), u1 = uniform01(rng), u2 = uniform01(rng);
  out.fails = listed(f.failing_clients, client);
  out.drops_out = f.dropout_probability > 0 && u_drop < f.dropout_probability;
  out.crashes = listed(f.crash_clients, client) && listed(f.crash_rounds, round);
  const bool slow = listed(f.slow_clients, client) || (f.slow_fraction > 0 && u_slow < f.slow_fraction);
  if (slow && f.slow_seconds > 0) out.delay_seconds = draw_delay(f.slow_distribution, f.slow_seconds, f.slow_sigma, u1, u2);
  return out;
}

} // namespace fedvlm
