// fl/federation/client_exchange.hpp — what a client and the server exchange in a round: the download, the update, the evaluation.
//
// Plain data with CAF 0.17 inspect() field lists (the order is the wire format), so the round
// logic (fl/federation/round.hpp) works on them without an actor system and the actors
// (actors/messages.hpp) send them as they are.
#pragma once

#include "fl/tasks/local_training.hpp"
#include "model/tensor_map.hpp"
#include "model/tensor_wire.hpp"

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <limits>

namespace fedvlm {

/// Aggregator → client: the round's aggregated shared matrices (empty when nothing travels).
struct GlobalDown {
  int round = 0;
  TensorMap tensors;
  int64_t bytes = 0;
  /// With the end-of-round broadcast: evaluate after merging it; false (not in this round's
  /// evaluation.clients_sample) only merges it and answers a ClientEval with evaluated = false.
  bool evaluate = true;
};

/// Client → aggregator: the matrices this strategy shares, after local training.
struct ClientUpdate {
  int client = 0;
  int round = 0;
  int64_t samples = 0;  ///< local training samples (the FedAvg weight)
  TensorMap tensors;    ///< named shared matrices, e.g. "classifier.3.lora_B"
  int64_t bytes = 0;    ///< what would cross the network
  double train_loss = 0;
  double delay_seconds = 0; ///< a simulated straggler held its answer back this long
  /// The client's whole adapters with the shared parts as sent: what the aggregation-error
  /// metric measures. Simulator bookkeeping, not counted in `bytes`.
  TensorMap measured;
};

/// Client → aggregator: metrics on the client's own test split.
struct ClientEval {
  int client = 0;
  int round = 0;
  EvalResult result;
  int64_t test_samples = 0;
  int64_t train_samples = 0;
  /// A client that keeps its factors to itself (on a node) and trained this round, under a
  /// personalised strategy: its drift, measured by itself from its download; NaN otherwise.
  double drift = std::numeric_limits<double>::quiet_NaN();
  /// False: the client merged the round's download but was not asked to evaluate (no metrics).
  bool evaluated = true;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ClassificationMetrics& x) {
  return f(caf::meta::type_name("ClassificationMetrics"), x.accuracy, x.macro_precision, x.macro_recall, x.macro_f1,
           x.count);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EvalResult& x) {
  return f(caf::meta::type_name("EvalResult"), x.metrics, x.loss, x.task_metrics);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, GlobalDown& x) {
  return f(caf::meta::type_name("GlobalDown"), x.round, x.tensors, x.bytes, x.evaluate);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ClientUpdate& x) {
  return f(caf::meta::type_name("ClientUpdate"), x.client, x.round, x.samples, x.tensors, x.bytes, x.train_loss,
           x.delay_seconds, x.measured);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ClientEval& x) {
  return f(caf::meta::type_name("ClientEval"), x.client, x.round, x.result, x.test_samples, x.train_samples, x.drift,
           x.evaluated);
}

} // namespace fedvlm
