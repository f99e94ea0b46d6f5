// tests/actors/evaluation_parts_test.cpp — a large evaluation as whole-batch parts over the scheduler's workers equals one pass, bit for bit.
#include "actors/scheduler_actor.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/tasks/frozen_base.hpp"
#include "fl/tasks/local_training.hpp"
#include "model/classic_nets.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace fedvlm {
namespace {

std::shared_ptr<const FrozenBase> cnn_base(int64_t n) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  ImageDataset d;
  d.images = at::rand({n, 1, 28, 28}, gen);
  d.labels = at::randint(0, 10, {n}, gen, at::kLong);
  for (int c = 0; c < 10; ++c) d.class_names.push_back("c" + std::to_string(c));
  // Full fine-tuning's base: every weighted module may be overridden, so nothing is cached.
  return std::make_shared<FrozenBase>(make_classic_net("cnn_mnist", 10, 3), std::move(d), std::vector<std::string>{},
                                      /*cache_batch_size=*/512, /*any_weighted_module=*/true);
}

/// Trained-looking full weights: the base's own, perturbed, so predictions are not all one class.
TensorMap perturbed_weights(const FrozenBase& base) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  TensorMap w;
  for (const auto& [name, t] : base.model().state()) w[name] = t + 0.05 * at::randn(t.sizes(), gen);
  return w;
}

bool same_double(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_identical(const EvalResult& a, const EvalResult& b) {
  EXPECT_TRUE(same_double(a.loss, b.loss)) << a.loss << " vs " << b.loss;
  EXPECT_TRUE(same_double(a.metrics.accuracy, b.metrics.accuracy));
  EXPECT_TRUE(same_double(a.metrics.macro_precision, b.metrics.macro_precision));
  EXPECT_TRUE(same_double(a.metrics.macro_recall, b.metrics.macro_recall));
  EXPECT_TRUE(same_double(a.metrics.macro_f1, b.metrics.macro_f1));
  EXPECT_EQ(a.metrics.count, b.metrics.count);
}

TEST(WholeBatchRuns, CutsAtBatchBoundariesInOrderAndAsEvenAsWholeBatchesAllow) {
  std::vector<int64_t> idx(103);
  std::iota(idx.begin(), idx.end(), 1000);
  const auto runs = whole_batch_runs(idx, 10, 3); // 11 batches: 4 + 4 + 3
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].size(), 40u);
  EXPECT_EQ(runs[1].size(), 40u);
  EXPECT_EQ(runs[2].size(), 23u); // 2 whole batches and the short last one
  std::vector<int64_t> joined;
  for (const auto& r : runs) joined.insert(joined.end(), r.begin(), r.end());
  EXPECT_EQ(joined, idx);
  EXPECT_EQ(whole_batch_runs(idx, 64, 5).size(), 2u); // 2 batches: no more than 2 runs
  EXPECT_TRUE(whole_batch_runs({}, 8, 2).empty());
  EXPECT_THROW((void)whole_batch_runs(idx, 0, 2), std::invalid_argument);
  EXPECT_THROW((void)whole_batch_runs(idx, 8, 0), std::invalid_argument);
}

TEST(EvaluationParts, CombinedPartsEqualOnePassBitForBit) {
  const auto base = cnn_base(300);
  const TensorMap w = perturbed_weights(*base);
  std::vector<int64_t> idx(257);
  std::iota(idx.begin(), idx.end(), 20);
  const EvalResult whole = evaluate_local(*base, w, idx, LoraSettings{}, 16);
  for (int parts : {2, 3, 7}) {
    std::vector<EvalPart> got;
    for (const auto& run : whole_batch_runs(idx, 16, parts)) got.push_back(evaluate_local_part(*base, w, run, LoraSettings{}, 16));
    expect_identical(combine_eval_parts(got), whole);
  }
  EXPECT_EQ(combine_eval_parts({}).metrics.count, 0);
}

class JobLog : public RunObserverBase {
public:
  void scheduler_job(const std::string& kind, double, double) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (kind == "eval") ++evals;
  }
  std::mutex mutex_;
  int evals = 0;
};

EvalResult evaluate_through_scheduler(const std::shared_ptr<const FrozenBase>& base, const TensorMap& w,
                                      const std::vector<int64_t>& idx, int workers, JobLog& log) {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  SchedulerConfig sc;
  sc.task = std::make_shared<ClassificationTask>(base);
  sc.train.eval_batch_size = 16;
  sc.limits.concurrency = workers;
  sc.observer = &log;
  scheduler_actor scheduler = spawn_scheduler(system, sc);
  caf::scoped_actor self{system};
  EvalResult got;
  self->request(scheduler, std::chrono::seconds(60), EvalJobMsg{-1, 1, w, idx})
      .receive([&](EvalResult& r) { got = r; }, [](caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
  self->send_exit(scheduler, caf::exit_reason::user_shutdown);
  return got;
}

TEST(EvaluationParts, TheSchedulerSpreadsALargeEvaluationOverItsWorkersWithTheSameResult) {
  const auto base = cnn_base(300);
  const TensorMap w = perturbed_weights(*base);
  std::vector<int64_t> idx(250);
  std::iota(idx.begin(), idx.end(), 50);
  const EvalResult whole = evaluate_local(*base, w, idx, LoraSettings{}, 16);
  JobLog two, one;
  expect_identical(evaluate_through_scheduler(base, w, idx, 2, two), whole);
  EXPECT_EQ(two.evals, 2); // two parts, one a worker
  expect_identical(evaluate_through_scheduler(base, w, idx, 1, one), whole);
  EXPECT_EQ(one.evals, 1);
  JobLog small;
  expect_identical(evaluate_through_scheduler(base, w, {idx.begin(), idx.begin() + 16}, 2, small),
                   evaluate_local(*base, w, {idx.begin(), idx.begin() + 16}, LoraSettings{}, 16));
  EXPECT_EQ(small.evals, 1); // one batch: nothing to spread
}

} // namespace
} // namespace fedvlm
