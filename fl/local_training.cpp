// fl/local_training.cpp — local LoRA training and evaluation on the shared frozen base.
#include "fl/local_training.hpp"

#include "fl/interrupt.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
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
      std::move(job), settings, lora);
}

LocalTrainResult train_adapters(const BatchLoss& batch_loss, LocalTrainJob job, const TrainSettings& settings,
                                const LoraSettings& lora) {
  LocalTrainResult result;
  result.samples = static_cast<int64_t>(job.indices.size());
  if (job.indices.empty() || job.trainable.empty()) {
    result.adapters = std::move(job.adapters);
    result.optimizer_state = std::move(job.optimizer_state);
    return result;
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(job.seed);

  // Fresh leaves: the incoming tensors may be shared with a message or the aggregator.
  TensorMap params;
  for (const auto& [name, t] : job.adapters) {
    at::Tensor p = t.detach().clone();
    if (job.trainable.count(name)) p.requires_grad_(true);
    params.emplace(name, p);
  }
  ForwardContext ctx;
  ctx.adapters = &params;
  ctx.lora = lora;
  ctx.dropout_active = true;
  ctx.batchnorm_update = false; // the base is frozen, BatchNorm statistics included
  ctx.generator = gen;

  OptimizerSettings opt;
  opt.kind = settings.optimizer;
  opt.lr = settings.lr;
  opt.momentum = settings.momentum;
  opt.weight_decay = settings.weight_decay;
  opt.eps = settings.adam_eps;
  if (settings.fresh_optimizer) job.optimizer_state.clear();

  const at::Tensor all = at::tensor(job.indices, at::kLong);
  const int64_t n = all.size(0);
  double loss_sum = 0;
  const int64_t batches_per_epoch = (n + settings.batch_size - 1) / settings.batch_size;
  const int64_t total_steps = batches_per_epoch * settings.local_epochs;
  for (int epoch = 0; epoch < settings.local_epochs; ++epoch) {
    const at::Tensor order = all.index_select(0, at::randperm(n, gen, at::kLong));
    for (int64_t begin = 0; begin < n; begin += settings.batch_size) {
      throw_if_interrupted(); // Ctrl-C stops a long local epoch at the next batch
      const at::Tensor batch = order.slice(0, begin, std::min(n, begin + settings.batch_size));
      at::Tensor loss = batch_loss(batch, ctx);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) throw NonFiniteLossError(job.client, job.round, result.steps + 1, total_steps, value);
      loss_sum += value;
      if (settings.prox_mu > 0) {
        for (const auto& [name, ref] : job.prox_reference) {
          auto it = params.find(name);
          if (it != params.end() && it->second.requires_grad())
            loss = loss + (settings.prox_mu / 2.0) * (it->second - ref).pow(2).sum();
        }
      }
      for (auto& [name, p] : params)
        if (p.grad().defined()) p.mutable_grad().zero_();
      loss.backward();
      optimizer_step(params, job.trainable, job.optimizer_state, opt);
      ++result.steps;
    }
  }
  for (auto& [name, p] : params) p = p.detach();
  result.adapters = std::move(params);
  result.optimizer_state = std::move(job.optimizer_state);
  result.mean_loss = loss_sum / static_cast<double>(result.steps);
  return result;
}

EvalResult evaluate_local(const FrozenBase& base, const TensorMap& adapters,
                          const std::vector<int64_t>& indices, const LoraSettings& lora,
                          int64_t batch_size) {
  EvalResult result;
  if (indices.empty()) return result;
  at::NoGradGuard no_grad;
  ForwardContext ctx;
  ctx.adapters = &adapters;
  ctx.lora = lora;
  const at::Tensor all = at::tensor(indices, at::kLong);
  const int64_t n = all.size(0);
  std::vector<int64_t> y_true, y_pred;
  y_true.reserve(indices.size());
  y_pred.reserve(indices.size());
  double loss_sum = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    throw_if_interrupted();
    const at::Tensor batch = all.slice(0, begin, std::min(n, begin + batch_size));
    const at::Tensor logits = base.logits(batch, ctx);
    const at::Tensor labels = base.labels(batch);
    loss_sum += at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
    const at::Tensor pred = logits.argmax(1).contiguous();
    const at::Tensor lab = labels.contiguous();
    y_pred.insert(y_pred.end(), pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + pred.numel());
    y_true.insert(y_true.end(), lab.data_ptr<int64_t>(), lab.data_ptr<int64_t>() + lab.numel());
  }
  result.metrics = classification_metrics(y_true, y_pred);
  result.loss = loss_sum / static_cast<double>(n);
  return result;
}

} // namespace fedvlm
