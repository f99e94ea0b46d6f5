// tests/actors/grouped_training_test.cpp — several clients in one pass equal one-by-one training.
#include "fl/tasks/federated_task.hpp"
#include "fl/tasks/frozen_base.hpp"
#include "fl/tasks/local_training.hpp"
#include "model/classic_nets.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

ImageDataset random_pool(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  ImageDataset d;
  d.images = at::rand({n, 1, 28, 28}, gen);
  d.labels = at::randint(0, 10, {n}, gen, at::kLong);
  for (int c = 0; c < 10; ++c) d.class_names.push_back("c" + std::to_string(c));
  return d;
}

LocalTrainJob job_for(const FrozenBase& base, int client, int64_t first, int64_t count, int64_t rank) {
  LoraSettings l;
  l.rank = rank;
  LocalTrainJob job;
  job.adapters = lora_init(base.targets(), l, 100 + static_cast<uint64_t>(client));
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.prox_reference = tensor_map_clone(job.adapters);
  job.indices.resize(static_cast<std::size_t>(count));
  std::iota(job.indices.begin(), job.indices.end(), first);
  job.seed = 7000 + static_cast<uint64_t>(client);
  job.client = client;
  job.round = 1;
  return job;
}

void expect_same_results(const std::vector<LocalTrainResult>& grouped, const std::vector<LocalTrainResult>& alone,
                         double tol) {
  ASSERT_EQ(grouped.size(), alone.size());
  for (std::size_t k = 0; k < alone.size(); ++k) {
    SCOPED_TRACE("client " + std::to_string(k));
    EXPECT_EQ(grouped[k].steps, alone[k].steps);
    EXPECT_EQ(grouped[k].samples, alone[k].samples);
    EXPECT_NEAR(grouped[k].mean_loss, alone[k].mean_loss, tol);
    ASSERT_EQ(grouped[k].adapters.size(), alone[k].adapters.size());
    for (const auto& [name, t] : alone[k].adapters) {
      const at::Tensor& g = grouped[k].adapters.at(name);
      EXPECT_TRUE(at::allclose(g, t, /*rtol=*/1e-4, /*atol=*/tol)) << name << " max diff " << (g - t).abs().max().item<double>();
      EXPECT_FALSE(g.requires_grad()) << name;
    }
    for (const auto& [name, t] : alone[k].optimizer_state)
      EXPECT_TRUE(at::allclose(grouped[k].optimizer_state.at(name), t, 1e-4, tol)) << name;
  }
}

// cnn_mnist with LoRA on fc1 (in the trunk, so every step runs the convolutions and the
// channel dropout over the union) and fc2; clients of different data sizes (one finishes
// early) and ranks (no single batched matmul), LoRA dropout, FedProx and SGD momentum.
TEST(GroupedTraining, ManyClientsInOnePassEqualOneByOne) {
  auto model = make_cnn_mnist(10, 5);
  const auto base = std::make_shared<FrozenBase>(model, random_pool(130, 1), std::vector<std::string>{"fc1", "fc2"});
  ASSERT_FALSE(base->caches_features());
  TrainSettings ts;
  ts.batch_size = 10;
  ts.local_epochs = 2;
  ts.lr = 0.05;
  ts.momentum = 0.9;
  ts.prox_mu = 0.01;
  LoraSettings lora;
  lora.alpha = 8;
  lora.dropout = 0.1;
  const std::vector<std::pair<int64_t, int64_t>> data = {{0, 40}, {40, 25}, {65, 40}, {105, 25}};
  const std::vector<int64_t> ranks = {4, 4, 2, 4};
  std::vector<LocalTrainJob> jobs;
  std::vector<LocalTrainResult> alone;
  for (int k = 0; k < 4; ++k) {
    jobs.push_back(job_for(*base, k, data[k].first, data[k].second, ranks[k]));
    alone.push_back(train_local(*base, jobs.back(), ts, lora));
  }
  const auto grouped = train_adapters_grouped(classification_loss(*base), jobs, ts, lora);
  expect_same_results(grouped, alone, 1e-5);
  // The adapters really trained (the comparison is not between two unchanged maps).
  EXPECT_FALSE(at::allclose(alone[0].adapters.at("fc2.lora_B"), jobs[0].adapters.at("fc2.lora_B")));
}

// Equal ranks and batch sizes: every pass takes the batched-matmul path; Adam.
TEST(GroupedTraining, BatchedMatmulPathEqualsOneByOneWithAdam) {
  auto model = make_mlp_2nn(10, 6);
  const auto base =
      std::make_shared<FrozenBase>(model, random_pool(96, 2), std::vector<std::string>{"fc1", "fc2", "fc3"});
  TrainSettings ts;
  ts.batch_size = 8;
  ts.local_epochs = 1;
  ts.optimizer = OptimizerKind::adam;
  ts.lr = 1e-3;
  LoraSettings lora;
  lora.rank = 4;
  std::vector<LocalTrainJob> jobs;
  std::vector<LocalTrainResult> alone;
  for (int k = 0; k < 3; ++k) {
    jobs.push_back(job_for(*base, k, 32 * k, 32, 4));
    alone.push_back(train_local(*base, jobs.back(), ts, lora));
  }
  ClassificationTask task(base);
  expect_same_results(task.train_group(jobs, ts, lora), alone, 1e-5);
}

// A job holding a client's copy of a base tensor (full fine-tuning) needs a pass of its own.
TEST(GroupedTraining, JobsWithBaseCopiesAreNotGroupedAndTrainOneByOne) {
  auto model = make_mlp_2nn(10, 6);
  const auto base = std::make_shared<FrozenBase>(model, random_pool(40, 3), std::vector<std::string>{"fc3"});
  TrainSettings ts;
  ts.batch_size = 8;
  LoraSettings lora;
  LocalTrainJob lora_job = job_for(*base, 0, 0, 20, 4);
  LocalTrainJob full_job = job_for(*base, 1, 20, 20, 4);
  full_job.adapters = {{"fc3.weight", model->state().at("fc3.weight").clone()}};
  full_job.trainable = {"fc3.weight"};
  EXPECT_TRUE(groupable(lora_job));
  EXPECT_FALSE(groupable(full_job));
  EXPECT_THROW((void)train_adapters_grouped(classification_loss(*base), {lora_job, full_job}, ts, lora),
               std::invalid_argument);
  ClassificationTask task(base);
  const auto results = task.train_group({lora_job, full_job}, ts, lora);
  const LocalTrainResult alone = train_local(*base, full_job, ts, lora);
  EXPECT_TRUE(at::equal(results[1].adapters.at("fc3.weight"), alone.adapters.at("fc3.weight")));
}

} // namespace
} // namespace fedvlm
