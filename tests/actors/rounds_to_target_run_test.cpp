// tests/actors/rounds_to_target_run_test.cpp — evaluation.target_accuracy in whole runs on real MNIST: the summaries' rounds to target and stop_at_target.
#include "actors/run_driver.hpp"
#include "fl/federation/run_setup.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <vector>

namespace {

using namespace fedvlm;

const std::filesystem::path kMnist = std::filesystem::path(FEDVLM_SOURCE_DIR) / ".." / "shared" / "datasets" / "mnist";

class Rounds : public RunObserverBase {
public:
  void round_finished(const RoundSummary& s) override {
    std::lock_guard<std::mutex> lock(mutex_);
    rounds.push_back(s);
  }
  std::vector<RoundSummary> rounds;

private:
  std::mutex mutex_;
};

/// The paper's 2NN trained in full by 4 IID clients on 2,000 MNIST images.
ExperimentConfig mnist_2nn(const std::filesystem::path& out) {
  ExperimentConfig c;
  c.name = "rounds_to_target_test";
  c.output_dir = out;
  c.seed = 1;
  c.model.arch = "mlp_2nn";
  c.data.dataset = "mnist";
  c.data.path = kMnist;
  c.data.max_samples = 2000;
  c.data.test_fraction = 0;
  c.evaluation.global_test = true;
  c.partition.scheme = PartitionScheme::iid;
  c.federation.clients = 4;
  c.partition.clients = 4;
  c.partition.seed = c.seed;
  c.federation.rounds = 30;
  c.strategy = StrategyKind::full;
  c.lora_targets = {"fc1", "fc2", "fc3"};
  c.train.local_epochs = 1;
  c.train.batch_size = 10;
  c.train.lr = 0.05;
  c.train.momentum = 0;
  c.train.fresh_optimizer = true;
  c.scheduler.concurrency = 2;
  return c;
}

// The crossing computed here from the summaries' own accuracies: first round whose best-so-far
// reaches the target, interpolated from the round before.
double crossing(const std::vector<RoundSummary>& rounds, double target, bool global) {
  double best = -1;
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    const double a = global ? rounds[i].global_accuracy : rounds[i].mean_accuracy;
    if (a >= target && best < target)
      return i == 0 ? rounds[i].round : rounds[i - 1].round + (target - best) / (a - best);
    best = std::max(best, a);
  }
  return NAN;
}

TEST(RoundsToTargetRun, TheGlobalTestStopsTheRunAtTheRoundItReachesTheTarget) {
  if (!std::filesystem::exists(kMnist / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << kMnist << " does not hold MNIST (../shared/datasets/mnist beside the repository)";
  fedvlm::testing::TempDir dir("fedvlm-rtt");
  ExperimentConfig c = mnist_2nn(dir.path());
  c.evaluation.target_accuracy = 0.8;
  c.evaluation.stop_at_target = true;
  DatasetCache datasets;
  const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
  Rounds seen;
  const RunDone done = run_federation(c, c.name + "/run", setup, seen);
  const auto& rounds = seen.rounds;
  ASSERT_GE(rounds.size(), 2u);
  ASSERT_EQ(rounds.size(), static_cast<std::size_t>(done.rounds_completed) + 1); // round 0 included
  EXPECT_LT(done.rounds_completed, 30) << "the run was to stop at the target";
  EXPECT_LT(rounds.front().global_accuracy, 0.3); // starts near chance

  const double expected = crossing(rounds, 0.8, true);
  ASSERT_TRUE(std::isfinite(expected));
  // It stopped after the round that reached the target, not later.
  EXPECT_EQ(std::ceil(expected), done.rounds_completed);
  for (const auto& s : rounds) {
    SCOPED_TRACE(s.round);
    EXPECT_EQ(s.target_accuracy, 0.8);
    EXPECT_TRUE(std::isnan(s.mean_rounds_to_target)); // no client test splits: no mean accuracy
    if (s.round < done.rounds_completed) EXPECT_TRUE(std::isnan(s.global_rounds_to_target));
  }
  EXPECT_NEAR(rounds.back().global_rounds_to_target, expected, 1e-12);
  EXPECT_GT(rounds.back().global_rounds_to_target, done.rounds_completed - 1);
  EXPECT_NE(done.note.find("stop_at_target"), std::string::npos) << done.note;
  EXPECT_NE(done.note.find("0.8"), std::string::npos) << done.note;
  EXPECT_NE(done.note.find("global test"), std::string::npos) << done.note;
}

TEST(RoundsToTargetRun, WithoutAGlobalTestTheMeanClientAccuracyCountsAndNoStopRunsToTheEnd) {
  if (!std::filesystem::exists(kMnist / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << kMnist << " does not hold MNIST (../shared/datasets/mnist beside the repository)";
  fedvlm::testing::TempDir dir("fedvlm-rtt");
  ExperimentConfig c = mnist_2nn(dir.path());
  c.evaluation.global_test = false;
  c.data.test_fraction = 0.2;
  c.federation.rounds = 6;
  c.evaluation.target_accuracy = 0.75;
  DatasetCache datasets;
  const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
  Rounds seen;
  const RunDone done = run_federation(c, c.name + "/run", setup, seen);
  ASSERT_EQ(done.rounds_completed, 6);
  EXPECT_TRUE(done.note.empty()) << done.note;
  const auto& rounds = seen.rounds;
  ASSERT_EQ(rounds.size(), 7u);
  const double expected = crossing(rounds, 0.75, false);
  ASSERT_TRUE(std::isfinite(expected)) << "the 2NN should pass 75 % within 6 rounds";
  EXPECT_NEAR(rounds.back().mean_rounds_to_target, expected, 1e-12);
  EXPECT_TRUE(std::isnan(rounds.back().global_rounds_to_target));
  // Once reached, every later summary keeps the same round.
  for (const auto& s : rounds)
    if (s.round >= std::ceil(expected)) EXPECT_NEAR(s.mean_rounds_to_target, expected, 1e-12) << s.round;
}

} // namespace
