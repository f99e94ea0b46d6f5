// fl/tasks/local_training.cpp — local LoRA training and evaluation on the shared frozen base.
#include "fl/tasks/local_training.hpp"

#include "fl/tasks/evaluation_pass.hpp"

#include "fl/runtime/interrupt.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace fedvlm {

namespace {

std::string non_finite_loss_message(int client, int round, int64_t step, int64_t steps, double loss) {
  const std::string who = client < 0 ? "local training" : "client " + std::to_string(client);
  const std::string when = round < 0 ? "" : ", round " + std::to_string(round);
  const std::string value = std::isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf";
  return who + when + ", step " + std::to_string(step) + " of " + std::to_string(steps) + ": training loss is " +
         value + " (the adapters or the model weights hold non-finite values, or the learning rate is too large)";
}

} // namespace

NonFiniteLossError::NonFiniteLossError(int client, int round, int64_t step, int64_t steps, double loss)
    : std::runtime_error(non_finite_loss_message(client, round, step, steps, loss)),
      client_(client), round_(round), step_(step), loss_(loss) {}

LocalTrainResult train_local(const FrozenBase& base, LocalTrainJob job, const TrainSettings& settings,
                             const LoraSettings& lora) {
  return train_adapters(
      [&base](const at::Tensor& batch, const ForwardContext& ctx) {
        return at::cross_entropy_loss(base.logits(batch, ctx), base.labels(batch));
      },
      std::move(job), settings, lora, base.device());
}

namespace {

/// One client's local training as a sequence of steps: its parameters, generator, epoch
/// order and counters. The single and the grouped loops both drive it, so a client's random
/// draws (each epoch's order, then its dropout masks) come in the same sequence either way.
class ClientTrainer {
public:
  /// `device`: where the task's model runs; the job's tensors move there and back.
  ClientTrainer(LocalTrainJob job, const TrainSettings& settings, c10::Device device)
      : job_(std::move(job)), settings_(settings), gen_(at::make_generator<at::CPUGeneratorImpl>(job_.seed)) {
    // Fresh leaves: the incoming tensors may be shared with a message or the aggregator.
    for (const auto& [name, t] : job_.adapters) {
      at::Tensor p = t.device() == device ? t.detach().clone() : t.detach().to(device); // a copy either way
      if (job_.trainable.count(name)) p.requires_grad_(true);
      params_.emplace(name, p);
    }
    if (settings.fresh_optimizer) job_.optimizer_state.clear();
    job_.optimizer_state = tensor_map_to(job_.optimizer_state, device);
    job_.prox_reference = tensor_map_to(job_.prox_reference, device);
    all_ = at::tensor(job_.indices, at::kLong);
    n_ = all_.size(0);
    batch_ = settings.batch_size > 0 ? settings.batch_size : std::max<int64_t>(n_, 1); // 0: FedSGD's B = ∞
    total_steps_ = job_.max_steps > 0 ? job_.max_steps : (n_ + batch_ - 1) / batch_ * settings.local_epochs;
  }

  [[nodiscard]] bool done() const { return steps_ == total_steps_; }
  [[nodiscard]] at::Generator& generator() { return gen_; }
  [[nodiscard]] const TensorMap& params() const { return params_; }

  /// The next mini-batch (pool indices); each epoch starts with a fresh order.
  at::Tensor next_batch() {
    if (begin_ == 0) order_ = all_.index_select(0, at::randperm(n_, gen_, at::kLong));
    const at::Tensor batch = order_.slice(0, begin_, std::min(n_, begin_ + batch_));
    begin_ += batch_;
    if (begin_ >= n_) begin_ = 0;
    return batch;
  }

  /// Checks the batch loss, records it and adds the FedProx term.
  at::Tensor objective(const at::Tensor& loss) {
    const double value = loss.item<double>();
    if (!std::isfinite(value)) throw NonFiniteLossError(job_.client, job_.round, steps_ + 1, total_steps_, value);
    loss_sum_ += value;
    at::Tensor out = loss;
    if (settings_.prox_mu > 0)
      for (const auto& [name, ref] : job_.prox_reference) {
        auto it = params_.find(name);
        if (it != params_.end() && it->second.requires_grad())
          out = out + (settings_.prox_mu / 2.0) * (it->second - ref).pow(2).sum();
      }
    return out;
  }

  void zero_grad() {
    for (auto& [name, p] : params_)
      if (p.grad().defined()) p.mutable_grad().zero_();
  }

  void step(const OptimizerSettings& opt) {
    optimizer_step(params_, job_.trainable, job_.optimizer_state, opt);
    ++steps_;
  }

  LocalTrainResult finish() {
    LocalTrainResult result;
    result.samples = n_;
    // Back on the CPU, where messages, aggregation and checkpoints work.
    for (auto& [name, p] : params_) p = p.detach().to(at::kCPU);
    job_.optimizer_state = tensor_map_to(job_.optimizer_state, at::kCPU);
    result.adapters = std::move(params_);
    result.optimizer_state = std::move(job_.optimizer_state);
    result.steps = steps_;
    result.mean_loss = loss_sum_ / static_cast<double>(steps_);
    return result;
  }

private:
  LocalTrainJob job_;
  TrainSettings settings_;
  at::Generator gen_;
  TensorMap params_;
  at::Tensor all_, order_;
  int64_t n_ = 0, batch_ = 1, begin_ = 0, steps_ = 0, total_steps_ = 0;
  double loss_sum_ = 0;
};

OptimizerSettings optimizer_settings(const TrainSettings& settings) {
  OptimizerSettings opt;
  opt.kind = settings.optimizer;
  opt.lr = settings.lr;
  opt.momentum = settings.momentum;
  opt.weight_decay = settings.weight_decay;
  opt.eps = settings.adam_eps;
  return opt;
}

/// Nothing to train: the job's state comes back as it went in.
LocalTrainResult untouched(LocalTrainJob& job) {
  LocalTrainResult result;
  result.samples = static_cast<int64_t>(job.indices.size());
  result.adapters = std::move(job.adapters);
  result.optimizer_state = std::move(job.optimizer_state);
  return result;
}


/// The trainers (by index) whose epochs are not over: the clients a grouped or stacked step serves.
std::vector<std::size_t> unfinished(const std::vector<std::unique_ptr<ClientTrainer>>& trainers) {
  std::vector<std::size_t> active;
  for (std::size_t k = 0; k < trainers.size(); ++k)
    if (!trainers[k]->done()) active.push_back(k);
  return active;
}
} // namespace

GroupedLoss classification_loss(const FrozenBase& base) {
  return {[&base](const at::Tensor& indices, const ForwardContext& ctx) { return base.logits(indices, ctx); },
          [&base](const at::Tensor& logits, const at::Tensor& indices) {
            return at::cross_entropy_loss(logits, base.labels(indices));
          }};
}

LocalTrainResult train_adapters(const BatchLoss& batch_loss, LocalTrainJob job, const TrainSettings& settings,
                                const LoraSettings& lora, c10::Device device) {
  if (job.indices.empty() || job.trainable.empty()) return untouched(job);
  ClientTrainer trainer(std::move(job), settings, device);
  ForwardContext ctx;
  ctx.adapters = &trainer.params();
  ctx.lora = lora;
  ctx.dropout_active = true;
  ctx.batchnorm_update = false; // the base is frozen, BatchNorm statistics included
  ctx.generator = trainer.generator();
  const OptimizerSettings opt = optimizer_settings(settings);
  while (!trainer.done()) {
    throw_if_interrupted(); // Ctrl-C stops a long local epoch at the next batch
    const at::Tensor batch = trainer.next_batch();
    at::Tensor loss = trainer.objective(batch_loss(batch, ctx));
    trainer.zero_grad();
    loss.backward();
    trainer.step(opt);
  }
  return trainer.finish();
}

bool groupable(const LocalTrainJob& job) {
  for (const auto& [name, t] : job.adapters) {
    const bool adapter = ends_with(name, kLoraA) || ends_with(name, kLoraB) || ends_with(name, kLoraDelta);
    if (!adapter) return false;
  }
  return !job.indices.empty() && !job.trainable.empty();
}

std::vector<LocalTrainResult> train_adapters_grouped(const GroupedLoss& grouped, std::vector<LocalTrainJob> jobs,
                                                     const TrainSettings& settings, const LoraSettings& lora,
                                                     c10::Device device) {
  std::vector<LocalTrainResult> results(jobs.size());
  std::vector<std::unique_ptr<ClientTrainer>> trainers(jobs.size());
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    if (!groupable(jobs[k]))
      throw std::invalid_argument("train_adapters_grouped: client " + std::to_string(jobs[k].client) +
                                  "'s job holds more than LoRA adapters (base copies or a probe) or nothing to train");
    trainers[k] = std::make_unique<ClientTrainer>(std::move(jobs[k]), settings, device);
  }
  const OptimizerSettings opt = optimizer_settings(settings);
  for (;;) {
    throw_if_interrupted();
    const std::vector<std::size_t> active = unfinished(trainers);
    if (active.empty()) break;
    ClientRows rows;
    std::vector<at::Tensor> batches;
    for (std::size_t k : active) {
      batches.push_back(trainers[k]->next_batch());
      rows.adapters.push_back(&trainers[k]->params());
      rows.rows.push_back(batches.back().size(0));
      rows.generators.push_back(trainers[k]->generator());
    }
    ForwardContext ctx;
    ctx.lora = lora;
    ctx.dropout_active = true;
    ctx.batchnorm_update = false;
    ctx.clients = &rows;
    const at::Tensor out = grouped.forward(at::cat(batches, 0), ctx);
    const std::vector<at::Tensor> parts = split_client_rows(out, rows);
    at::Tensor total;
    for (std::size_t i = 0; i < active.size(); ++i) {
      const at::Tensor loss = trainers[active[i]]->objective(grouped.loss(parts[i], batches[i]));
      total = total.defined() ? total + loss : loss;
    }
    for (std::size_t k : active) trainers[k]->zero_grad();
    total.backward(); // each client's parameters get the gradient of its own loss only
    for (std::size_t k : active) trainers[k]->step(opt);
  }
  for (std::size_t k = 0; k < trainers.size(); ++k) results[k] = trainers[k]->finish();
  return results;
}

bool stackable(const LocalTrainJob& job) {
  if (job.indices.empty() || job.trainable.empty() || job.adapters.empty()) return false;
  for (const auto& [name, t] : job.adapters) {
    const bool adapter = ends_with(name, kLoraA) || ends_with(name, kLoraB) || ends_with(name, kLoraDelta);
    if (adapter) return false;
  }
  return true;
}

std::vector<LocalTrainResult> train_stacked(const FrozenBase& base, std::vector<LocalTrainJob> jobs,
                                            const TrainSettings& settings) {
  std::vector<std::unique_ptr<ClientTrainer>> trainers(jobs.size());
  std::vector<std::string> first_names; // jobs[0] moves into its trainer before the others are checked
  if (!jobs.empty())
    for (const auto& [name, t] : jobs[0].adapters) first_names.push_back(name);
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    const bool same_names = std::equal(jobs[k].adapters.begin(), jobs[k].adapters.end(), first_names.begin(),
                                       first_names.end(), [](const auto& a, const std::string& b) { return a.first == b; });
    if (!stackable(jobs[k]) || !same_names || !base.can_stack(jobs[k].adapters))
      throw std::invalid_argument("train_stacked: client " + std::to_string(jobs[k].client) +
                                  "'s job cannot run stacked with the others (it holds LoRA adapters, other tensors "
                                  "than the first job, or tensors this model cannot stack)");
    trainers[k] = std::make_unique<ClientTrainer>(std::move(jobs[k]), settings, base.device());
  }
  const OptimizerSettings opt = optimizer_settings(settings);
  for (;;) {
    throw_if_interrupted();
    const std::vector<std::size_t> active = unfinished(trainers);
    if (active.empty()) break;
    // Every client's next batch first (its epoch order comes before its dropout masks, as alone).
    std::vector<at::Tensor> batches;
    std::map<int64_t, std::vector<std::size_t>> by_rows; // a stacked pass needs equal batch rows
    for (std::size_t i = 0; i < active.size(); ++i) {
      batches.push_back(trainers[active[i]]->next_batch());
      by_rows[batches.back().size(0)].push_back(i);
    }
    std::vector<at::Tensor> losses(active.size());
    for (const auto& [rows, members] : by_rows) {
      std::vector<at::Tensor> indices;
      std::vector<const TensorMap*> tensors;
      std::vector<at::Generator> generators;
      for (std::size_t i : members) {
        indices.push_back(batches[i]);
        tensors.push_back(&trainers[active[i]]->params());
        generators.push_back(trainers[active[i]]->generator());
      }
      const at::Tensor logits = base.stacked_logits(indices, tensors, /*dropout_active=*/true, generators);
      for (std::size_t j = 0; j < members.size(); ++j)
        losses[members[j]] = at::cross_entropy_loss(logits[static_cast<int64_t>(j)], base.labels(indices[j]));
    }
    at::Tensor total;
    for (std::size_t i = 0; i < active.size(); ++i) {
      const at::Tensor loss = trainers[active[i]]->objective(losses[i]);
      total = total.defined() ? total + loss : loss;
    }
    for (std::size_t k : active) trainers[k]->zero_grad();
    total.backward(); // each client's tensors get the gradient of its own loss only
    for (std::size_t k : active) trainers[k]->step(opt);
  }
  std::vector<LocalTrainResult> results(trainers.size());
  for (std::size_t k = 0; k < trainers.size(); ++k) results[k] = trainers[k]->finish();
  return results;
}

EvalPart evaluate_local_part(const FrozenBase& base, const TensorMap& adapters, const std::vector<int64_t>& indices,
                             const LoraSettings& lora, int64_t batch_size) {
  EvalPart part;
  if (indices.empty()) return part;
  const EvaluationPass pass(adapters, lora, base.device());
  part.y_true.reserve(indices.size());
  part.y_pred.reserve(indices.size());
  pass.for_each_batch(indices, batch_size, at::kCPU, [&](const at::Tensor& batch) {
    const at::Tensor logits = base.logits(batch, pass.context());
    const at::Tensor labels = base.labels(batch);
    part.batch_loss_sums.push_back(at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>());
    append_ids(part.y_pred, logits.argmax(1));
    append_ids(part.y_true, labels);
  });
  return part;
}

EvalResult combine_eval_parts(const std::vector<EvalPart>& parts) {
  EvalResult result;
  std::vector<int64_t> y_true, y_pred;
  double loss_sum = 0;
  for (const EvalPart& p : parts) {
    y_true.insert(y_true.end(), p.y_true.begin(), p.y_true.end());
    y_pred.insert(y_pred.end(), p.y_pred.begin(), p.y_pred.end());
    for (double s : p.batch_loss_sums) loss_sum += s; // batch by batch, as one pass adds them
  }
  if (y_true.empty()) return result;
  result.metrics = classification_metrics(y_true, y_pred);
  result.loss = loss_sum / static_cast<double>(y_true.size());
  return result;
}

EvalResult evaluate_local(const FrozenBase& base, const TensorMap& adapters, const std::vector<int64_t>& indices,
                          const LoraSettings& lora, int64_t batch_size) {
  return combine_eval_parts({evaluate_local_part(base, adapters, indices, lora, batch_size)});
}

std::vector<std::vector<int64_t>> whole_batch_runs(const std::vector<int64_t>& indices, int64_t batch_size, int parts) {
  if (batch_size < 1 || parts < 1)
    throw std::invalid_argument("whole_batch_runs: batch size " + std::to_string(batch_size) + " and parts " +
                                std::to_string(parts) + " must be >= 1");
  const auto n = static_cast<int64_t>(indices.size());
  const int64_t batches = (n + batch_size - 1) / batch_size;
  const int64_t runs = std::min<int64_t>(parts, batches);
  std::vector<std::vector<int64_t>> out;
  int64_t first_batch = 0;
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t count = batches / runs + (r < batches % runs ? 1 : 0);
    const int64_t begin = first_batch * batch_size, end = std::min(n, (first_batch + count) * batch_size);
    out.emplace_back(indices.begin() + begin, indices.begin() + end);
    first_batch += count;
  }
  return out;
}

} // namespace fedvlm
