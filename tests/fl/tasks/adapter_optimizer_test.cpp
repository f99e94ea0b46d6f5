// tests/fl/tasks/adapter_optimizer_test.cpp — SGD/AdamW over named tensors against LibTorch's own optimizers.
#include "fl/tasks/adapter_optimizer.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/optim.h> // reference implementations (the sources never use torch::optim)

#include <set>
#include <string>
#include <vector>

namespace {

constexpr int kSteps = 3;
const std::vector<std::string> kNames = {"fc.lora_A", "fc.lora_B"};

// Identical starting parameters and per-step gradients for both sides of a comparison.
struct Problem {
  std::vector<at::Tensor> init;                // one per name
  std::vector<std::vector<at::Tensor>> grads;  // [step][name]
};

Problem make_problem(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Problem p;
  p.init = {at::randn({3, 5}, gen, at::kFloat), at::randn({4, 3}, gen, at::kFloat)};
  for (int s = 0; s < kSteps; ++s)
    p.grads.push_back({at::randn({3, 5}, gen, at::kFloat), at::randn({4, 3}, gen, at::kFloat)});
  return p;
}

fedvlm::TensorMap leaves(const Problem& pb) {
  fedvlm::TensorMap params;
  for (size_t i = 0; i < kNames.size(); ++i)
    params.emplace(kNames[i], pb.init[i].clone().requires_grad_(true));
  return params;
}

// Runs fedvlm::optimizer_step for kSteps steps, gradients set by hand (as backward() would).
fedvlm::TensorMap run_ours(const Problem& pb, const fedvlm::OptimizerSettings& s, fedvlm::TensorMap& state) {
  fedvlm::TensorMap params = leaves(pb);
  const std::set<std::string> trainable(kNames.begin(), kNames.end());
  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < kNames.size(); ++i) params.at(kNames[i]).mutable_grad() = pb.grads[step][i].clone();
    fedvlm::optimizer_step(params, trainable, state, s);
  }
  return params;
}

// The same with a torch::optim optimizer; returns the final parameters in kNames order.
template <class Optim, class Options>
std::vector<at::Tensor> run_torch(const Problem& pb, const Options& options) {
  std::vector<at::Tensor> params;
  for (const auto& t : pb.init) params.push_back(t.clone().requires_grad_(true));
  Optim opt(params, options);
  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = pb.grads[step][i].clone();
    opt.step();
  }
  return params;
}

void expect_close(const Problem& pb, const fedvlm::TensorMap& ours, const std::vector<at::Tensor>& ref) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    const at::Tensor a = ours.at(kNames[i]).detach();
    EXPECT_TRUE(at::allclose(a, ref[i].detach(), 0.0, 1e-6))
        << kNames[i] << " max diff " << (a - ref[i].detach()).abs().max().item<double>();
    // The steps must have moved the parameter, or two no-op optimizers would agree.
    EXPECT_GT((a - pb.init[i]).abs().max().item<double>(), 1e-3) << kNames[i];
  }
}

TEST(AdapterOptimizer, SgdMomentumMatchesTorchOptim) {
  const Problem pb = make_problem(1);
  fedvlm::OptimizerSettings s;
  s.kind = fedvlm::OptimizerKind::sgd;
  s.lr = 0.05;
  s.momentum = 0.9;
  s.weight_decay = 0.0;
  fedvlm::TensorMap state;
  const auto ours = run_ours(pb, s, state);
  const auto ref = run_torch<torch::optim::SGD>(pb, torch::optim::SGDOptions(0.05).momentum(0.9));
  expect_close(pb, ours, ref);
}

TEST(AdapterOptimizer, SgdMomentumWithWeightDecayMatchesTorchOptim) {
  const Problem pb = make_problem(2);
  fedvlm::OptimizerSettings s;
  s.kind = fedvlm::OptimizerKind::sgd;
  s.lr = 0.1;
  s.momentum = 0.8;
  s.weight_decay = 0.05;
  fedvlm::TensorMap state;
  const auto ours = run_ours(pb, s, state);
  const auto ref = run_torch<torch::optim::SGD>(
      pb, torch::optim::SGDOptions(0.1).momentum(0.8).weight_decay(0.05));
  expect_close(pb, ours, ref);
}

TEST(AdapterOptimizer, PlainSgdWithoutMomentumKeepsNoState) {
  const Problem pb = make_problem(3);
  fedvlm::OptimizerSettings s;
  s.kind = fedvlm::OptimizerKind::sgd;
  s.lr = 0.2;
  s.momentum = 0.0;
  fedvlm::TensorMap state;
  const auto ours = run_ours(pb, s, state);
  const auto ref = run_torch<torch::optim::SGD>(pb, torch::optim::SGDOptions(0.2));
  expect_close(pb, ours, ref);
  EXPECT_TRUE(state.empty());
}

TEST(AdapterOptimizer, AdamWWithWeightDecayMatchesTorchOptim) {
  const Problem pb = make_problem(4);
  fedvlm::OptimizerSettings s;
  s.kind = fedvlm::OptimizerKind::adamw;
  s.lr = 0.01;
  s.weight_decay = 0.1;
  s.beta1 = 0.8; // non-default betas and eps, so ignoring the settings would show
  s.beta2 = 0.99;
  s.eps = 1e-6;
  fedvlm::TensorMap state;
  const auto ours = run_ours(pb, s, state);

  std::vector<at::Tensor> params;
  for (const auto& t : pb.init) params.push_back(t.clone().requires_grad_(true));
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(0.01)
                                      .betas(std::make_tuple(0.8, 0.99))
                                      .eps(1e-6)
                                      .weight_decay(0.1));
  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = pb.grads[step][i].clone();
    opt.step();
  }
  expect_close(pb, ours, params);

  // The moment estimates match torch's per-parameter state too.
  for (size_t i = 0; i < kNames.size(); ++i) {
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(
        *opt.state().at(c10::guts::to_string(params[i].unsafeGetTensorImpl())));
    EXPECT_TRUE(at::allclose(state.at(kNames[i] + ".exp_avg"), st.exp_avg(), 0.0, 1e-7)) << kNames[i];
    EXPECT_TRUE(at::allclose(state.at(kNames[i] + ".exp_avg_sq"), st.exp_avg_sq(), 0.0, 1e-7)) << kNames[i];
    EXPECT_EQ(state.at(kNames[i] + ".step").item<double>(), static_cast<double>(st.step()));
  }
}

TEST(AdapterOptimizer, AdamWithL2WeightDecayMatchesTorchOptim) {
  // FLoRA's optimizer: torch.optim.Adam, weight decay as L2 in the gradient, eps 1e-6.
  const Problem pb = make_problem(5);
  fedvlm::OptimizerSettings s;
  s.kind = fedvlm::OptimizerKind::adam;
  s.lr = 0.01;
  s.weight_decay = 0.2;
  s.eps = 1e-6;
  fedvlm::TensorMap state;
  const auto ours = run_ours(pb, s, state);
  const auto ref = run_torch<torch::optim::Adam>(pb, torch::optim::AdamOptions(0.01).eps(1e-6).weight_decay(0.2));
  expect_close(pb, ours, ref);
  // Decoupled decay (AdamW) is another update: the check can tell them apart.
  s.kind = fedvlm::OptimizerKind::adamw;
  fedvlm::TensorMap other_state;
  const auto decoupled = run_ours(pb, s, other_state);
  EXPECT_GT((decoupled.at(kNames[0]) - ours.at(kNames[0])).abs().max().item<double>(), 1e-4);
}

TEST(AdapterOptimizer, StateKeysNamedAsDocumented) {
  const Problem pb = make_problem(5);
  fedvlm::OptimizerSettings sgd;
  sgd.kind = fedvlm::OptimizerKind::sgd;
  sgd.momentum = 0.9;
  fedvlm::TensorMap s1;
  (void)run_ours(pb, sgd, s1);
  std::set<std::string> keys;
  for (const auto& [k, v] : s1) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"fc.lora_A.momentum", "fc.lora_B.momentum"}));
  EXPECT_EQ(s1.at("fc.lora_A.momentum").sizes(), pb.init[0].sizes());

  fedvlm::OptimizerSettings adamw;
  adamw.kind = fedvlm::OptimizerKind::adamw;
  fedvlm::TensorMap s2;
  (void)run_ours(pb, adamw, s2);
  keys.clear();
  for (const auto& [k, v] : s2) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"fc.lora_A.exp_avg", "fc.lora_A.exp_avg_sq", "fc.lora_A.step",
                                         "fc.lora_B.exp_avg", "fc.lora_B.exp_avg_sq", "fc.lora_B.step"}));
  EXPECT_EQ(s2.at("fc.lora_B.step").item<double>(), kSteps);
  EXPECT_EQ(s2.at("fc.lora_B.exp_avg").sizes(), pb.init[1].sizes());
}

TEST(AdapterOptimizer, StateCarriesAcrossCalls) {
  // Three steps split over two state hand-overs (as across rounds) equal three steps in one go.
  const Problem pb = make_problem(6);
  for (auto kind : {fedvlm::OptimizerKind::sgd, fedvlm::OptimizerKind::adamw}) {
    fedvlm::OptimizerSettings s;
    s.kind = kind;
    s.lr = 0.03;
    s.weight_decay = 0.01;
    fedvlm::TensorMap state_all;
    const auto all = run_ours(pb, s, state_all);

    fedvlm::TensorMap params = leaves(pb);
    const std::set<std::string> trainable(kNames.begin(), kNames.end());
    fedvlm::TensorMap state;
    for (int step = 0; step < kSteps; ++step) {
      for (size_t i = 0; i < kNames.size(); ++i) params.at(kNames[i]).mutable_grad() = pb.grads[step][i].clone();
      fedvlm::TensorMap carried = fedvlm::tensor_map_clone(state); // a round trip through a message
      fedvlm::optimizer_step(params, trainable, carried, s);
      state = carried;
    }
    for (const auto& n : kNames) EXPECT_TRUE(at::equal(params.at(n).detach(), all.at(n).detach())) << n;
  }
}

TEST(AdapterOptimizer, UntrainableOrGradlessTensorsUntouched) {
  for (auto kind : {fedvlm::OptimizerKind::sgd, fedvlm::OptimizerKind::adamw}) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    const at::Tensor a0 = at::randn({3, 5}, gen, at::kFloat);
    const at::Tensor b0 = at::randn({4, 3}, gen, at::kFloat);
    const at::Tensor c0 = at::randn({2, 2}, gen, at::kFloat);
    fedvlm::TensorMap params = {{"fc.lora_A", a0.clone().requires_grad_(true)},
                                {"fc.lora_B", b0.clone().requires_grad_(true)},
                                {"other.lora_B", c0.clone().requires_grad_(true)}};
    // lora_A has a gradient but is not trainable; other.lora_B is trainable but has no gradient.
    params.at("fc.lora_A").mutable_grad() = at::ones({3, 5});
    params.at("fc.lora_B").mutable_grad() = at::ones({4, 3});
    fedvlm::OptimizerSettings s;
    s.kind = kind;
    s.weight_decay = 0.1; // weight decay must not reach tensors that are skipped either
    fedvlm::TensorMap state;
    fedvlm::optimizer_step(params, {"fc.lora_B", "other.lora_B"}, state, s);
    EXPECT_TRUE(at::equal(params.at("fc.lora_A").detach(), a0));
    EXPECT_TRUE(at::equal(params.at("other.lora_B").detach(), c0));
    EXPECT_FALSE(at::equal(params.at("fc.lora_B").detach(), b0));
    for (const auto& [k, v] : state)
      EXPECT_EQ(k.rfind("fc.lora_B.", 0), 0u) << "unexpected state for " << k;
    EXPECT_FALSE(state.empty());
  }
}

} // namespace
