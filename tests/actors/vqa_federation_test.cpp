// tests/actors/vqa_federation_test.cpp — the Florence-2 VQA path through the engine: task, cache, pLoRA over actors.
#include "actors/run_driver.hpp"
#include "fl/tasks/vqa_task.hpp"
#include "tests/prometheus_harness.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <mutex>

namespace {

using namespace fedvlm;
using fedvlm::testing::TempDir;
using fedvlm::testing::write_text_file;

class Recorder : public RunObserverBase {
public:
  void client_evaluated(const ClientRoundRecord& r) override {
    std::lock_guard<std::mutex> lock(mutex_);
    records.push_back(r);
  }
  std::vector<ClientRoundRecord> records;
  [[nodiscard]] const ClientRoundRecord& at(int client, int round) const {
    for (const auto& r : records)
      if (r.client == client && r.round == round) return r;
    throw std::out_of_range("no record");
  }

private:
  std::mutex mutex_;
};

ExperimentConfig tiny_vqa(const std::filesystem::path& out) {
  ExperimentConfig c;
  c.name = "vqa_test";
  c.output_dir = out;
  c.model.arch = "florence2_tiny";
  c.data.dataset = "synthetic_vqa";
  c.data.synthetic_domains = 2;
  c.data.synthetic_per_domain = 16;
  c.data.test_fraction = 0.25;
  c.data.max_new_tokens = 4;
  c.partition.scheme = PartitionScheme::by_domain;
  c.federation.clients = 2;
  c.federation.rounds = 2;
  c.partition.clients = 2;
  c.strategy = StrategyKind::plora;
  c.lora_targets = {"last_decoder_layer", "language_model.lm_head"};
  c.lora.dropout = 0.0;
  c.train.optimizer = OptimizerKind::adamw;
  c.train.lr = 0.01;
  c.train.local_epochs = 3;
  c.train.batch_size = 8;
  c.scheduler.concurrency = 2;
  return c;
}

TEST(VqaTask, NormalizeAnswerForExactMatch) {
  EXPECT_EQ(normalize_answer("  Red.\n"), "red");
  EXPECT_EQ(normalize_answer("Blue"), normalize_answer("blue "));
  EXPECT_NE(normalize_answer("red car"), normalize_answer("red"));
}

TEST(VqaTask, EncoderOutputIsCachedAndLabelsAreWrapped) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  const auto setup = prepare_run(tiny_vqa(dir.path()), unused, SetupMode::execute);
  const auto* task = dynamic_cast<const VqaTask*>(setup.task.get());
  ASSERT_NE(task, nullptr);
  EXPECT_NE(task->cache_summary().find("cached encoder output"), std::string::npos) << task->cache_summary();
  EXPECT_EQ(task->size(), 32);
  // Labels are <s> answer </s>, then -100.
  const at::Tensor lab = task->labels(at::tensor({0, 1}, at::kLong));
  EXPECT_EQ(lab[0][0].item<int64_t>(), 0);
  EXPECT_TRUE(lab.eq(2).any().item<bool>());
}

TEST(VqaTask, TrainingLowersLossAndTouchesOnlyTheAdaptedLayers) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  auto c = tiny_vqa(dir.path());
  c.lora_targets = {"last_decoder_layer"};
  const auto setup = prepare_run(c, unused, SetupMode::execute);
  ASSERT_EQ(setup.targets.size(), 10u); // q, k, v, out of both attentions, fc1, fc2
  for (const auto& [name, shape] : setup.targets)
    EXPECT_EQ(name.rfind("language_model.model.decoder.layers.1.", 0), 0u) << name;

  LocalTrainJob job;
  job.adapters = initial_adapters(c, setup, 0);
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.indices = setup.splits[0].train;
  job.seed = 1;
  const EvalResult before = setup.task->evaluate(job.adapters, job.indices, c.lora, 16);
  TrainSettings ts = c.train;
  ts.local_epochs = 8;
  const LocalTrainResult trained = setup.task->train(job, ts, c.lora);
  const EvalResult after = setup.task->evaluate(trained.adapters, job.indices, c.lora, 16);
  EXPECT_LT(after.loss, before.loss - 0.05) << before.loss << " -> " << after.loss;
  ASSERT_EQ(after.task_metrics.count(kExactMatch), 1u);
  EXPECT_GE(after.task_metrics.at(kExactMatch), 0.0);
  EXPECT_LE(after.task_metrics.at(kExactMatch), 1.0);
  for (const auto& [name, t] : trained.adapters) {
    EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_EQ(name.rfind("language_model.model.decoder.layers.1.", 0), 0u) << name;
  }
}

// Two clients' decoder passes as one (scheduler.batch_clients) equal training them one by one,
// with dropout on (each client's masks from its own generator).
TEST(VqaTask, ClientsTrainedInOnePassMatchOneByOne) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  auto c = tiny_vqa(dir.path());
  c.lora.dropout = 0.1;
  const auto setup = prepare_run(c, unused, SetupMode::execute);
  std::vector<LocalTrainJob> jobs;
  std::vector<LocalTrainResult> alone;
  for (int k = 0; k < 2; ++k) {
    LocalTrainJob job;
    job.adapters = initial_adapters(c, setup, k);
    for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
    job.indices = setup.splits[static_cast<std::size_t>(k)].train;
    job.seed = 11 + static_cast<uint64_t>(k);
    jobs.push_back(job);
    alone.push_back(setup.task->train(job, c.train, c.lora));
  }
  const auto grouped = setup.task->train_group(jobs, c.train, c.lora);
  ASSERT_EQ(grouped.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(grouped[k].steps, alone[k].steps);
    EXPECT_NEAR(grouped[k].mean_loss, alone[k].mean_loss, 1e-5) << k;
    for (const auto& [name, t] : alone[k].adapters)
      EXPECT_TRUE(at::allclose(grouped[k].adapters.at(name), t, 1e-4, 1e-5))
          << name << " max diff " << (grouped[k].adapters.at(name) - t).abs().max().item<double>();
  }
}

// Where LibTorch has CUDA (scripts/device_build.sh): the tiny Florence-2's training on the GPU
// matches the CPU's (same masks, drawn on the CPU), and its answers come back as token ids.
TEST(CudaTraining, VqaOnTheGpuMatchesTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "this LibTorch has no CUDA (or no GPU is visible)";
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  auto c = tiny_vqa(dir.path());
  c.lora.dropout = 0.1;
  const auto on_cpu = prepare_run(c, unused, SetupMode::execute);
  c.device = "cuda";
  const auto on_gpu = prepare_run(c, unused, SetupMode::execute);
  LocalTrainJob job;
  job.adapters = initial_adapters(c, on_cpu, 0);
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.indices = on_cpu.splits[0].train;
  job.seed = 5;
  const LocalTrainResult a = on_cpu.task->train(job, c.train, c.lora);
  const LocalTrainResult b = on_gpu.task->train(job, c.train, c.lora);
  for (const auto& [name, t] : a.adapters) {
    ASSERT_TRUE(b.adapters.at(name).device().is_cpu()) << name;
    EXPECT_TRUE(at::allclose(b.adapters.at(name), t, 1e-3, 1e-4)) << name;
  }
  const EvalResult ea = on_cpu.task->evaluate(a.adapters, on_cpu.splits[0].test, c.lora, 8);
  const EvalResult eb = on_gpu.task->evaluate(b.adapters, on_gpu.splits[0].test, c.lora, 8);
  EXPECT_NEAR(eb.loss, ea.loss, 1e-3);
}

TEST(VqaFederation, TwoClientsTwoRoundsOfPLoRALowerTheLoss) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  const auto c = tiny_vqa(dir.path());
  const auto setup = prepare_run(c, unused, SetupMode::execute);
  Recorder rec;
  const RunDone done = run_federation(c, "vqa_test/run", setup, rec);
  ASSERT_EQ(rec.records.size(), 2u * 3u);
  for (int k = 0; k < 2; ++k) {
    EXPECT_LT(rec.at(k, 2).loss, rec.at(k, 0).loss - 0.1) << "client " << k;
    ASSERT_EQ(rec.at(k, 2).task_metrics.count(kExactMatch), 1u) << "client " << k;
    EXPECT_TRUE(std::isfinite(rec.at(k, 2).task_metrics.at(kExactMatch)));
    EXPECT_TRUE(rec.at(k, 2).participated);
  }
  // pLoRA on the decoder: B shared, A private.
  const std::string b = "language_model.model.decoder.layers.1.fc1.lora_B";
  const std::string a = "language_model.model.decoder.layers.1.fc1.lora_A";
  EXPECT_TRUE(at::equal(done.adapters[0].at(b), done.adapters[1].at(b)));
  EXPECT_FALSE(at::equal(done.adapters[0].at(a), done.adapters[1].at(a)));
  EXPECT_EQ(done.global.count(a), 0u);
}

TEST(VqaTask, BFloat16ModelTrainsFloat32AdaptersAndTracksFloat32Results) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  auto c32 = tiny_vqa(dir.path());
  auto c16 = c32;
  c16.model.precision = "bfloat16";
  const auto s32 = prepare_run(c32, unused, SetupMode::execute);
  const auto s16 = prepare_run(c16, unused, SetupMode::execute);
  const TensorMap init = initial_adapters(c32, s32, 0);
  const EvalResult e32 = s32.task->evaluate(init, s32.splits[0].test, c32.lora, 16);
  const EvalResult e16 = s16.task->evaluate(init, s16.splits[0].test, c16.lora, 16);
  EXPECT_NEAR(e16.loss, e32.loss, 0.05); // bf16 keeps ~3 significant digits
  EXPECT_LT(s16.task->shared_bytes(), s32.task->shared_bytes() * 0.6); // weights and cache halve

  LocalTrainJob job;
  job.adapters = init;
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.indices = s16.splits[0].train;
  job.seed = 2;
  const LocalTrainResult trained = s16.task->train(job, c16.train, c16.lora);
  for (const auto& [name, t] : trained.adapters) EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
  const EvalResult after = s16.task->evaluate(trained.adapters, job.indices, c16.lora, 16);
  const EvalResult before = s16.task->evaluate(init, job.indices, c16.lora, 16);
  EXPECT_LT(after.loss, before.loss - 0.05);
}

TEST(VqaSetup, ClearErrorsForMissingWeightsTokenizerAndTargets) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  auto c = tiny_vqa(dir.path());
  c.model.weights = dir.path() / "nope.safetensors";
  try {
    (void)prepare_run(c, unused, SetupMode::plan);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("model.weights"), std::string::npos) << e.what();
  }
  c = tiny_vqa(dir.path());
  c.lora_targets = {"language_model.model.decoder.layers.9.fc1"};
  try {
    (void)prepare_run(c, unused, SetupMode::plan);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lora.targets"), std::string::npos) << e.what();
  }
  c = tiny_vqa(dir.path());
  c.data.dataset = "vqa_folder";
  c.data.path = dir.path() / "missing";
  try {
    (void)prepare_run(c, unused, SetupMode::plan);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("data.path"), std::string::npos) << e.what();
  }
}

TEST(VqaSetup, CheckpointConfigOfAnotherSizeIsRefusedBeforeLoading) {
  TempDir dir("fedvlm-vqa");
  DatasetCache unused;
  auto c = tiny_vqa(dir.path());
  c.model.weights = dir.path() / "checkpoint";
  std::filesystem::create_directories(c.model.weights);
  // The reference's defaults: a Florence-2-large-sized model, not the tiny one model.arch names.
  write_text_file(c.model.weights / "config.json",
                  R"({"model_type": "florence2", "vision_config": {}, "text_config": {}})");
  try {
    (void)prepare_run(c, unused, SetupMode::plan);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("model.weights"), std::string::npos) << what;
    EXPECT_NE(what.find("describes another model than model.arch = florence2_tiny"), std::string::npos) << what;
    EXPECT_NE(what.find("vision_config.dim_embed [256, 512, 1024, 2048] vs [16, 32, 64, 128]"), std::string::npos)
        << what;
  }
}

} // namespace
