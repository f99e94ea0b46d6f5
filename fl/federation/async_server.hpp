// fl/federation/async_server.hpp — the asynchronous (FedBuff) server's bookkeeping: jobs in flight, arrivals, commits in virtual-time order.
//
// The aggregator actor sends what this decides: which job to start and from which global,
// which arrived result to commit next (in virtual-time order, never in arrival order), and
// when the buffer is full. Plain state and calls, tested without an actor system.
#pragma once

#include "fl/federation/async_federation.hpp"
#include "fl/federation/client_exchange.hpp"
#include "fl/federation/round.hpp"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace fedvlm {

class AsyncServer {
public:
  AsyncServer(const RoundSettings& settings, int clients, int version);

  /// The clients that start at once when the run starts (clients_per_round of them, or all);
  /// the others wait idle.
  [[nodiscard]] std::vector<int> first_clients();

  /// Starts `client`'s next job from `global` at the virtual clock's now; returns its number.
  int start(int client, const TensorMap& global);

  /// A job's result arrived (nothing: the job failed; its client starts again from the latest global).
  void arrived(int client, int job, std::optional<ClientUpdate> update);

  /// What committing the next finished job decided.
  struct Commit {
    int client = 0;
    int job = 0;
    bool committed = false; ///< an update went into the round's buffer (the client must apply it)
    int next_client = 0;    ///< who starts a job now
    bool buffer_full = false; ///< aggregate the buffer (before starting next_client)
  };
  /// Commits the job that finishes next in virtual time into `round`'s buffer, if its result
  /// has arrived; nothing while it is still computing (or no job is in flight).
  [[nodiscard]] std::optional<Commit> commit_next(RoundInFlight& round);

  /// The buffer was aggregated: the global moved on one version.
  void aggregated() { ++version_; }
  [[nodiscard]] int version() const { return version_; }
  [[nodiscard]] double now() const { return timeline_.now(); }

private:
  RoundSettings settings_;
  int clients_;
  ClientClock clock_;
  AsyncTimeline timeline_;
  std::vector<int> jobs_started_;                                     ///< per client
  std::map<std::pair<int, int>, std::optional<ClientUpdate>> arrived_; ///< (client, job) → update, or none (failed)
  std::map<int, TensorMap> base_;                                    ///< the global each client's job started from
  std::set<int> idle_;                                               ///< clients not training (concurrency < clients)
  int64_t commits_ = 0;
  int version_ = 0; ///< aggregations so far: the global's version
};

} // namespace fedvlm
