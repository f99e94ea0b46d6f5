// tests/fl/tasks/stacked_training_test.cpp — clients' whole copies (full fine-tuning, linear probe) trained stacked equal one-by-one.
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

/// Client `client`'s job: its own copies of `names` (the base's values, nudged per client so no
/// two clients start alike), samples [first, first + count).
LocalTrainJob job_for(const TensorMap& start, int client, int64_t first, int64_t count) {
  LocalTrainJob job;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(900 + static_cast<uint64_t>(client));
  for (const auto& [name, t] : start) {
    job.adapters[name] = t.detach().clone() + 0.01 * at::randn(t.sizes(), gen);
    job.trainable.insert(name);
  }
  job.indices.resize(static_cast<std::size_t>(count));
  std::iota(job.indices.begin(), job.indices.end(), first);
  job.seed = 5000 + static_cast<uint64_t>(client);
  job.client = client;
  job.round = 1;
  return job;
}

TensorMap copies_of(const ImageClassifier& model, const std::vector<std::string>& names) {
  TensorMap out;
  for (const auto& n : names) out[n] = model.state().at(n);
  return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

void expect_same_results(const std::vector<LocalTrainResult>& stacked, const std::vector<LocalTrainResult>& alone,
                         double tol) {
  ASSERT_EQ(stacked.size(), alone.size());
  for (std::size_t k = 0; k < alone.size(); ++k) {
    SCOPED_TRACE("client " + std::to_string(k));
    EXPECT_EQ(stacked[k].steps, alone[k].steps);
    EXPECT_EQ(stacked[k].samples, alone[k].samples);
    EXPECT_NEAR(stacked[k].mean_loss, alone[k].mean_loss, tol);
    ASSERT_EQ(stacked[k].adapters.size(), alone[k].adapters.size());
    for (const auto& [name, t] : alone[k].adapters) {
      const at::Tensor& s = stacked[k].adapters.at(name);
      EXPECT_LE(max_abs_diff(s, t), tol) << name;
      EXPECT_FALSE(s.requires_grad()) << name;
    }
    ASSERT_EQ(stacked[k].optimizer_state.size(), alone[k].optimizer_state.size());
    for (const auto& [name, t] : alone[k].optimizer_state)
      EXPECT_LE(max_abs_diff(stacked[k].optimizer_state.at(name), t), tol) << name;
  }
}

/// The jobs with their own copy of every tensor: training updates the optimizer state it is
/// given in place, so two runs from the same jobs must not share it.
std::vector<LocalTrainJob> copies(const std::vector<LocalTrainJob>& jobs) {
  std::vector<LocalTrainJob> out = jobs;
  for (auto& j : out) {
    j.adapters = tensor_map_clone(j.adapters);
    j.optimizer_state = tensor_map_clone(j.optimizer_state);
  }
  return out;
}

std::vector<LocalTrainResult> one_by_one(const FrozenBase& base, const std::vector<LocalTrainJob>& jobs,
                                         const TrainSettings& ts) {
  std::vector<LocalTrainResult> out;
  for (const auto& j : copies(jobs)) out.push_back(train_local(base, j, ts, LoraSettings{}));
  return out;
}

// cnn_mnist trained whole: grouped convolutions and channel dropout over four clients whose
// data sizes differ (last batches of 3, 1 and 10 rows: passes of unequal rows split), SGD
// momentum carried over from an earlier round, FedProx.
TEST(StackedTraining, CnnMnistFullCopiesEqualOneByOne) {
  auto model = make_cnn_mnist(10, 5);
  const std::vector<std::string> names = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                          "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias"};
  const auto base = std::make_shared<FrozenBase>(model, random_pool(140, 1),
                                                 std::vector<std::string>{"conv1", "conv2", "fc1", "fc2"}, 512, true);
  ASSERT_FALSE(base->caches_features());
  TrainSettings ts;
  ts.batch_size = 10;
  ts.local_epochs = 2;
  ts.lr = 0.05;
  ts.momentum = 0.5;
  ts.prox_mu = 0.01;
  const std::vector<std::pair<int64_t, int64_t>> data = {{0, 40}, {40, 23}, {63, 41}, {104, 36}};
  std::vector<LocalTrainJob> jobs;
  for (int k = 0; k < 4; ++k) {
    jobs.push_back(job_for(copies_of(*model, names), k, data[k].first, data[k].second));
    jobs.back().prox_reference = tensor_map_clone(jobs.back().adapters);
  }
  // Round 1 one by one gives each client its momentum; round 2 starts from it.
  const std::vector<LocalTrainResult> first = one_by_one(*base, jobs, ts);
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    jobs[k].adapters = first[k].adapters;
    jobs[k].optimizer_state = first[k].optimizer_state;
    jobs[k].seed += 100;
    ASSERT_FALSE(jobs[k].optimizer_state.empty());
  }
  const auto alone = one_by_one(*base, jobs, ts);
  const auto stacked = train_stacked(*base, copies(jobs), ts);
  expect_same_results(stacked, alone, 1e-5);
  // The tensors really trained (the comparison is not between two unchanged maps).
  EXPECT_GT(max_abs_diff(alone[0].adapters.at("conv1.weight"), jobs[0].adapters.at("conv1.weight")), 1e-4);

  // Negative control: the same jobs with the clients' seeds (data order, dropout) swapped
  // differ by far more than the tolerance, so the check above can fail.
  std::vector<LocalTrainJob> swapped = jobs;
  std::swap(swapped[0].seed, swapped[2].seed);
  const auto other = train_stacked(*base, copies(swapped), ts);
  EXPECT_GT(max_abs_diff(other[0].adapters.at("fc2.weight"), alone[0].adapters.at("fc2.weight")), 1e-3);
}

// mlp_2nn trained whole with Adam through the task's train_group (what the scheduler calls).
TEST(StackedTraining, Mlp2nnFullCopiesWithAdamThroughTheTask) {
  auto model = make_mlp_2nn(10, 6);
  const std::vector<std::string> names = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
  const auto base = std::make_shared<FrozenBase>(model, random_pool(96, 2),
                                                 std::vector<std::string>{"fc1", "fc2", "fc3"}, 512, true);
  TrainSettings ts;
  ts.batch_size = 8;
  ts.local_epochs = 1;
  ts.optimizer = OptimizerKind::adam;
  ts.lr = 1e-3;
  std::vector<LocalTrainJob> jobs;
  for (int k = 0; k < 3; ++k) jobs.push_back(job_for(copies_of(*model, names), k, 32 * k, 32));
  for (const auto& j : jobs) {
    EXPECT_TRUE(stackable(j));
    EXPECT_FALSE(groupable(j));
    EXPECT_TRUE(base->can_stack(j.adapters));
  }
  const auto alone = one_by_one(*base, jobs, ts);
  ClassificationTask task(base);
  const auto grouped = task.train_group(copies(jobs), ts, LoraSettings{});
  expect_same_results(grouped, alone, 1e-5);
  // It took the stacked path (deterministic: bit for bit what train_stacked gives).
  const auto stacked = train_stacked(*base, copies(jobs), ts);
  for (std::size_t k = 0; k < jobs.size(); ++k)
    for (const auto& [name, t] : stacked[k].adapters) EXPECT_TRUE(at::equal(grouped[k].adapters.at(name), t)) << name;
}

// A linear probe on cnn_mnist's cached trunk features, and on features computed per batch
// (a trunk target: no cache), SGD with momentum and weight decay.
TEST(StackedTraining, LinearProbesEqualOneByOne) {
  auto model = make_cnn_mnist(10, 7);
  for (const bool cached : {true, false}) {
    SCOPED_TRACE(cached ? "cached features" : "features per batch");
    const auto base = std::make_shared<FrozenBase>(model, random_pool(90, 3),
                                                   std::vector<std::string>{cached ? "fc2" : "fc1"});
    ASSERT_EQ(base->caches_features(), cached);
    TrainSettings ts;
    ts.batch_size = 7;
    ts.local_epochs = 2;
    ts.lr = 0.1;
    ts.momentum = 0.9;
    ts.weight_decay = 1e-3;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    const TensorMap probe = {{kProbeWeight, 0.1 * at::randn({10, base->feature_size()}, gen)},
                             {kProbeBias, at::zeros({10})}};
    std::vector<LocalTrainJob> jobs;
    for (int k = 0; k < 3; ++k) jobs.push_back(job_for(probe, k, 30 * k, 30));
    EXPECT_TRUE(base->can_stack(jobs[0].adapters));
    const auto alone = one_by_one(*base, jobs, ts);
    expect_same_results(train_stacked(*base, copies(jobs), ts), alone, 1e-5);
    EXPECT_GT(max_abs_diff(alone[1].adapters.at(kProbeWeight), jobs[1].adapters.at(kProbeWeight)), 1e-4);
  }
}

TEST(StackedTraining, RefusesJobsItCannotStack) {
  auto model = make_mlp_2nn(10, 6);
  const auto base = std::make_shared<FrozenBase>(model, random_pool(40, 3), std::vector<std::string>{"fc3"});
  TrainSettings ts;
  ts.batch_size = 8;
  LocalTrainJob full = job_for(copies_of(*model, {"fc3.weight", "fc3.bias"}), 0, 0, 20);
  LocalTrainJob other = job_for(copies_of(*model, {"fc3.weight"}), 1, 20, 20);
  LocalTrainJob lora;
  lora.adapters = lora_init(base->targets(), LoraSettings{}, 3);
  for (const auto& [n, t] : lora.adapters) lora.trainable.insert(n);
  lora.indices = {0, 1, 2};
  EXPECT_FALSE(stackable(lora));
  EXPECT_TRUE(groupable(lora));
  EXPECT_THROW((void)train_stacked(*base, {full, lora}, ts), std::invalid_argument);
  EXPECT_THROW((void)train_stacked(*base, {full, other}, ts), std::invalid_argument); // different tensors
  LocalTrainJob wrong_shape = full;
  wrong_shape.adapters["fc3.weight"] = at::zeros({3, 3});
  EXPECT_FALSE(base->can_stack(wrong_shape.adapters));
  // The task falls back to one by one for a mixed group, with the same results as alone.
  ClassificationTask task(base);
  const auto mixed = task.train_group({full, other}, ts, LoraSettings{});
  const LocalTrainResult a = train_local(*base, other, ts, LoraSettings{});
  EXPECT_TRUE(at::equal(mixed[1].adapters.at("fc3.weight"), a.adapters.at("fc3.weight")));
}

} // namespace
} // namespace fedvlm
