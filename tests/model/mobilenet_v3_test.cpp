// tests/model/mobilenet_v3_test.cpp — MobileNetV3 shapes, checkpoint loading, LoRA, BatchNorm, torchvision parity.
#include "model/mobilenet_v3.hpp"
#include "model/safetensors.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

MobileNetV3Config config_for(const std::string& variant, int64_t classes = 10,
                             int64_t in_channels = 3) {
  MobileNetV3Config c;
  c.variant = variant;
  c.num_classes = classes;
  c.in_channels = in_channels;
  return c;
}

at::Tensor random_images(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
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

using fedvlm::testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";

bool torchvision_available() {
  static const bool ok =
      std::system((std::string(kPython) + " -c 'import torchvision' >/dev/null 2>&1").c_str()) == 0;
  return ok;
}

// Runs the generator, loads its weights into our model and compares both outputs.
void check_parity(const std::string& variant, int64_t in_channels) {
  TempDir dir("fedvlm-mnv3");
  const std::string cmd = std::string(kPython) + " " FEDVLM_SOURCE_DIR
                          "/tests/fixtures/gen_mobilenet_v3_fixture.py '" +
                          dir.path().string() + "' --variant " + variant +
                          " --classes 10 --in-channels " + std::to_string(in_channels) +
                          " --size 64";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "fixture generator failed: " << cmd;

  const SafetensorsFile weights = safetensors_load(dir.path() / "weights.safetensors");
  const SafetensorsFile io = safetensors_load(dir.path() / "io.safetensors");
  auto model = make_mobilenet_v3(config_for(variant, 10, in_channels), 123);
  mobilenet_v3_load_state(*model, weights.tensors);

  // Loaded buffers must be the checkpoint's, not our init (the generator randomises them).
  for (const auto& [key, t] : weights.tensors)
    ASSERT_TRUE(at::equal(model->state().at(key).to(t.scalar_type()), t)) << key;

  ForwardContext ctx; // eval: running stats, no dropout
  const at::Tensor feats = model->features(io.tensors.at("input"), ctx);
  const at::Tensor logits = model->head(feats, ctx);
  const at::Tensor want_feats = io.tensors.at("features");
  const at::Tensor want_logits = io.tensors.at("logits");
  ASSERT_EQ(feats.sizes(), want_feats.sizes());
  ASSERT_EQ(logits.sizes(), want_logits.sizes());
  EXPECT_LT((feats - want_feats).abs().max().item<double>(), 1e-4);
  EXPECT_LT((logits - want_logits).abs().max().item<double>(), 1e-4);
}

// -- structure --------------------------------------------------------------------------------

TEST(MobileNetV3, SmallForwardShapesAndLayout) {
  auto model = make_mobilenet_v3(config_for("small"), 1);
  EXPECT_EQ(model->name(), "mobilenet_v3_small");
  EXPECT_EQ(model->num_classes(), 10);
  // torchvision's mobilenet_v3_small(num_classes=10): 244 state_dict entries, 142 parameters.
  EXPECT_EQ(model->state().size(), 244u);
  EXPECT_EQ(model->parameter_names().size(), 142u);

  ForwardContext ctx;
  const at::Tensor f = model->features(random_images(2, 3, 64, 64, 7), ctx);
  EXPECT_EQ(f.sizes(), (at::IntArrayRef{2, 576}));
  const at::Tensor y = model->head(f, ctx);
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 10}));
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());

  const auto layers = model->adaptable_layers();
  // Block 1 has no expand conv, so its SE sits at block.1 and the projection at block.2.
  ASSERT_TRUE(layers.count("features.1.block.1.fc1"));
  EXPECT_EQ(layers.at("features.1.block.1.fc1").out_features, 8);
  EXPECT_EQ(layers.at("features.1.block.1.fc1").in_features, 16);
  EXPECT_TRUE(layers.count("features.1.block.2.0"));
  EXPECT_FALSE(layers.count("features.1.block.0.0")); // depthwise: not adaptable
  // Block 2 has an expand conv and no SE.
  EXPECT_TRUE(layers.count("features.2.block.0.0"));
  EXPECT_TRUE(layers.count("features.2.block.2.0"));
  EXPECT_FALSE(layers.count("features.2.block.2.fc1"));
  ASSERT_TRUE(layers.count("features.11.block.3.0"));
  EXPECT_EQ(layers.at("features.11.block.3.0").out_features, 96);
  EXPECT_EQ(layers.at("features.11.block.3.0").in_features, 576);
  ASSERT_TRUE(layers.count("features.12.0"));
  EXPECT_EQ(layers.at("features.12.0").out_features, 576);
  EXPECT_EQ(layers.at("features.12.0").in_features, 96);
  ASSERT_TRUE(layers.count("classifier.0"));
  EXPECT_EQ(layers.at("classifier.0").out_features, 1024);
  EXPECT_EQ(layers.at("classifier.0").in_features, 576);
  ASSERT_TRUE(layers.count("classifier.3"));
  EXPECT_EQ(layers.at("classifier.3").out_features, 10);
  EXPECT_EQ(layers.at("classifier.3").in_features, 1024);

  // Every adaptable layer is a weight in the state with the advertised (out, in).
  for (const auto& [layer, shape] : layers) {
    const at::Tensor& w = model->state().at(layer + ".weight");
    EXPECT_EQ(w.size(0), shape.out_features) << layer;
    EXPECT_EQ(w.size(1), shape.in_features) << layer;
    EXPECT_EQ(model->in_head(layer), layer.rfind("classifier.", 0) == 0) << layer;
  }
  for (const std::string& p : model->parameter_names()) {
    EXPECT_EQ(p.find("running_"), std::string::npos) << p;
    EXPECT_EQ(p.find("num_batches_tracked"), std::string::npos) << p;
  }
}

TEST(MobileNetV3, LargeForwardShapes) {
  auto model = make_mobilenet_v3(config_for("large", 7), 1);
  EXPECT_EQ(model->name(), "mobilenet_v3_large");
  EXPECT_EQ(model->state().size(), 312u);
  EXPECT_EQ(model->parameter_names().size(), 174u);
  ForwardContext ctx;
  const at::Tensor f = model->features(random_images(2, 3, 64, 64, 7), ctx);
  EXPECT_EQ(f.sizes(), (at::IntArrayRef{2, 960}));
  EXPECT_EQ(model->head(f, ctx).sizes(), (at::IntArrayRef{2, 7}));
  const auto layers = model->adaptable_layers();
  EXPECT_EQ(layers.at("classifier.0").out_features, 1280);
  EXPECT_TRUE(layers.count("features.16.0"));
  // Block 1 of Large has neither expand nor SE: depthwise block.0, projection block.1.
  EXPECT_TRUE(layers.count("features.1.block.1.0"));
  EXPECT_TRUE(layers.count("features.4.block.2.fc1"));
  EXPECT_EQ(layers.at("features.4.block.2.fc1").out_features, 24); // make_divisible(72/4, 8)
}

TEST(MobileNetV3, GrayscaleInputAndChannelCheck) {
  auto model = make_mobilenet_v3(config_for("small", 10, 1), 1);
  EXPECT_EQ(model->state().at("features.0.0.weight").sizes(), (at::IntArrayRef{16, 1, 3, 3}));
  ForwardContext ctx;
  EXPECT_EQ(model->forward(random_images(3, 1, 28, 28, 2), ctx).sizes(),
            (at::IntArrayRef{3, 10}));
  EXPECT_THROW((void)model->features(random_images(1, 3, 28, 28, 2), ctx), std::invalid_argument);
}

TEST(MobileNetV3, ConfigValidationNamesTheField) {
  auto bad = config_for("medium");
  EXPECT_NE(error_of([&] { (void)make_mobilenet_v3(bad, 0); }).find("variant"), std::string::npos);
  EXPECT_THROW((void)make_mobilenet_v3(bad, 0), std::invalid_argument);
  bad = config_for("small", 0);
  EXPECT_NE(error_of([&] { (void)make_mobilenet_v3(bad, 0); }).find("num_classes"),
            std::string::npos);
  EXPECT_THROW((void)make_mobilenet_v3(bad, 0), std::invalid_argument);
  bad = config_for("small", 10, 0);
  EXPECT_NE(error_of([&] { (void)make_mobilenet_v3(bad, 0); }).find("in_channels"),
            std::string::npos);
  EXPECT_THROW((void)make_mobilenet_v3(bad, 0), std::invalid_argument);
}

TEST(MobileNetV3, InitIsDeterministicInSeedAndFollowsTorchvision) {
  auto a = make_mobilenet_v3(config_for("small"), 42);
  auto b = make_mobilenet_v3(config_for("small"), 42);
  auto c = make_mobilenet_v3(config_for("small"), 43);
  for (const auto& [key, t] : a->state()) {
    EXPECT_TRUE(at::equal(t, b->state().at(key))) << key;
  }
  EXPECT_FALSE(at::equal(a->state().at("features.0.0.weight"), c->state().at("features.0.0.weight")));
  EXPECT_FALSE(at::equal(a->state().at("classifier.3.weight"), c->state().at("classifier.3.weight")));

  const TensorMap& s = a->state();
  EXPECT_TRUE(at::equal(s.at("features.3.block.0.1.weight"), at::ones({88})));
  EXPECT_TRUE(at::equal(s.at("features.3.block.0.1.running_var"), at::ones({88})));
  EXPECT_EQ(s.at("features.3.block.0.1.num_batches_tracked").scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(s.at("classifier.0.bias"), at::zeros({1024})));
  // Kaiming fan_out for the 576→1024... conv features.12.0: std = sqrt(2 / 576).
  EXPECT_NEAR(s.at("features.12.0.weight").std().item<double>(), std::sqrt(2.0 / 576.0), 0.005);
  EXPECT_NEAR(s.at("classifier.0.weight").std().item<double>(), 0.01, 0.0005);
}

// -- checkpoint loading ---------------------------------------------------------------------

TEST(MobileNetV3, LoadStateReportsMissingUnexpectedAndMisshapedKeys) {
  auto model = make_mobilenet_v3(config_for("small"), 1);
  const TensorMap good = tensor_map_clone(make_mobilenet_v3(config_for("small"), 2)->state());
  const at::Tensor before = model->state().at("classifier.3.weight").clone();

  TensorMap missing = good;
  missing.erase("classifier.3.bias");
  std::string msg = error_of([&] { mobilenet_v3_load_state(*model, missing); });
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("classifier.3.bias"), std::string::npos) << msg;
  EXPECT_THROW(mobilenet_v3_load_state(*model, missing), std::runtime_error);

  TensorMap unexpected = good;
  unexpected["features.99.0.weight"] = at::zeros({1});
  msg = error_of([&] { mobilenet_v3_load_state(*model, unexpected); });
  EXPECT_NE(msg.find("unexpected"), std::string::npos) << msg;
  EXPECT_NE(msg.find("features.99.0.weight"), std::string::npos) << msg;

  TensorMap misshaped = good;
  misshaped["classifier.3.weight"] = at::zeros({11, 1024});
  msg = error_of([&] { mobilenet_v3_load_state(*model, misshaped); });
  EXPECT_NE(msg.find("classifier.3.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[10, 1024]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[11, 1024]"), std::string::npos) << msg;

  // Many problems: counted, not all listed.
  TensorMap empty;
  msg = error_of([&] { mobilenet_v3_load_state(*model, empty); });
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more"), std::string::npos) << msg;

  // A failed load leaves the model as it was.
  EXPECT_TRUE(at::equal(model->state().at("classifier.3.weight"), before));
}

TEST(MobileNetV3, LoadStateCastsToFloatAndAcceptsMissingBatchCounters) {
  auto model = make_mobilenet_v3(config_for("small"), 1);
  TensorMap state = tensor_map_clone(make_mobilenet_v3(config_for("small"), 2)->state());
  for (auto it = state.begin(); it != state.end();) {
    if (it->first.size() > 20 &&
        it->first.compare(it->first.size() - 20, 20, ".num_batches_tracked") == 0) {
      it = state.erase(it);
    } else {
      it->second = it->second.to(at::kDouble);
      ++it;
    }
  }
  model->mutable_state().at("features.0.1.num_batches_tracked").fill_(5);
  mobilenet_v3_load_state(*model, state);
  for (const auto& [key, t] : model->state()) {
    if (state.count(key)) {
      EXPECT_EQ(t.scalar_type(), at::kFloat) << key;
      EXPECT_TRUE(at::allclose(t, state.at(key).to(at::kFloat))) << key;
    } else {
      EXPECT_EQ(t.scalar_type(), at::kLong) << key;
      EXPECT_EQ(t.item<int64_t>(), 0) << key;
    }
  }
  // The loaded tensors must not alias the caller's map.
  state.at("classifier.3.bias").fill_(7.0);
  EXPECT_FALSE(at::equal(model->state().at("classifier.3.bias"),
                         at::full({10}, 7.0, at::kFloat)));
}

// -- LoRA -----------------------------------------------------------------------------------

TEST(MobileNetV3, LoraZeroBLeavesLogitsUnchanged) {
  auto model = make_mobilenet_v3(config_for("small"), 3);
  const at::Tensor x = random_images(2, 3, 64, 64, 9);
  ForwardContext plain;
  const at::Tensor base = model->forward(x, plain);

  LoraSettings settings;
  settings.rank = 4;
  const TensorMap adapters = lora_init(model->adaptable_layers(), settings, 11);
  ForwardContext with;
  with.adapters = &adapters;
  with.lora = settings;
  EXPECT_LT((model->forward(x, with) - base).abs().max().item<double>(), 1e-6);
}

TEST(MobileNetV3, LoraOnClassifierAddsScaledLowRankTerm) {
  auto model = make_mobilenet_v3(config_for("small"), 3);
  // Unit-scale features: with torchvision's init and identity running stats, a real trunk
  // output is ~1e-8 and would make every difference vanish below float precision.
  const at::Tensor feats = random_images(3, 576, 1, 1, 9).flatten(1);
  ForwardContext plain;
  const at::Tensor base = model->head(feats, plain);

  LoraSettings settings;
  settings.rank = 2;
  settings.alpha = 6.0;
  std::map<std::string, AdaptableLayer> target{{"classifier.3", model->adaptable_layers().at("classifier.3")}};
  TensorMap adapters = lora_init(target, settings, 5);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  adapters.at("classifier.3.lora_B").normal_(0.0, 1.0, gen);
  ForwardContext with;
  with.adapters = &adapters;
  with.lora = settings;
  const at::Tensor adapted = model->head(feats, with);

  // The input of classifier.3, by hand: Hardswish(classifier.0(features)); dropout is off.
  const TensorMap& s = model->state();
  const at::Tensor h =
      at::hardswish(at::linear(feats, s.at("classifier.0.weight"), s.at("classifier.0.bias")));
  const at::Tensor expected_delta =
      at::linear(at::linear(h, adapters.at("classifier.3.lora_A")),
                 adapters.at("classifier.3.lora_B")) *
      settings.scale();
  EXPECT_GT(expected_delta.abs().max().item<double>(), 1e-3);
  EXPECT_LT(((adapted - base) - expected_delta).abs().max().item<double>(), 1e-5);
  // The trunk is untouched by a head adapter.
  const at::Tensor x = random_images(2, 3, 64, 64, 9);
  EXPECT_TRUE(at::equal(model->features(x, with), model->features(x, plain)));
}

TEST(MobileNetV3, LoraOnTrunkConvChangesFeatures) {
  auto model = make_mobilenet_v3(config_for("small"), 3);
  const at::Tensor x = random_images(2, 3, 64, 64, 9);
  // Batch statistics keep activations at unit scale (see above); they do not depend on the
  // running stats this updates, so both passes see the same normalisation.
  ForwardContext plain;
  plain.batchnorm_update = true;
  const at::Tensor base = model->features(x, plain);
  LoraSettings settings;
  std::map<std::string, AdaptableLayer> target{
      {"features.4.block.2.fc1", model->adaptable_layers().at("features.4.block.2.fc1")}};
  TensorMap adapters = lora_init(target, settings, 5);
  adapters.at("features.4.block.2.fc1.lora_B").fill_(0.5);
  ForwardContext with = plain;
  with.adapters = &adapters;
  with.lora = settings;
  EXPECT_GT((model->features(x, with) - base).abs().max().item<double>(), 1e-3);
  EXPECT_TRUE(at::allclose(model->features(x, plain), base)); // and only through the adapter
}

// -- BatchNorm and dropout -------------------------------------------------------------------

TEST(MobileNetV3, BatchNormUpdatesRunningStatsOnlyWhenAsked) {
  auto model = make_mobilenet_v3(config_for("small"), 4);
  const at::Tensor x = random_images(4, 3, 64, 64, 10);
  const std::string bn = "features.2.block.0.1"; // expand BN of block 2
  const at::Tensor mean0 = model->state().at(bn + ".running_mean").clone();
  const at::Tensor var0 = model->state().at(bn + ".running_var").clone();

  ForwardContext eval;
  (void)model->forward(x, eval);
  EXPECT_TRUE(at::equal(model->state().at(bn + ".running_mean"), mean0));
  EXPECT_TRUE(at::equal(model->state().at(bn + ".running_var"), var0));
  EXPECT_EQ(model->state().at(bn + ".num_batches_tracked").item<int64_t>(), 0);

  ForwardContext train;
  train.batchnorm_update = true;
  (void)model->forward(x, train);
  EXPECT_FALSE(at::equal(model->state().at(bn + ".running_mean"), mean0));
  EXPECT_FALSE(at::equal(model->state().at(bn + ".running_var"), var0));
  EXPECT_EQ(model->state().at(bn + ".num_batches_tracked").item<int64_t>(), 1);
  EXPECT_EQ(model->state().at("features.0.1.num_batches_tracked").item<int64_t>(), 1);

  // Momentum 0.01 as torchvision: new = 0.99 · old + 0.01 · batch mean.
  const at::Tensor stem = at::conv2d(x, model->state().at("features.0.0.weight"), {}, {2, 2}, {1, 1});
  const at::Tensor batch_mean = stem.mean({0, 2, 3});
  EXPECT_TRUE(at::allclose(model->state().at("features.0.1.running_mean"), batch_mean * 0.01,
                           1e-4, 1e-6));
}

TEST(MobileNetV3, ClassifierDropoutFollowsContextGenerator) {
  MobileNetV3Config config = config_for("small");
  config.dropout = 0.5;
  auto model = make_mobilenet_v3(config, 5);
  const at::Tensor f = random_images(2, 576, 1, 1, 1).flatten(1);
  ForwardContext ctx;
  const at::Tensor eval = model->head(f, ctx);
  ctx.dropout_active = true;
  ctx.generator = at::make_generator<at::CPUGeneratorImpl>(99);
  const at::Tensor a = model->head(f, ctx);
  ctx.generator = at::make_generator<at::CPUGeneratorImpl>(99);
  const at::Tensor b = model->head(f, ctx);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::allclose(a, eval));
}

// -- parity with torchvision -----------------------------------------------------------------

TEST(MobileNetV3, MatchesTorchvisionSmall) {
  if (!torchvision_available()) GTEST_SKIP() << kPython << " cannot import torchvision";
  check_parity("small", 3);
}

TEST(MobileNetV3, MatchesTorchvisionLarge) {
  if (!torchvision_available()) GTEST_SKIP() << kPython << " cannot import torchvision";
  check_parity("large", 3);
}

TEST(MobileNetV3, MatchesTorchvisionSmallGrayscale) {
  if (!torchvision_available()) GTEST_SKIP() << kPython << " cannot import torchvision";
  check_parity("small", 1);
}

} // namespace
} // namespace fedvlm
