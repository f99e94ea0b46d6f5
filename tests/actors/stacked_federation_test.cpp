// tests/actors/stacked_federation_test.cpp — full fine-tuning with scheduler.batch_clients through the actors equals one-by-one.
#include "actors/run_driver.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <utility>

namespace fedvlm {
namespace {

const std::filesystem::path kFashion = "/usr/share/datasets/fashion-mnist";

class Records : public RunObserverBase {
public:
  void client_evaluated(const ClientRoundRecord& r) override {
    std::lock_guard<std::mutex> lock(mutex_);
    by_key[{r.client, r.round}] = r;
  }
  std::map<std::pair<int, int>, ClientRoundRecord> by_key;

private:
  std::mutex mutex_;
};

// cnn_mnist trained whole by 4 clients a round, 2 rounds: groups of 4 stack the clients' own
// copies (grouped convolutions) and reach the same metrics and weights as one at a time.
TEST(StackedFederation, FullCnnWithBatchClientsEqualsOneByOne) {
  if (!std::filesystem::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST is absent";
  testing::TempDir dir("fedvlm-stacked");
  ExperimentConfig c;
  c.name = "stacked";
  c.output_dir = dir.path();
  c.seed = 5;
  c.data.path = kFashion;
  c.data.max_samples = 400;
  c.model.arch = "cnn_mnist";
  c.strategy = StrategyKind::full;
  c.lora_targets = {"conv1", "conv2", "fc1", "fc2"};
  c.strategy_trainable = c.lora_targets;
  c.partition.scheme = PartitionScheme::shards;
  c.partition.shards_per_client = 2;
  c.partition.shards = 8;
  c.partition.clients = 4;
  c.partition.seed = c.seed;
  c.federation.clients = 4;
  c.federation.rounds = 2;
  c.train.local_epochs = 1;
  c.train.batch_size = 10;
  c.train.lr = 0.02;
  c.train.momentum = 0.5;
  c.scheduler.concurrency = 2;
  DatasetCache datasets;
  const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
  Records alone_records, stacked_records;
  const RunDone alone = run_federation(c, "stacked/alone", setup, alone_records);
  c.scheduler.batch_clients = 4;
  const RunDone stacked = run_federation(c, "stacked/stacked", setup, stacked_records);
  ASSERT_EQ(alone_records.by_key.size(), stacked_records.by_key.size());
  ASSERT_FALSE(alone_records.by_key.empty());
  for (const auto& [key, a] : alone_records.by_key) {
    const ClientRoundRecord& s = stacked_records.by_key.at(key);
    EXPECT_NEAR(a.loss, s.loss, 1e-4) << "client " << key.first << " round " << key.second;
    EXPECT_NEAR(a.train_loss, s.train_loss, 1e-4) << "client " << key.first << " round " << key.second;
  }
  ASSERT_EQ(alone.adapters.size(), stacked.adapters.size());
  for (std::size_t k = 0; k < alone.adapters.size(); ++k)
    for (const auto& [name, t] : alone.adapters[k])
      EXPECT_LE((t - stacked.adapters[k].at(name)).abs().max().item<double>(), 1e-5) << "client " << k << " " << name;
  EXPECT_EQ(alone.rounds_completed, 2);
  EXPECT_EQ(stacked.rounds_completed, 2);
}

} // namespace
} // namespace fedvlm
