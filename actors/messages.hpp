// actors/messages.hpp — the atoms and message types the client, aggregator and scheduler exchange.
//
// Every message has a CAF inspect() field list (tensors through model/tensor_wire.hpp: dtype,
// shape, raw bytes), so each one can cross a process boundary; actors/message_types.hpp names
// them for CAF's middleman. Inside one process nothing is serialized: CAF moves messages
// copy-on-write, so a round's B matrices are never copied on the way.
#pragma once

#include "fl/federation/client_exchange.hpp"
#include "fl/federation/holdout.hpp"
#include "fl/tasks/local_training.hpp"
#include "model/tensor_map.hpp"
#include "model/tensor_wire.hpp"

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <limits>

namespace fedvlm {

using start_atom = caf::atom_constant<caf::atom("start")>;
using train_atom = caf::atom_constant<caf::atom("train")>;
using eval_atom = caf::atom_constant<caf::atom("eval")>;
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
/// Aggregator → client on a node (serve): (save_atom, round) — write your private state after
/// `round` into the node's own directory; answers whether it was written (false: the node has no
/// --state directory).
using save_atom = caf::atom_constant<caf::atom("save")>;
/// Server → client on a node (serve, rolling back after a lost node): (restore_atom, round) —
/// take back your private state saved after `round` (round 0: your state when spawned); answers
/// whether the node had it. Answers of trainings begun before are dropped.
using restore_atom = caf::atom_constant<caf::atom("restore")>;
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
/// Registry → aggregator: (rejoin_atom, ids, actors) — a node took over these lost clients; they
/// are asked again from the next round on.
using rejoin_atom = caf::atom_constant<caf::atom("rejoin")>;

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

/// Scheduler → worker: whole batches of a large evaluation spread over the workers (EvalPart back).
struct EvalPartMsg {
  EvalJobMsg job;
};

/// Driver ← aggregator: the run is over.
struct RunDone {
  int rounds_completed = 0;
  int rounds_without_quorum = 0;
  std::string note;                ///< why the run ended before federation.rounds (a privacy budget), clients a
                                   ///< served resume started again, or empty
  TensorMap global;                ///< the last aggregated shared matrices (empty for local)
  std::vector<TensorMap> adapters; ///< each client's final adapters, by client id (empty when they stay on nodes)
};

/// Aggregator ← client (snapshot_atom): a copy of the client's private state after a round.
struct AdapterSnapshot {
  int client = 0;
  TensorMap adapters;
  TensorMap optimizer_state;
  TensorMap residual; ///< compression.up = "topk": what its updates have not sent yet
};

// -- field lists (CAF 0.17 inspect: the order is the wire format) -------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, LocalTrainJob& x) {
  return f(caf::meta::type_name("LocalTrainJob"), x.adapters, x.optimizer_state, x.trainable, x.prox_reference,
           x.indices, x.seed, x.client, x.round, x.max_steps);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, LocalTrainResult& x) {
  return f(caf::meta::type_name("LocalTrainResult"), x.adapters, x.optimizer_state, x.mean_loss, x.samples, x.steps);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainJobMsg& x) {
  return f(caf::meta::type_name("TrainJobMsg"), x.client, x.round, x.job);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainDoneMsg& x) {
  return f(caf::meta::type_name("TrainDoneMsg"), x.result);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainGroupMsg& x) {
  return f(caf::meta::type_name("TrainGroupMsg"), x.jobs);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainGroupDoneMsg& x) {
  return f(caf::meta::type_name("TrainGroupDoneMsg"), x.results);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EvalJobMsg& x) {
  return f(caf::meta::type_name("EvalJobMsg"), x.client, x.round, x.adapters, x.indices);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EvalPartMsg& x) {
  return f(caf::meta::type_name("EvalPartMsg"), x.job);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EvalPart& x) {
  return f(caf::meta::type_name("EvalPart"), x.y_true, x.y_pred, x.batch_loss_sums);
}

/// Aggregator → scheduler: NewcomerJob → NewcomerScore (evaluation.holdout_clients).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NewcomerJob& x) {
  return f(caf::meta::type_name("NewcomerJob"), x.start, x.adapt_steps, x.test);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NewcomerScore& x) {
  return f(caf::meta::type_name("NewcomerScore"), x.client, x.round, x.before, x.after);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RunDone& x) {
  return f(caf::meta::type_name("RunDone"), x.rounds_completed, x.rounds_without_quorum, x.note, x.global, x.adapters);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AdapterSnapshot& x) {
  return f(caf::meta::type_name("AdapterSnapshot"), x.client, x.adapters, x.optimizer_state, x.residual);
}

/// A client as the aggregator sees it, in this process or on a node across the network; CAF
/// checks this interface when a node's clients are handed to the server.
using client_actor = caf::typed_actor<
    // A round: train from the adapters as the last evaluation left them; the shared update.
    caf::replies_to<train_atom, int>::with<ClientUpdate>,
    // The round's download (merged by apply_download), then evaluate on the own test split.
    caf::replies_to<eval_atom, GlobalDown>::with<ClientEval>,
    // Asynchronous mode: train job `job` from `latest`; its result waits for (commit_atom, job).
    caf::replies_to<async_train_atom, int, GlobalDown>::with<ClientUpdate>, caf::reacts_to<commit_atom, int>,
    // A copy of its private state (one process only: never asked of a client on a node).
    caf::replies_to<snapshot_atom>::with<AdapterSnapshot>,
    // On a node: save its private state after this round where the node keeps it.
    caf::replies_to<save_atom, int>::with<bool>,
    // On a node: take back its private state saved after this round (the run rolls back).
    caf::replies_to<restore_atom, int>::with<bool>>;

/// The device scheduler as clients and the aggregator see it (actors/scheduler_actor.hpp): a
/// training or an evaluation job, a new client's score (evaluation.holdout_clients), answered when a worker ran it; a round's training order, so
/// scheduler.batch_clients groups never depend on arrival order; and its own flush of a round's
/// groups that waited too long.
using scheduler_actor = caf::typed_actor<caf::replies_to<TrainJobMsg>::with<TrainDoneMsg>,
                                         caf::replies_to<EvalJobMsg>::with<EvalResult>,
                                         caf::replies_to<NewcomerJob>::with<NewcomerScore>,
                                         caf::reacts_to<plan_atom, int, std::vector<int>>,
                                         caf::reacts_to<flush_atom, int>>;

} // namespace fedvlm
