// fl/federation/async_federation.hpp — FedBuff on a virtual clock: staleness weights, client durations, the event order, the buffered update.
//
// In asynchronous mode clients train continuously and the server aggregates every
// `buffer_size` updates (FedBuff, Nguyen et al. 2022). Time is simulated: each local training
// takes a virtual duration drawn from the client's own streams, and updates are committed in
// virtual-time order (ties by client id), never in the order the actors happen to finish. So an
// async run is as reproducible as a synchronous one, and a simulated hour takes the wall time of
// its computation only. Everything here is plain math the aggregator actor calls.
#pragma once

#include "fl/aggregation/aggregate.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/federation/virtual_clock.hpp"
#include "model/tensor_map.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace fedvlm {

/// g(s): how much an update computed s versions ago counts (1 for s = 0).
[[nodiscard]] double staleness_weight(const FederationSettings& federation, int staleness);

/// Updates per aggregation: buffer_size, or half the clients (at least one) when it is 0.
[[nodiscard]] int effective_buffer_size(const FederationSettings& federation);

/// One local training in flight, from its start to its virtual end.
struct AsyncJob {
  int client = 0;
  int job = 0;        ///< the client's job counter (1, 2, ...): keys its random streams
  int version = 0;    ///< the global model version it started from
  double end = 0;     ///< virtual time it finishes
};

/// The jobs in flight, ordered by virtual end time, ties by client id.
class AsyncTimeline {
public:
  void start(const AsyncJob& job);
  /// The job that finishes next, if any.
  [[nodiscard]] std::optional<AsyncJob> next() const;
  /// Removes and returns next(); the virtual clock moves to its end. Throws std::logic_error when empty.
  AsyncJob pop();
  [[nodiscard]] double now() const { return now_; }
  [[nodiscard]] bool empty() const { return jobs_.empty(); }
  [[nodiscard]] std::size_t size() const { return jobs_.size(); }

private:
  std::map<std::pair<double, int>, AsyncJob> jobs_;
  double now_ = 0;
};

/// One committed update in the buffer: what the client sent, and the global it started from.
struct BufferedUpdate {
  int client = 0;
  int64_t samples = 0;
  int staleness = 0;       ///< versions the global moved on while the client trained
  const TensorMap* sent = nullptr;
  const TensorMap* base = nullptr;
};

/// FedBuff's server step: global + η · Σ_k p_k g(s_k) (sent_k − base_k), with p_k the FedAvg
/// weights within the buffer (fedavg_weight) and g the staleness weight. Summed in float64 in
/// buffer order (the order of commitment, which is deterministic), cast back to each tensor's
/// dtype. Throws std::invalid_argument when the buffer is empty, or a tensor is missing or of
/// another shape in a sent, base or the global.
[[nodiscard]] TensorMap fedbuff_step(const TensorMap& global, const std::vector<BufferedUpdate>& buffer,
                                     const FederationSettings& federation);

} // namespace fedvlm
