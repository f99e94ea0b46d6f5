// fl/federation/holdout.hpp — new clients that never trained: what one receives, its adaptation, its scores before and after.
//
// evaluation.holdout_clients keeps the partition's last N clients out of training and
// selection. After the rounds evaluation.holdout_every names, each is what a client joining
// the federation would be: the global shared tensors, and the private factors a client starts
// with (initial_adapters: pLoRA's own A, FedSA's B = 0, ...) — then scored on its own test split
// before and after evaluation.adapt_steps local steps on its own training split. Its adapted
// state is thrown away: it never trains in the federation. The aggregator asks the scheduler
// for evaluate_newcomer once per holdout client; these functions need no actor system.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/federation/client_round.hpp"
#include "fl/federation/run_setup.hpp"
#include "fl/results/run_records.hpp"
#include "fl/tasks/federated_task.hpp"
#include "model/tensor_map.hpp"

#include <cstdint>
#include <limits>
#include <vector>

namespace fedvlm {

/// A client that never trains: its settings (split, strategy, seed) and the adapters it would
/// start a run with (its fresh private factors).
struct HoldoutClient {
  ClientSettings settings;
  TensorMap fresh;
};

/// The run's holdout clients (ids training_clients(config) onwards), from the set-up's
/// holdout splits; `setup` must be prepared in execute mode (initial_adapters needs the task
/// for full fine-tuning and the linear probe).
[[nodiscard]] std::vector<HoldoutClient> holdout_clients(const ExperimentConfig& config, const RunSetup& setup);

/// Whether the holdout clients are scored after `round` of `total_rounds`: round 0 (before any
/// training), every `every`-th round, and the last.
[[nodiscard]] bool holdout_due(int round, int every, int total_rounds);

/// What a new client holds: `fresh` with every tensor of `global` put in its place.
[[nodiscard]] TensorMap newcomer_adapters(const TensorMap& fresh, const TensorMap& global);

/// One new client's scoring after `round`: `start` trains (what the strategy trains, from
/// newcomer_adapters, a fresh optimizer, its training split) for `adapt_steps` steps; `test`
/// are the pool indices it is scored on.
struct NewcomerJob {
  LocalTrainJob start;
  int adapt_steps = 0;
  std::vector<int64_t> test;
};

/// The job for `client` after `round`, whose global shared tensors are `global`.
[[nodiscard]] NewcomerJob newcomer_job(const HoldoutClient& client, const TensorMap& global, int adapt_steps, int round);

/// A new client's scores on its test split: with what it received, and after adapting.
struct NewcomerScore {
  int client = 0;
  int round = 0;
  EvalResult before;
  EvalResult after;
};

/// The adapters after `job.adapt_steps` local steps (max_steps); `job.start.adapters` as they
/// are when 0 or nothing is trainable.
[[nodiscard]] TensorMap adapt_newcomer(const FederatedTask& task, const NewcomerJob& job, const TrainSettings& train,
                                       const LoraSettings& lora);

/// Scores `job`'s client before and after adapt_newcomer (after = before when adapt_steps is
/// 0: no second pass). Throws what the task's training and evaluation throw.
[[nodiscard]] NewcomerScore evaluate_newcomer(const FederatedTask& task, const NewcomerJob& job, const TrainSettings& train,
                                              const LoraSettings& lora);

/// The mean accuracies of `scores` before and after adaptation, into the round's summary
/// (holdout_accuracy, holdout_adapted_accuracy); NaN stays when there are none.
void summarize_holdout(const std::vector<NewcomerScore>& scores, RoundSummary& summary);

} // namespace fedvlm
