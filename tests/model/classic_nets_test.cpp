// tests/model/classic_nets_test.cpp — cnn_mnist / cnn_fedavg / mlp_2nn: layout, torch.nn parity (init, logits, gradients, dropout), errors.
#include "model/classic_nets.hpp"
#include "model/safetensors.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace fedvlm {
namespace {

using fedvlm::testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";

at::Tensor random_images(int64_t n, uint64_t seed, int64_t c = 1, int64_t h = 28, int64_t w = 28) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::empty({n, c, h, w}, at::kFloat).normal_(0.0, 1.0, gen);
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

int64_t parameter_count(const ImageClassifier& m) {
  int64_t n = 0;
  for (const std::string& p : m.parameter_names()) n += m.state().at(p).numel();
  return n;
}

ForwardContext training_ctx(uint64_t seed) {
  ForwardContext ctx;
  ctx.dropout_active = true;
  ctx.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return ctx;
}

bool torch_available() {
  static const bool ok =
      std::system((std::string(kPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  return ok;
}

// -- structure --------------------------------------------------------------------------------

TEST(ClassicNets, CnnMnistLayoutAndParameterCount) {
  auto model = make_cnn_mnist(10, 1);
  EXPECT_EQ(model->name(), "cnn_mnist");
  EXPECT_EQ(model->num_classes(), 10);
  // 1·10·25+10 + 10·20·25+20 + 320·50+50 + 50·10+10 (torch.nn counts the same: 21,840).
  EXPECT_EQ(parameter_count(*model), 21840);
  const TensorMap& s = model->state();
  ASSERT_EQ(s.size(), 8u);
  EXPECT_EQ(s.at("conv1.weight").sizes(), (at::IntArrayRef{10, 1, 5, 5}));
  EXPECT_EQ(s.at("conv1.bias").sizes(), (at::IntArrayRef{10}));
  EXPECT_EQ(s.at("conv2.weight").sizes(), (at::IntArrayRef{20, 10, 5, 5}));
  EXPECT_EQ(s.at("conv2.bias").sizes(), (at::IntArrayRef{20}));
  EXPECT_EQ(s.at("fc1.weight").sizes(), (at::IntArrayRef{50, 320}));
  EXPECT_EQ(s.at("fc1.bias").sizes(), (at::IntArrayRef{50}));
  EXPECT_EQ(s.at("fc2.weight").sizes(), (at::IntArrayRef{10, 50}));
  EXPECT_EQ(s.at("fc2.bias").sizes(), (at::IntArrayRef{10}));
  EXPECT_EQ(model->parameter_names().size(), 8u);

  const auto layers = model->adaptable_layers(); // the Linears only, not the convolutions
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers.at("fc1").out_features, 50);
  EXPECT_EQ(layers.at("fc1").in_features, 320);
  EXPECT_EQ(layers.at("fc2").out_features, 10);
  EXPECT_EQ(layers.at("fc2").in_features, 50);
  EXPECT_TRUE(model->in_head("fc2"));
  EXPECT_FALSE(model->in_head("fc1"));
  EXPECT_FALSE(model->in_head("conv2"));

  ForwardContext ctx;
  const at::Tensor x = random_images(3, 2);
  const at::Tensor f = model->features(x, ctx);
  EXPECT_EQ(f.sizes(), (at::IntArrayRef{3, 50}));
  EXPECT_TRUE((f >= 0).all().item<bool>()); // after fc1's ReLU
  const at::Tensor y = model->head(f, ctx);
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{3, 10}));
  EXPECT_TRUE(at::equal(model->forward(x, ctx), y));
}

TEST(ClassicNets, CnnFedAvgLayoutAndTheFedAvgPapersParameterCount) {
  auto model = make_cnn_fedavg(10, 1);
  EXPECT_EQ(model->name(), "cnn_fedavg");
  // conv1 32·1·25+32 = 832, conv2 64·32·25+64 = 51,264, fc1 (64·7·7 = 3136)·512+512 = 1,606,144,
  // fc2 512·10+10 = 5,130: McMahan et al.'s "1,663,370 total parameters".
  EXPECT_EQ(parameter_count(*model), 832 + 51264 + 1606144 + 5130);
  EXPECT_EQ(parameter_count(*model), 1663370);
  const TensorMap& s = model->state();
  ASSERT_EQ(s.size(), 8u);
  EXPECT_EQ(s.at("conv1.weight").sizes(), (at::IntArrayRef{32, 1, 5, 5}));
  EXPECT_EQ(s.at("conv2.weight").sizes(), (at::IntArrayRef{64, 32, 5, 5}));
  EXPECT_EQ(s.at("fc1.weight").sizes(), (at::IntArrayRef{512, 3136}));
  EXPECT_EQ(s.at("fc2.weight").sizes(), (at::IntArrayRef{10, 512}));
  EXPECT_EQ(s.at("fc2.bias").sizes(), (at::IntArrayRef{10}));
  const auto layers = model->adaptable_layers();
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers.at("fc1").in_features, 3136);
  EXPECT_TRUE(model->in_head("fc2"));
  EXPECT_FALSE(model->in_head("fc1"));

  ForwardContext ctx;
  const at::Tensor x = random_images(3, 2);
  const at::Tensor f = model->features(x, ctx);
  EXPECT_EQ(f.sizes(), (at::IntArrayRef{3, 512}));
  EXPECT_TRUE((f >= 0).all().item<bool>()); // after fc1's ReLU
  EXPECT_TRUE(at::equal(model->forward(x, ctx), model->head(f, ctx)));
  // No dropout in the paper's CNN: training mode changes nothing.
  ForwardContext t = training_ctx(3);
  EXPECT_TRUE(at::equal(model->forward(x, t), model->forward(x, ctx)));
}

TEST(ClassicNets, Mlp2nnLayoutAndParameterCount) {
  auto model = make_mlp_2nn(10, 1);
  EXPECT_EQ(model->name(), "mlp_2nn");
  // 784·200+200 + 200·200+200 + 200·10+10: the FedAvg paper's "199,210 total parameters".
  EXPECT_EQ(parameter_count(*model), 199210);
  ASSERT_EQ(model->state().size(), 6u);
  EXPECT_EQ(model->state().at("fc1.weight").sizes(), (at::IntArrayRef{200, 784}));
  EXPECT_EQ(model->state().at("fc2.weight").sizes(), (at::IntArrayRef{200, 200}));
  EXPECT_EQ(model->state().at("fc3.weight").sizes(), (at::IntArrayRef{10, 200}));
  EXPECT_EQ(model->state().at("fc3.bias").sizes(), (at::IntArrayRef{10}));
  const auto layers = model->adaptable_layers();
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers.at("fc1").in_features, 784);
  EXPECT_EQ(layers.at("fc3").out_features, 10);
  EXPECT_TRUE(model->in_head("fc3"));
  EXPECT_FALSE(model->in_head("fc2"));

  ForwardContext ctx;
  const at::Tensor f = model->features(random_images(2, 3), ctx);
  EXPECT_EQ(f.sizes(), (at::IntArrayRef{2, 200}));
  EXPECT_EQ(model->head(f, ctx).sizes(), (at::IntArrayRef{2, 10}));
  EXPECT_EQ(make_mlp_2nn(62, 1)->forward(random_images(2, 3), ctx).sizes(),
            (at::IntArrayRef{2, 62}));
}

TEST(ClassicNets, FactoryByNameAndItsErrors) {
  ASSERT_EQ(classic_net_names(), (std::vector<std::string>{"cnn_mnist", "cnn_fedavg", "mlp_2nn"}));
  for (const std::string& arch : classic_net_names()) {
    auto m = make_classic_net(arch, 7, 3);
    EXPECT_EQ(m->name(), arch);
    EXPECT_EQ(m->num_classes(), 7);
  }
  const std::string msg = error_of([] { (void)make_classic_net("lenet5", 10, 0); });
  EXPECT_NE(msg.find("lenet5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cnn_mnist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mlp_2nn"), std::string::npos) << msg;
  EXPECT_THROW((void)make_classic_net("lenet5", 10, 0), std::invalid_argument);
  EXPECT_NE(error_of([] { (void)make_cnn_mnist(0, 0); }).find("num_classes"), std::string::npos);
  EXPECT_THROW((void)make_mlp_2nn(0, 0), std::invalid_argument);
}

TEST(ClassicNets, BadShapesGiveClearErrors) {
  for (const std::string& arch : classic_net_names()) {
    auto model = make_classic_net(arch, 10, 1);
    ForwardContext ctx;
    for (const at::Tensor& bad :
         {random_images(2, 1, 3), random_images(2, 1, 1, 32, 32), random_images(2, 1, 1, 28, 27),
          at::zeros({2, 784}), at::zeros({1, 28, 28})}) {
      const std::string msg = error_of([&] { (void)model->features(bad, ctx); });
      EXPECT_NE(msg.find("(N, 1, 28, 28)"), std::string::npos) << arch << ": " << msg;
      EXPECT_NE(msg.find(tensor_shape_string(bad.sizes())), std::string::npos) << msg;
      EXPECT_THROW((void)model->features(bad, ctx), std::invalid_argument);
    }
    const at::Tensor ints = at::zeros({2, 1, 28, 28}, at::kLong);
    EXPECT_NE(error_of([&] { (void)model->features(ints, ctx); }).find("floating"),
              std::string::npos);
    const int64_t width = model->adaptable_layers().at(arch == "mlp_2nn" ? "fc3" : "fc2").in_features;
    const std::string msg = error_of([&] { (void)model->head(at::zeros({2, width + 1}), ctx); });
    EXPECT_NE(msg.find("(N, " + std::to_string(width) + ")"), std::string::npos) << msg;
    EXPECT_THROW((void)model->head(at::zeros({2, width + 1}), ctx), std::invalid_argument);
  }
}

TEST(ClassicNets, InitIsDeterministicInSeedWithTorchDefaultBounds) {
  for (const std::string& arch : classic_net_names()) {
    auto a = make_classic_net(arch, 10, 42);
    auto b = make_classic_net(arch, 10, 42);
    auto c = make_classic_net(arch, 10, 43);
    for (const auto& [key, t] : a->state()) {
      EXPECT_TRUE(at::equal(t, b->state().at(key))) << arch << " " << key;
      EXPECT_FALSE(at::equal(t, c->state().at(key))) << arch << " " << key;
      // Kaiming-uniform a=√5 and the bias rule both give U(±1/√fan_in), fan_in = in × kernel.
      const at::Tensor& w = a->state().at(key.substr(0, key.rfind('.')) + ".weight");
      const double bound = 1.0 / std::sqrt(static_cast<double>(w.numel() / w.size(0)));
      EXPECT_LE(t.abs().max().item<double>(), bound * (1 + 1e-6)) << arch << " " << key;
      if (t.numel() >= 2000) { // enough draws for the spread of U(±b): std b/√3, max near b
        EXPECT_NEAR(t.std().item<double>(), bound / std::sqrt(3.0), 0.03 * bound) << key;
        EXPECT_GT(t.abs().max().item<double>(), 0.99 * bound) << key;
      }
    }
  }
}

// -- gradients and dropout ---------------------------------------------------------------------

TEST(ClassicNets, GradientsReachEveryWeightOnlyWhenTheyRequireGrad) {
  for (const std::string& arch : classic_net_names()) {
    auto model = make_classic_net(arch, 10, 5);
    const at::Tensor x = random_images(4, 9);
    ForwardContext ctx;
    // Frozen weights: no graph at all.
    EXPECT_FALSE(model->forward(x, ctx).requires_grad()) << arch;

    for (const std::string& p : model->parameter_names())
      model->mutable_state().at(p).requires_grad_(true);
    model->forward(x, ctx).pow(2).sum().backward();
    for (const std::string& p : model->parameter_names()) {
      const at::Tensor& g = model->state().at(p).grad();
      ASSERT_TRUE(g.defined()) << arch << " " << p;
      EXPECT_GT(g.abs().sum().item<double>(), 0.0) << arch << " " << p;
    }
  }
}

TEST(ClassicNets, LoraAndDeltaApplyToEveryLinear) {
  for (const std::string& arch : classic_net_names()) {
    auto model = make_classic_net(arch, 10, 5);
    const at::Tensor x = random_images(3, 4);
    ForwardContext plain;
    const at::Tensor base = model->forward(x, plain);

    // A lora_delta on each Linear acts exactly as adding it to that weight.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    TensorMap deltas;
    auto merged = make_classic_net(arch, 10, 5);
    for (const auto& [layer, shape] : model->adaptable_layers()) {
      at::Tensor d = at::empty({shape.out_features, shape.in_features}).normal_(0.0, 0.05, gen);
      deltas[layer + kLoraDelta] = d;
      merged->mutable_state().at(layer + ".weight").add_(d);
    }
    ForwardContext with_delta;
    with_delta.adapters = &deltas;
    const at::Tensor y = model->forward(x, with_delta);
    EXPECT_LT(max_abs_diff(y, merged->forward(x, plain)), 1e-5) << arch;
    EXPECT_GT(max_abs_diff(y, base), 1e-3) << arch; // the deltas did something

    // Fresh LoRA (B = 0) leaves the output unchanged, and its gradient reaches every lora_B.
    LoraSettings lora;
    TensorMap adapters = lora_init(model->adaptable_layers(), lora, 3);
    for (auto& [name, t] : adapters) t.requires_grad_(true);
    ForwardContext with_lora;
    with_lora.adapters = &adapters;
    with_lora.lora = lora;
    const at::Tensor z = model->forward(x, with_lora);
    EXPECT_LT(max_abs_diff(z.detach(), base), 1e-6) << arch;
    z.pow(2).sum().backward();
    for (const auto& [layer, shape] : model->adaptable_layers()) {
      const at::Tensor& g = adapters.at(layer + kLoraB).grad();
      ASSERT_TRUE(g.defined()) << arch << " " << layer;
      EXPECT_GT(g.abs().sum().item<double>(), 0.0) << arch << " " << layer;
    }
  }
}

TEST(ClassicNets, DropoutOnlyInTrainingAndReproducible) {
  auto cnn = make_cnn_mnist(10, 5);
  const at::Tensor x = random_images(8, 6);
  ForwardContext eval;
  const at::Tensor y_eval = cnn->forward(x, eval);
  EXPECT_TRUE(at::equal(cnn->forward(x, eval), y_eval));
  ForwardContext seeded_eval = training_ctx(3);
  seeded_eval.dropout_active = false; // a generator alone does not switch dropout on
  EXPECT_TRUE(at::equal(cnn->forward(x, seeded_eval), y_eval));

  ForwardContext t1 = training_ctx(3), t2 = training_ctx(3), t3 = training_ctx(4);
  const at::Tensor y1 = cnn->forward(x, t1);
  EXPECT_TRUE(at::equal(cnn->forward(x, t2), y1));
  EXPECT_GT(max_abs_diff(y1, y_eval), 1e-3);
  EXPECT_GT(max_abs_diff(cnn->forward(x, t3), y1), 1e-3);

  // The head's dropout: d sum(head(f)) / d f = mask / (1 - p) · column sums of fc2.weight, so
  // the ratio is 0 or 1/(1 - 0.5) = 2 for every feature, and each value occurs.
  const at::Tensor f = cnn->features(x, eval).detach().requires_grad_(true);
  ForwardContext th = training_ctx(8);
  cnn->head(f, th).sum().backward();
  const at::Tensor ratio = f.grad() / cnn->state().at("fc2.weight").sum(0);
  const int64_t zeros = (ratio.abs() < 1e-6).sum().item<int64_t>();
  const int64_t twos = ((ratio - 2.0).abs() < 1e-4).sum().item<int64_t>();
  EXPECT_EQ(zeros + twos, ratio.numel());
  EXPECT_GT(zeros, ratio.numel() / 4);
  EXPECT_GT(twos, ratio.numel() / 4);

  // Channel dropout on conv2: with one sample, a dropped channel gets no gradient at all, so
  // conv2.bias's gradient is zero on whole channels (element dropout would leave it non-zero).
  // A large conv2 bias keeps every channel positive, so no channel is dead through its ReLU.
  const at::Tensor one = random_images(1, 12);
  auto grads_of_conv2_bias = [&](const ForwardContext& ctx) {
    auto m = make_cnn_mnist(10, 5);
    m->mutable_state().at("conv2.bias").fill_(10.0);
    m->mutable_state().at("conv2.bias").requires_grad_(true);
    m->mutable_state().at("conv2.weight").requires_grad_(true);
    m->forward(one, ctx).pow(2).sum().backward();
    return std::make_pair(m->state().at("conv2.bias").grad().clone(),
                          m->state().at("conv2.weight").grad().clone());
  };
  const auto [gb_eval, gw_eval] = grads_of_conv2_bias(eval);
  EXPECT_EQ((gb_eval == 0).sum().item<int64_t>(), 0);
  ForwardContext tc = training_ctx(21);
  const auto [gb, gw] = grads_of_conv2_bias(tc);
  const int64_t dropped = (gb == 0).sum().item<int64_t>();
  EXPECT_GT(dropped, 2);  // about half of 20 channels
  EXPECT_LT(dropped, 18);
  for (int64_t c = 0; c < 20; ++c) {
    if (gb[c].item<float>() == 0.0f) {
      EXPECT_EQ(gw[c].abs().sum().item<double>(), 0.0) << "channel " << c;
    } else {
      EXPECT_GT(gw[c].abs().sum().item<double>(), 0.0) << "channel " << c;
    }
  }

  // Without a generator (torch's global one, at::feature_dropout) it is channel dropout too.
  ForwardContext unseeded;
  unseeded.dropout_active = true;
  const auto [gb_u, gw_u] = grads_of_conv2_bias(unseeded);
  EXPECT_GT((gb_u == 0).sum().item<int64_t>(), 0); // all 20 kept: probability 2^-20
  for (int64_t c = 0; c < 20; ++c)
    EXPECT_EQ(gb_u[c].item<float>() == 0.0f, gw_u[c].abs().sum().item<double>() == 0.0) << c;

  // mlp_2nn has no dropout (the FedAvg paper's 2NN): training mode changes nothing.
  auto mlp = make_mlp_2nn(10, 5);
  ForwardContext tm = training_ctx(3);
  EXPECT_TRUE(at::equal(mlp->forward(x, tm), mlp->forward(x, eval)));
}

// -- parity with torch.nn ----------------------------------------------------------------------

// The generator defines both nets in torch.nn, independently of model/classic_nets.cpp, and
// writes torch's default init for a seed plus eval logits, gradients and seeded train logits.
void check_parity(const std::string& arch, const TempDir& dir, uint64_t seed) {
  SCOPED_TRACE(arch);
  const SafetensorsFile weights = safetensors_load(dir / (arch + ".weights.safetensors"));
  const SafetensorsFile io = safetensors_load(dir / (arch + ".io.safetensors"));
  auto model = make_classic_net(arch, 10, seed);

  // Same names and shapes as the torch.nn module's state_dict, and the same initial numbers:
  // make_*(…, seed) draws what torch.manual_seed(seed) + construction draws.
  ASSERT_EQ(weights.tensors.size(), model->state().size());
  for (const auto& [key, t] : weights.tensors) {
    ASSERT_TRUE(model->state().count(key)) << key;
    ASSERT_EQ(model->state().at(key).sizes(), t.sizes()) << key;
    EXPECT_LT(max_abs_diff(model->state().at(key), t), 1e-7) << "init of " << key;
  }
  // Parity below runs on torch's weights, so it holds even if the init check failed.
  for (const auto& [key, t] : weights.tensors) model->mutable_state()[key] = t.clone();

  const at::Tensor x = io.tensors.at("input");
  ForwardContext eval;
  const at::Tensor feats = model->features(x, eval);
  const at::Tensor logits = model->head(feats, eval);
  const at::Tensor want = io.tensors.at("logits");
  ASSERT_EQ(logits.sizes(), want.sizes());
  const double feat_err = max_abs_diff(feats, io.tensors.at("features"));
  const double logit_err = max_abs_diff(logits, want);
  EXPECT_LT(feat_err, 1e-5);
  EXPECT_LT(logit_err, 1e-5);
  std::printf("[ parity   ] %s: max|logit| %.3g, feature err %.3g, logit err %.3g\n",
              arch.c_str(), want.abs().max().item<double>(), feat_err, logit_err);
  // The logits are large enough for 1e-5 to mean something.
  EXPECT_GT(want.abs().max().item<double>(), 0.05);

  // Negative control: the same model with another seed's weights misses by far more.
  auto other = make_classic_net(arch, 10, seed + 1);
  EXPECT_GT(max_abs_diff(other->forward(x, eval), want), 1e-2);
  // ... and so does a subtle slip: fc1 applied to a transposed image (wrong flatten order).
  EXPECT_GT(max_abs_diff(model->forward(x.transpose(2, 3).contiguous(), eval), want), 1e-3);

  // Full fine-tuning: d sum(logits · probe) / d weight, for every weight, as torch's autograd.
  for (const std::string& p : model->parameter_names())
    model->mutable_state().at(p).requires_grad_(true);
  (model->forward(x, eval) * io.tensors.at("probe")).sum().backward();
  double grad_err = 0.0;
  for (const std::string& p : model->parameter_names()) {
    const at::Tensor& g = model->state().at(p).grad();
    ASSERT_TRUE(g.defined()) << p;
    const at::Tensor& want_g = io.tensors.at("grad." + p);
    EXPECT_LT(max_abs_diff(g, want_g), 1e-5) << "gradient of " << p;
    grad_err = std::max(grad_err, max_abs_diff(g, want_g));
  }
  std::printf("[ parity   ] %s: gradient err %.3g\n", arch.c_str(), grad_err);

  // Training mode with the dropout generator seeded as torch.manual_seed(dropout seed): the
  // masks are drawn in the same order from the same stream, so the logits match too.
  for (const std::string& p : model->parameter_names())
    model->mutable_state().at(p).requires_grad_(false);
  ForwardContext train = training_ctx(7);
  const at::Tensor want_train = io.tensors.at("train_logits");
  // Not vacuous for cnn_mnist: its dropout moved torch's logits. mlp_2nn has none.
  if (arch == "cnn_mnist") EXPECT_GT(max_abs_diff(want_train, want), 1e-2);
  else EXPECT_TRUE(at::equal(want_train, want));
  const double train_err = max_abs_diff(model->forward(x, train), want_train);
  EXPECT_LT(train_err, 1e-5);
  std::printf("[ parity   ] %s: train-mode (dropout) logit err %.3g\n", arch.c_str(), train_err);
}

TEST(ClassicNets, ParityWithTorchNn) {
  if (!torch_available()) GTEST_SKIP() << kPython << " has no torch";
  TempDir dir("fedvlm-classic");
  constexpr uint64_t kSeed = 5;
  const std::string cmd = std::string(kPython) + " " FEDVLM_SOURCE_DIR
                          "/tests/fixtures/gen_classic_nets_fixture.py '" +
                          dir.path().string() + "' --classes 10 --seed " +
                          std::to_string(kSeed) + " --batch 4 --dropout-seed 7";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "fixture generator failed: " << cmd;
  check_parity("cnn_mnist", dir, kSeed);
  check_parity("cnn_fedavg", dir, kSeed);
  check_parity("mlp_2nn", dir, kSeed);
}

} // namespace
} // namespace fedvlm
