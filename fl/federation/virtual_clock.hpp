// fl/federation/virtual_clock.hpp — one simulated clock for every mode: each client's compute, links and availability, and what a synchronous round's deadline keeps.
//
// A client's round (sync) or job (async) takes download + compute + upload seconds: compute is
// client_seconds × local epochs × its data over the mean × its lasting speed factor, plus a
// straggler delay of [faults] slow_*; each transfer is the latency plus bytes over the client's
// bandwidth. Speed factors and bandwidths are lasting per client, from lognormals of mean 1
// (federation.speed_sigma, network.bandwidth_sigma) or from a device trace (network.trace),
// which also gives availability windows. Nothing sleeps: the aggregator asks these functions
// when a client would have finished and decides on that, so a run gives the same metrics
// whatever the machine's speed, the number of workers, or a resume in between.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/runtime/random_streams.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

/// One client's lasting device and link on the clock.
struct ClientLink {
  double speed_factor = 1; ///< multiplies its compute time
  double down_bytes_per_s = 0; ///< 0: unlimited
  double up_bytes_per_s = 0;   ///< 0: unlimited
  double latency_s = 0;
  std::vector<std::pair<double, double>> windows; ///< available [start, end); empty: always
};

/// Virtual durations of the clients' local trainings and transfers.
class ClientClock {
public:
  /// `train_samples[k]`: client k's local training samples.
  ClientClock(const FederationSettings& federation, const NetworkSettings& network, int local_epochs,
              const FaultSettings& faults, uint64_t run_seed, std::vector<int64_t> train_samples);

  /// Seconds client `client`'s local training keyed `job` (the round in sync mode, the job
  /// counter 1, 2, ... in async mode) computes: client_seconds × local epochs × its data size
  /// over the mean × its lasting speed factor, plus a straggler delay where [faults] slow_*
  /// draws one for (client, job).
  [[nodiscard]] double compute_seconds(int client, int job) const;
  /// Seconds to download `bytes_down` and upload `bytes_up`: a latency and bytes / bandwidth each.
  [[nodiscard]] double transfer_seconds(int client, int64_t bytes_down, int64_t bytes_up) const;
  /// compute_seconds + transfer_seconds.
  [[nodiscard]] double job_seconds(int client, int job, int64_t bytes_down, int64_t bytes_up) const;
  /// Whether `client` is available during all of [from, to] (periodic windows with trace_period_s).
  [[nodiscard]] bool available(int client, double from, double to) const;
  /// The earliest time after `now` at which some client becomes available (a window opens);
  /// infinity when none ever does.
  [[nodiscard]] double next_available(double now) const;
  /// Client k's lasting speed factor (lognormal, mean 1; exactly 1 when speed_sigma is 0; the trace's).
  [[nodiscard]] double speed_factor(int client) const { return link(client).speed_factor; }
  [[nodiscard]] const ClientLink& link(int client) const;
  [[nodiscard]] int clients() const { return static_cast<int>(links_.size()); }

private:
  FederationSettings federation_;
  int epochs_;
  FaultSettings faults_;
  uint64_t seed_;
  double period_ = 0;
  std::vector<int64_t> samples_;
  double mean_samples_ = 1;
  std::vector<ClientLink> links_;
};

/// Clients `candidates` (ascending) of whom `count` are drawn for `round` from the server's
/// `purpose` stream (client -1); all of them when count <= 0 or >= their number. With candidates 0..n−1 it is
/// select_clients(n, count, seed, round).
[[nodiscard]] std::vector<int> sample_clients(std::vector<int> candidates, int count, uint64_t seed, int round,
                                              Stream purpose = Stream::selection);

/// Who a synchronous round selects at virtual time `now`: the clients available then, of whom
/// ceil(clients_per_round × overcommit) are sampled (all when clients_per_round is 0).
/// `wanted` gets how many updates the round keeps: clients_per_round with overcommit, else
/// the number selected.
[[nodiscard]] std::vector<int> select_on_clock(const FederationSettings& federation, const ClientClock& clock, uint64_t seed,
                                               int round, double now, int& wanted);

/// What a synchronous round's clock decided once every selected client answered or failed.
struct RoundTiming {
  std::vector<int> kept;                ///< ascending: their updates are aggregated
  std::map<int, std::string> dropped;   ///< answered, but left out: why
  std::map<int, double> finish;         ///< seconds after the round's start each answer arrived
  double duration = 0;                  ///< the round's simulated seconds
};

/// Decides a synchronous round started at `now` from the clients' finish times `finish`
/// (seconds after the start; only those that answered): a client that is not available until
/// it finishes is dropped (it went offline), then one that finishes after round_deadline_s (> 0),
/// then with overcommit all but the first `wanted` to finish (ties by client id). The round
/// lasts until its last kept answer, or until the deadline when the deadline dropped someone or
/// fewer than `wanted` (or fewer than selected: `any_failed`) answers came. A round that
/// selected nobody (no client available) lasts until a client's window opens, or the deadline.
[[nodiscard]] RoundTiming time_round(const FederationSettings& federation, const ClientClock& clock, double now,
                                     const std::map<int, double>& finish, std::size_t wanted, bool any_failed);

} // namespace fedvlm
