// fl/tasks/local_training.hpp — one client's local work: train its adapters, evaluate them.
//
// Plain functions over a FrozenBase: the scheduler actor calls them, and so can tests.
#pragma once

#include "fl/tasks/adapter_optimizer.hpp"
#include "fl/tasks/classification_metrics.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/tasks/frozen_base.hpp"

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {

struct LocalTrainJob {
  TensorMap adapters;               ///< starting point (the client's own, global parts applied)
  TensorMap optimizer_state;        ///< the client's optimizer state (kept across rounds)
  std::set<std::string> trainable;  ///< adapter names this strategy lets the client change
  TensorMap prox_reference;         ///< FedProx anchor: the global tensors of this round
  std::vector<int64_t> indices;     ///< the client's training samples (pool indices)
  uint64_t seed = 0;                ///< shuffling and dropout of this job
  int client = -1;                  ///< who trains, for messages (-1: not a federated client)
  int round = -1;                   ///< which round, for messages
  /// Stop after this many optimizer steps, however many epochs that takes (batches go on in
  /// the epochs' seeded orders); 0: settings.local_epochs passes over `indices`.
  int64_t max_steps = 0;
};

/// A mini-batch's training loss came out nan or ±inf (diverged or poisoned adapters, a too
/// large learning rate). Thrown before the optimizer step, so the bad gradient never reaches
/// the adapters and aggregation cannot spread it to the other clients. what() reads
/// "client C, round R, step S of N: training loss is nan ...".
class NonFiniteLossError : public std::runtime_error {
public:
  NonFiniteLossError(int client, int round, int64_t step, int64_t steps, double loss);

  [[nodiscard]] int client() const { return client_; }
  [[nodiscard]] int round() const { return round_; }
  [[nodiscard]] int64_t step() const { return step_; } ///< 1-based, counted over all local epochs
  [[nodiscard]] double loss() const { return loss_; }

private:
  int client_;
  int round_;
  int64_t step_;
  double loss_;
};

struct LocalTrainResult {
  TensorMap adapters;
  TensorMap optimizer_state;
  double mean_loss = 0; ///< mean cross-entropy over the job's steps (without the prox term)
  int64_t samples = 0;
  int64_t steps = 0;
};

/// train_adapters with the classification cross-entropy on `base`. The base is never written.
[[nodiscard]] LocalTrainResult train_local(const FrozenBase& base, LocalTrainJob job,
                                           const TrainSettings& settings, const LoraSettings& lora);

struct EvalResult {
  ClassificationMetrics metrics;
  double loss = 0; ///< mean cross-entropy
  /// Metrics beyond classification, by name (VQA: "exact_match"); see ClientRoundRecord::task_metrics.
  std::map<std::string, double> task_metrics;
};

/// The loss of one mini-batch (pool indices) under the adapters in `ctx`.
using BatchLoss = std::function<at::Tensor(const at::Tensor& indices, const ForwardContext& ctx)>;

/// The local training loop every task shares: `settings.local_epochs` passes over
/// `job.indices` in seeded random order, `batch_loss` (+ mu/2 Σ‖w − w_ref‖² over tensors in
/// prox_reference), an optimizer step on the trainable tensors only. Throws NonFiniteLossError
/// when a batch's loss is not finite.
/// `device`: where the model that `batch_loss` runs lives; the job's tensors move there for the
/// training and the results come back on the CPU.
[[nodiscard]] LocalTrainResult train_adapters(const BatchLoss& batch_loss, LocalTrainJob job,
                                              const TrainSettings& settings, const LoraSettings& lora,
                                              c10::Device device = c10::kCPU);

/// Several clients' mini-batches in one pass: `forward` runs the model over the union of
/// their batches (dimension 0 of its output = the batch rows, in client order), `loss` is one
/// client's loss from its rows of that output and its batch's pool indices.
struct GroupedLoss {
  std::function<at::Tensor(const at::Tensor& indices, const ForwardContext& ctx)> forward;
  std::function<at::Tensor(const at::Tensor& output_rows, const at::Tensor& indices)> loss;
};

/// The classification cross-entropy on `base` (what train_local minimises), for
/// train_adapters_grouped; `base` must outlive it.
[[nodiscard]] GroupedLoss classification_loss(const FrozenBase& base);

/// True when `job` can train with others in one pass: it holds only LoRA adapters (A, B,
/// lora_delta) — a client's base copies (full fine-tuning) or a probe need their own pass.
[[nodiscard]] bool groupable(const LocalTrainJob& job);

/// train_adapters for several clients at once (scheduler.batch_clients): every step runs one
/// forward over the union of the active clients' batches (the frozen base once, each client's
/// adapters on its own rows, batched where their shapes agree: model/lora.hpp ClientRows), one
/// backward through the sum of their losses, and each client's own optimizer step. Each client
/// draws its epoch orders and dropout masks from its own generator in the same sequence as
/// alone, so the results equal one-by-one training up to float rounding (the union matmuls).
/// Clients with fewer steps drop out of later passes. Throws std::invalid_argument for a job
/// that is not groupable(); NonFiniteLossError as train_adapters.
[[nodiscard]] std::vector<LocalTrainResult> train_adapters_grouped(const GroupedLoss& grouped,
                                                                   std::vector<LocalTrainJob> jobs,
                                                                   const TrainSettings& settings,
                                                                   const LoraSettings& lora,
                                                                   c10::Device device = c10::kCPU);

/// True when `job` holds whole tensors of its own rather than LoRA adapters — a linear probe
/// ("probe.weight", "probe.bias") or copies of base tensors (full fine-tuning) — and has
/// something to train: what train_stacked may run with others.
[[nodiscard]] bool stackable(const LocalTrainJob& job);

/// Full fine-tuning and linear probes of several clients at once (scheduler.batch_clients on
/// the small models): each step stacks the active clients' own tensors on a leading dimension
/// and runs them in one pass (FrozenBase::stacked_logits: grouped convolutions, batched
/// matmuls), one backward through the sum of their losses, then each client's own optimizer
/// step. Clients whose current batch has the same number of rows share a pass; each draws its
/// epoch orders and dropout masks from its own generator in the same sequence as alone, so the
/// results equal train_local one by one up to float rounding. Throws std::invalid_argument when
/// a job is not stackable(), the jobs hold different tensor names, or `base` cannot stack them
/// (FrozenBase::can_stack); NonFiniteLossError as train_adapters.
[[nodiscard]] std::vector<LocalTrainResult> train_stacked(const FrozenBase& base, std::vector<LocalTrainJob> jobs,
                                                          const TrainSettings& settings);

/// Eval mode (no dropout, BatchNorm running statistics), no autograd.
[[nodiscard]] EvalResult evaluate_local(const FrozenBase& base, const TensorMap& adapters,
                                        const std::vector<int64_t>& indices,
                                        const LoraSettings& lora, int64_t batch_size);

/// Whole batches of one evaluation: what it takes to give evaluate_local's result over several
/// workers' parts exactly (per-sample labels and predictions, each batch's summed loss in order).
struct EvalPart {
  std::vector<int64_t> y_true, y_pred;
  std::vector<double> batch_loss_sums;
};

/// evaluate_local over `indices` as whole batches of `batch_size`, before combining.
[[nodiscard]] EvalPart evaluate_local_part(const FrozenBase& base, const TensorMap& adapters,
                                           const std::vector<int64_t>& indices, const LoraSettings& lora,
                                           int64_t batch_size);

/// The parts of one evaluation, in order, combined: bit for bit evaluate_local's result over their
/// union (the metrics over every prediction; the loss sums added batch by batch in the same order).
[[nodiscard]] EvalResult combine_eval_parts(const std::vector<EvalPart>& parts);

/// `indices` cut into at most `parts` consecutive runs of whole batches of `batch_size` (the last
/// run may end with a short batch), as even as whole batches allow: evaluating the runs apart
/// computes the very batches one evaluation of all of them computes. Fewer runs than `parts`
/// when there are fewer batches; none for no indices.
[[nodiscard]] std::vector<std::vector<int64_t>> whole_batch_runs(const std::vector<int64_t>& indices, int64_t batch_size,
                                                                 int parts);


} // namespace fedvlm
