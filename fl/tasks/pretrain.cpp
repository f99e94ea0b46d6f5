// fl/tasks/pretrain.cpp — plain supervised training of all weights with the adapter optimizer.
#include "fl/tasks/pretrain.hpp"

#include "fl/tasks/adapter_optimizer.hpp"
#include "fl/runtime/interrupt.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <set>
#include <stdexcept>

namespace fedvlm {

void recalibrate_batchnorm(ImageClassifier& model, const ImageDataset& data, int64_t batch_size,
                           int64_t max_batches, uint64_t seed) {
  at::NoGradGuard no_grad;
  TensorMap& state = model.mutable_state();
  for (auto& [name, t] : state) {
    if (name.size() > 13 && name.compare(name.size() - 13, 13, ".running_mean") == 0) t.zero_();
    if (name.size() > 12 && name.compare(name.size() - 12, 12, ".running_var") == 0) t.fill_(1.0);
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0xb47c4ULL);
  const int64_t n = data.size();
  const at::Tensor order = at::randperm(n, gen, at::kLong);
  ForwardContext ctx;
  ctx.batchnorm_update = true;
  int64_t k = 0;
  for (int64_t begin = 0; begin + 1 < n && k < max_batches; begin += batch_size, ++k) {
    ctx.batchnorm_momentum = 1.0 / static_cast<double>(k + 1);
    const at::Tensor idx = order.slice(0, begin, std::min(n, begin + batch_size));
    (void)model.features(data.images.index_select(0, idx), ctx);
  }
}

PretrainReport pretrain_classifier(ImageClassifier& model, const ImageDataset& data,
                                   const PretrainSettings& settings, uint64_t seed,
                                   const std::function<void(int, double)>& on_epoch) {
  if (data.size() < 2) throw std::invalid_argument("pretrain.public_samples: need at least 2 samples");
  const auto t0 = std::chrono::steady_clock::now();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5eedULL);
  TensorMap& state = model.mutable_state();
  const auto names = model.parameter_names();
  const std::set<std::string> trainable(names.begin(), names.end());
  for (const auto& n : names) state.at(n).requires_grad_(true);

  ForwardContext ctx;
  ctx.dropout_active = true;
  ctx.batchnorm_update = true;
  ctx.generator = gen;
  OptimizerSettings opt;
  opt.kind = OptimizerKind::sgd;
  opt.lr = settings.lr;
  opt.momentum = 0.9;
  opt.weight_decay = 1e-5;
  TensorMap opt_state;

  PretrainReport report;
  const int64_t n = data.size();
  for (int epoch = 0; epoch < settings.epochs; ++epoch) {
    const at::Tensor order = at::randperm(n, gen, at::kLong);
    double loss_sum = 0;
    int64_t batches = 0;
    // BatchNorm in training mode needs at least two samples: a last batch of one is dropped.
    for (int64_t begin = 0; begin + 1 < n; begin += settings.batch_size) {
      throw_if_interrupted(); // minutes of pretraining must not outlast a Ctrl-C
      const at::Tensor idx = order.slice(0, begin, std::min(n, begin + settings.batch_size));
      const at::Tensor logits = model.forward(data.images.index_select(0, idx), ctx);
      const at::Tensor loss = at::cross_entropy_loss(logits, data.labels.index_select(0, idx));
      for (const auto& nm : names)
        if (state.at(nm).grad().defined()) state.at(nm).mutable_grad().zero_();
      loss.backward();
      optimizer_step(state, trainable, opt_state, opt);
      loss_sum += loss.item<double>();
      ++batches;
      ++report.steps;
    }
    report.last_epoch_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, batches));
    if (on_epoch) on_epoch(epoch + 1, report.last_epoch_loss);
  }
  for (const auto& n : names) {
    at::Tensor& t = state.at(n);
    t.requires_grad_(false);
    t.mutable_grad() = at::Tensor();
  }
  recalibrate_batchnorm(model, data, settings.batch_size, 200, seed);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

} // namespace fedvlm
