// actors/messages.hpp — the atoms and message types the client, aggregator and scheduler exchange.
//
// Payloads carry tensors (at::Tensor), which CAF cannot serialize: they are whitelisted for
// in-process messaging only. Inside one process CAF moves messages copy-on-write, so a round's
// B matrices are never copied on the way.
#pragma once

#include "fl/local_training.hpp"
#include "model/tensor_map.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <cstdint>

namespace fedvlm {

using start_atom = caf::atom_constant<caf::atom("start")>;
using train_atom = caf::atom_constant<caf::atom("train")>;
using eval_atom = caf::atom_constant<caf::atom("eval")>;
using late_atom = caf::atom_constant<caf::atom("late")>;
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
/// Aggregator → client, asynchronous mode: (async_train_atom, job, GlobalDown latest) starts a
/// local training from the latest global; its result waits until (commit_atom, job) says the
/// virtual clock reached its end.
using async_train_atom = caf::atom_constant<caf::atom("atrain")>;
using commit_atom = caf::atom_constant<caf::atom("commit")>;
/// Driver → aggregator: a stop signal arrived; answer the start request with an error now.
using interrupt_atom = caf::atom_constant<caf::atom("interrupt")>;
/// Aggregator → scheduler: (plan_atom, round, clients) — the clients that will send a training
/// job this round, in order; the scheduler groups them in consecutive chunks of batch_clients,
/// so a client's group never depends on the order in which jobs arrive.
using plan_atom = caf::atom_constant<caf::atom("plan")>;
/// Scheduler → itself: (flush_atom, round) — run the round's incomplete groups as they are.
using flush_atom = caf::atom_constant<caf::atom("flush")>;

/// Aggregator → client: the round's aggregated shared matrices (empty when nothing travels).
struct GlobalDown {
  int round = 0;
  TensorMap tensors;
  int64_t bytes = 0;
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
};

/// Client → scheduler: train these adapters on the shared frozen base.
struct TrainJobMsg {
  int client = 0;
  int round = 0;
  LocalTrainJob job;
};
struct TrainDoneMsg {
  LocalTrainResult result;
};
/// Scheduler → worker: several clients' trainings in one pass (scheduler.batch_clients).
struct TrainGroupMsg {
  std::vector<TrainJobMsg> jobs;
};
struct TrainGroupDoneMsg {
  std::vector<LocalTrainResult> results; ///< in job order
};

/// Client → scheduler: evaluate these adapters.
struct EvalJobMsg {
  int client = 0;
  int round = 0;
  TensorMap adapters;
  std::vector<int64_t> indices;
};

/// Driver ← aggregator: the run is over.
struct RunDone {
  int rounds_completed = 0;
  int rounds_without_quorum = 0;
  std::string note;                ///< why the run ended before federation.rounds (a privacy budget), or empty
  TensorMap global;                ///< the last aggregated shared matrices (empty for local)
  std::vector<TensorMap> adapters; ///< each client's final adapters, by client id
};

/// Aggregator ← client (snapshot_atom): a copy of the client's private state after a round.
struct AdapterSnapshot {
  int client = 0;
  TensorMap adapters;
  TensorMap optimizer_state;
};

} // namespace fedvlm

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::GlobalDown)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::ClientUpdate)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::ClientEval)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::TrainJobMsg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::TrainDoneMsg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::TrainGroupMsg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::TrainGroupDoneMsg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::EvalJobMsg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::EvalResult)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::RunDone)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedvlm::AdapterSnapshot)
