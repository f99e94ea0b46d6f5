// tests/fl/runtime/compute_device_test.cpp — device names, the CPU fallback, a model on the wrong device, and CUDA parity where built.
#include "fl/runtime/compute_device.hpp"
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

TEST(ComputeDevice, NamesAndTheCpuFallbackSayWhy) {
  for (const char* ok : {"cpu", "cuda", "cuda:0", "cuda:12"}) EXPECT_TRUE(valid_device_name(ok)) << ok;
  for (const char* bad : {"", "gpu", "cuda:", "cuda:x", "CUDA", "cuda:-1", "mps"}) EXPECT_FALSE(valid_device_name(bad)) << bad;
  EXPECT_THROW((void)resolve_device("gpu"), std::invalid_argument);
  const DeviceChoice cpu = resolve_device("cpu");
  EXPECT_TRUE(cpu.device.is_cpu());
  EXPECT_TRUE(cpu.fallback.empty());
  const DeviceChoice far = resolve_device("cuda:99");
  EXPECT_TRUE(far.device.is_cpu());
  EXPECT_FALSE(far.fallback.empty());
  if (!at::hasCUDA()) {
    const DeviceChoice gpu = resolve_device("cuda");
    EXPECT_TRUE(gpu.device.is_cpu());
    EXPECT_NE(gpu.fallback.find("no CUDA support"), std::string::npos) << gpu.fallback;
  } else {
    EXPECT_TRUE(resolve_device("cuda").device.is_cuda());
    EXPECT_NE(far.fallback.find("GPU"), std::string::npos) << far.fallback;
  }
}

ImageDataset random_pool(int64_t n, int64_t channels, int64_t side) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  ImageDataset d;
  d.images = at::rand({n, channels, side, side}, gen);
  d.labels = at::randint(0, 10, {n}, gen, at::kLong);
  for (int c = 0; c < 10; ++c) d.class_names.push_back("c" + std::to_string(c));
  return d;
}

std::shared_ptr<ImageClassifier> on_device(std::shared_ptr<ImageClassifier> model, c10::Device device) {
  for (auto& [name, t] : model->mutable_state()) t = t.to(device);
  return model;
}

TEST(ComputeDevice, FrozenBaseRefusesAModelOnAnotherDevice) {
  try {
    FrozenBase base(make_mlp_2nn(10, 1), random_pool(4, 1, 28), {"fc1"}, 512, false, c10::Device("meta"));
    FAIL() << "accepted a CPU model for a meta base";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("is on cpu, expected meta"), std::string::npos) << e.what();
  }
}

// On a machine whose LibTorch has CUDA (scripts/device_build.sh): the same client's training on
// the GPU and on the CPU, the same masks and order, agree to float rounding.
TEST(CudaTraining, ClassifierTrainingOnTheGpuMatchesTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "this LibTorch has no CUDA (or no GPU is visible)";
  const c10::Device gpu = resolve_device("cuda").device;
  auto pool = random_pool(48, 1, 28);
  const auto cpu_base = std::make_shared<FrozenBase>(make_cnn_mnist(10, 4), pool, std::vector<std::string>{"fc1", "fc2"});
  const auto gpu_base = std::make_shared<FrozenBase>(on_device(make_cnn_mnist(10, 4), gpu), pool,
                                                     std::vector<std::string>{"fc1", "fc2"}, 512, false, gpu);
  LoraSettings lora;
  lora.dropout = 0.1;
  LocalTrainJob job;
  job.adapters = lora_init(cpu_base->targets(), lora, 9);
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.indices.resize(48);
  std::iota(job.indices.begin(), job.indices.end(), 0);
  job.seed = 12;
  TrainSettings ts;
  ts.batch_size = 8;
  ts.local_epochs = 2;
  const LocalTrainResult on_cpu = train_local(*cpu_base, job, ts, lora);
  const LocalTrainResult on_gpu = train_local(*gpu_base, job, ts, lora);
  for (const auto& [name, t] : on_cpu.adapters) {
    ASSERT_TRUE(on_gpu.adapters.at(name).device().is_cpu()) << name << ": results come back on the CPU";
    EXPECT_TRUE(at::allclose(on_gpu.adapters.at(name), t, 1e-3, 1e-4)) << name;
  }
  const EvalResult e_cpu = evaluate_local(*cpu_base, on_cpu.adapters, job.indices, lora, 16);
  const EvalResult e_gpu = evaluate_local(*gpu_base, on_gpu.adapters, job.indices, lora, 16);
  EXPECT_NEAR(e_gpu.loss, e_cpu.loss, 1e-3);
}

} // namespace
} // namespace fedvlm
