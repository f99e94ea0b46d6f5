// tests/fl/federation/holdout_test.cpp — new clients: what one receives, its adaptation, its scores before and after.
#include "fl/federation/holdout.hpp"
#include "fl/federation/starting_state.hpp"
#include "model/classic_nets.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

namespace fedvlm {
namespace {

constexpr int64_t kClasses = 3;
constexpr int64_t kPerClient = 30;
const std::string kA = std::string("fc3") + kLoraA;
const std::string kB = std::string("fc3") + kLoraB;

/// Three clients' worth of 28x28 images around one random centroid per class, with noise.
ImageDataset synthetic_pool(int64_t n) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  const at::Tensor centroids = at::randn({kClasses, 28 * 28}, gen, at::kFloat);
  const at::Tensor labels = at::arange(n, at::kLong).remainder(kClasses);
  const at::Tensor x = centroids.index_select(0, labels) + 0.5 * at::randn({n, 28 * 28}, gen, at::kFloat);
  ImageDataset ds;
  ds.images = x.reshape({n, 1, 28, 28}).contiguous();
  ds.labels = labels;
  ds.class_names = {"a", "b", "c"};
  return ds;
}

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(static_cast<std::size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

/// 3 clients of 30 samples (20 train, 10 test), the last held out, on mlp_2nn with LoRA on fc3.
struct Fixture {
  ExperimentConfig c;
  std::shared_ptr<const FrozenBase> base;
  RunSetup setup;

  explicit Fixture(StrategyKind strategy = StrategyKind::plora) {
    c.seed = 5;
    c.strategy = strategy;
    c.federation.clients = 3;
    c.evaluation.holdout_clients = 1;
    c.lora.rank = 2;
    c.lora.alpha = 4;
    c.lora_targets = {"fc3"};
    c.train.batch_size = 8;
    c.train.lr = 0.2;
    c.train.local_epochs = 1;
    base = std::make_shared<FrozenBase>(make_mlp_2nn(kClasses, 1), synthetic_pool(3 * kPerClient), c.lora_targets);
    setup.targets = base->targets();
    setup.task = std::make_shared<ClassificationTask>(base);
    for (int k = 0; k < 3; ++k) {
      const int64_t at = k * kPerClient;
      LocalSplit s{range(at, at + 20), range(at + 20, at + kPerClient)};
      (k < 2 ? setup.splits : setup.holdout_splits).push_back(s);
    }
  }

  /// A global B as after some rounds (non-zero, so that it changes the predictions).
  TensorMap global() const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const at::Tensor b = initial_adapters(c, setup, 0).at(kB);
    return {{kB, at::randn(b.sizes(), gen, at::kFloat)}};
  }

  /// The accuracy of `adapters` on `indices`, from the base's logits and labels directly.
  double accuracy_by_hand(const TensorMap& adapters, const std::vector<int64_t>& indices) const {
    ForwardContext ctx;
    ctx.adapters = &adapters;
    ctx.lora = c.lora;
    const at::Tensor idx = at::tensor(indices, at::kLong);
    const at::Tensor right = base->logits(idx, ctx).argmax(1).eq(base->labels(idx));
    return right.to(at::kDouble).mean().item<double>();
  }
};

TEST(Holdout, TheLastClientsOfThePartitionAreHeldOutWithFreshPrivateFactors) {
  const Fixture f;
  const std::vector<HoldoutClient> h = holdout_clients(f.c, f.setup);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].settings.id, 2);
  EXPECT_EQ(h[0].settings.split.train, range(60, 80));
  EXPECT_EQ(h[0].settings.split.test, range(80, 90));
  // pLoRA: its own A from its own seed (not client 0's), B = 0, as a client starting the run.
  EXPECT_TRUE(at::equal(h[0].fresh.at(kA), initial_adapters(f.c, f.setup, 2).at(kA)));
  EXPECT_FALSE(at::equal(h[0].fresh.at(kA), initial_adapters(f.c, f.setup, 0).at(kA)));
  EXPECT_EQ(h[0].fresh.at(kB).abs().sum().item<double>(), 0.0);
  // A set-up without the configured holdout splits is a programming error.
  Fixture wrong;
  wrong.setup.holdout_splits.clear();
  EXPECT_THROW((void)holdout_clients(wrong.c, wrong.setup), std::logic_error);
}

TEST(Holdout, BeforeIsTheGlobalSharedTensorsWithTheFreshPrivateOnes) {
  const Fixture f;
  const HoldoutClient h = holdout_clients(f.c, f.setup).front();
  const TensorMap global = f.global();
  // By hand: the client's own A (initial_adapters), the global B.
  const TensorMap by_hand = {{kA, initial_adapters(f.c, f.setup, 2).at(kA)}, {kB, global.at(kB)}};
  const NewcomerJob job = newcomer_job(h, global, 0, 4);
  ASSERT_EQ(job.start.adapters.size(), 2u);
  EXPECT_TRUE(at::equal(job.start.adapters.at(kA), by_hand.at(kA)));
  EXPECT_TRUE(at::equal(job.start.adapters.at(kB), by_hand.at(kB)));
  EXPECT_EQ(job.test, range(80, 90));
  EXPECT_EQ(job.start.indices, range(60, 80));
  EXPECT_EQ(job.start.client, 2);
  EXPECT_EQ(job.start.round, 4);

  const NewcomerScore s = evaluate_newcomer(*f.setup.task, job, f.c.train, f.c.lora);
  EXPECT_EQ(s.client, 2);
  EXPECT_EQ(s.round, 4);
  EXPECT_EQ(s.before.metrics.count, 10);
  EXPECT_DOUBLE_EQ(s.before.metrics.accuracy, f.accuracy_by_hand(by_hand, range(80, 90)));
  // Negative control: with client 0's A instead the loss differs, so the check above can fail.
  const TensorMap other = {{kA, initial_adapters(f.c, f.setup, 0).at(kA)}, {kB, global.at(kB)}};
  const EvalResult with_other = f.setup.task->evaluate(other, range(80, 90), f.c.lora, f.c.train.eval_batch_size);
  EXPECT_NE(with_other.loss, s.before.loss);
}

TEST(Holdout, NoAdaptationStepsGiveTheSameScoreAfterAsBefore) {
  const Fixture f;
  const NewcomerJob job = newcomer_job(holdout_clients(f.c, f.setup).front(), f.global(), 0, 1);
  const TensorMap adapted = adapt_newcomer(*f.setup.task, job, f.c.train, f.c.lora);
  for (const auto& [name, t] : job.start.adapters) EXPECT_TRUE(at::equal(adapted.at(name), t)) << name;
  const NewcomerScore s = evaluate_newcomer(*f.setup.task, job, f.c.train, f.c.lora);
  EXPECT_EQ(s.after.metrics.accuracy, s.before.metrics.accuracy);
  EXPECT_EQ(s.after.loss, s.before.loss);
}

TEST(Holdout, AdaptationTrainsWhatTheStrategyTrainsForExactlyTheSteps) {
  const Fixture f;
  const HoldoutClient h = holdout_clients(f.c, f.setup).front();
  const TensorMap global = f.global();
  NewcomerJob job = newcomer_job(h, global, 7, 2);
  const TensorMap start = tensor_map_clone(job.start.adapters);
  // 20 samples in batches of 8 are 3 steps an epoch: 7 steps run into a third epoch.
  LocalTrainJob counted = job.start;
  counted.max_steps = 7;
  EXPECT_EQ(f.setup.task->train(counted, f.c.train, f.c.lora).steps, 7);
  const TensorMap adapted = adapt_newcomer(*f.setup.task, job, f.c.train, f.c.lora);
  EXPECT_FALSE(at::equal(adapted.at(kA), start.at(kA))); // pLoRA trains both factors
  EXPECT_FALSE(at::equal(adapted.at(kB), start.at(kB)));
  // The job, the client's fresh factors and the global are untouched: the adapted state is thrown away.
  EXPECT_TRUE(at::equal(job.start.adapters.at(kA), start.at(kA)));
  EXPECT_TRUE(at::equal(h.fresh.at(kA), initial_adapters(f.c, f.setup, 2).at(kA)));
  EXPECT_TRUE(at::equal(global.at(kB), f.global().at(kB)));
  // Adapting on its own data helps this separable task's new client.
  const NewcomerScore s = evaluate_newcomer(*f.setup.task, job, f.c.train, f.c.lora);
  EXPECT_DOUBLE_EQ(s.after.metrics.accuracy, f.accuracy_by_hand(adapted, range(80, 90)));
  EXPECT_LT(s.after.loss, s.before.loss);

  // FFA-LoRA: A stays at the shared initialisation; only B adapts.
  const Fixture ffa(StrategyKind::ffa_lora);
  const HoldoutClient hf = holdout_clients(ffa.c, ffa.setup).front();
  EXPECT_TRUE(at::equal(hf.fresh.at(kA), initial_adapters(ffa.c, ffa.setup, 0).at(kA))); // common A
  const NewcomerJob jf = newcomer_job(hf, ffa.global(), 5, 2);
  const TensorMap af = adapt_newcomer(*ffa.setup.task, jf, ffa.c.train, ffa.c.lora);
  EXPECT_TRUE(at::equal(af.at(kA), jf.start.adapters.at(kA)));
  EXPECT_FALSE(at::equal(af.at(kB), jf.start.adapters.at(kB)));
}

TEST(Holdout, FedSAsNewClientStartsFromTheSharedAAndAZeroB) {
  // FedSA-LoRA shares A and keeps B private: a new client gets the global A and B = 0, so
  // before adapting it scores as the base model alone.
  const Fixture f(StrategyKind::fedsa_lora);
  const HoldoutClient h = holdout_clients(f.c, f.setup).front();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  const TensorMap global = {{kA, at::randn(h.fresh.at(kA).sizes(), gen, at::kFloat)}};
  const NewcomerJob job = newcomer_job(h, global, 3, 1);
  EXPECT_TRUE(at::equal(job.start.adapters.at(kA), global.at(kA)));
  EXPECT_EQ(job.start.adapters.at(kB).abs().sum().item<double>(), 0.0);
  const NewcomerScore s = evaluate_newcomer(*f.setup.task, job, f.c.train, f.c.lora);
  const TensorMap none;
  EXPECT_DOUBLE_EQ(s.before.metrics.accuracy, f.accuracy_by_hand(none, range(80, 90)));
}

TEST(Holdout, GlobalTensorsOfAnotherShapeAreRefusedNamingTheTensor) {
  const TensorMap fresh = {{kB, at::zeros({3, 2})}};
  const TensorMap global = {{kB, at::zeros({3, 4})}};
  try {
    (void)newcomer_adapters(fresh, global);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(kB), std::string::npos) << e.what();
  }
}

TEST(Holdout, DueAtRoundZeroEveryNthRoundAndTheLast) {
  std::vector<int> due;
  for (int r = 0; r <= 7; ++r)
    if (holdout_due(r, 3, 7)) due.push_back(r);
  EXPECT_EQ(due, (std::vector<int>{0, 3, 6, 7}));
  for (int r = 0; r <= 4; ++r) EXPECT_TRUE(holdout_due(r, 1, 4)) << r;
}

TEST(Holdout, TheRoundSummaryGetsTheMeansBeforeAndAfter) {
  RoundSummary sum;
  summarize_holdout({}, sum);
  EXPECT_TRUE(std::isnan(sum.holdout_accuracy));
  EXPECT_TRUE(std::isnan(sum.holdout_adapted_accuracy));
  NewcomerScore a, b;
  a.before.metrics.accuracy = 0.5;
  a.after.metrics.accuracy = 0.75;
  b.before.metrics.accuracy = 0.25;
  b.after.metrics.accuracy = 1.0;
  summarize_holdout({a, b}, sum);
  EXPECT_DOUBLE_EQ(sum.holdout_accuracy, 0.375);
  EXPECT_DOUBLE_EQ(sum.holdout_adapted_accuracy, 0.875);
}

} // namespace
} // namespace fedvlm
