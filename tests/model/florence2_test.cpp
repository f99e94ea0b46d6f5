// tests/model/florence2_test.cpp — Florence-2 composition: shapes, gradients, checkpoint loading, LoRA targets, sizes.
#include "model/florence2.hpp"
#include "model/safetensors.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <limits>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

const std::string kShared = "language_model.model.shared.weight";
const std::string kLastDec = "language_model.model.decoder.layers.1.";

at::Tensor randn(at::IntArrayRef sizes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes, gen, at::kFloat);
}

int64_t parameter_count(const Florence2Config& c) {
  int64_t total = 0;
  for (const auto& [name, shape] : davit_parameter_shapes(c.vision, c.projection)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
  }
  for (const auto& [name, shape] : bart_parameter_shapes(c.text)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
  }
  return total;
}

// Random weights are too tame (std 0.02) for logits to differ visibly between two models;
// widen every non-constant tensor so that comparisons are meaningful.
void roughen(Florence2& model, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& [name, t] : model.mutable_state())
    if (name != "visual_temporal_embed.pos_idx_to_embed") t.add_(at::randn(t.sizes(), gen, at::kFloat) * 0.1);
}

class Florence2Test : public ::testing::Test {
protected:
  void SetUp() override {
    roughen(model, 100);
  }

  at::Tensor logits_of(const Florence2& m) const {
    return m.decode_logits(m.encode(pixels, prompt, ForwardContext{}), labels, ForwardContext{});
  }

  // Saves `state`, loads it into `into`, and returns the error message ("" when it loaded).
  std::string load_error(Florence2& into, const TensorMap& state, const std::string& file) const {
    const fs::path path = dir_ / file;
    safetensors_save(path, state);
    try {
      into.load(path);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }

  fedvlm::testing::TempDir tmp_{"fedvlm-fl2"};
  const fs::path dir_ = tmp_.path();
  Florence2 model{Florence2Config::tiny(), 1};
  at::Tensor pixels = randn({2, 3, 64, 64}, 2);
  at::Tensor prompt = at::tensor(std::vector<int64_t>{0, 17, 42, 2, 0, 99, 2, 1}, at::kLong).view({2, 4});
  at::Tensor labels = at::tensor(std::vector<int64_t>{0, 5, 6, 2, 0, 7, 2, -100}, at::kLong).view({2, 4});
};

TEST_F(Florence2Test, TinyForwardBackwardShapes) {
  const at::Tensor enc = model.encode(pixels, prompt, ForwardContext{});
  // 1 mean token + (64/32)² image tokens + 4 prompt tokens.
  EXPECT_EQ(enc.sizes(), (std::vector<int64_t>{2, 1 + 4 + 4, 32}));
  EXPECT_FALSE(enc.requires_grad());

  LoraSettings lora;
  lora.rank = 4;
  std::map<std::string, AdaptableLayer> targets;
  const auto adaptable = model.adaptable_layers();
  for (const auto& name : model.last_decoder_layer_targets()) targets[name] = adaptable.at(name);
  TensorMap adapters = lora_init(targets, lora, 3);
  for (auto& [name, t] : adapters) t.requires_grad_(true);
  ForwardContext ctx;
  ctx.adapters = &adapters;
  ctx.lora = lora;
  EXPECT_EQ(model.first_adapted_decoder_layer(&adapters), 1);

  const at::Tensor logits = model.decode_logits(enc, labels, ctx);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 4, 300}));
  const at::Tensor loss = model.loss(logits, labels);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  loss.backward();
  for (const auto& name : model.last_decoder_layer_targets()) {
    ASSERT_TRUE(adapters.at(name + kLoraB).grad().defined()) << name;
    EXPECT_GT(adapters.at(name + kLoraB).grad().abs().sum().item<double>(), 0.0) << name;
  }
  for (const auto& [name, t] : model.state()) EXPECT_FALSE(t.grad().defined()) << name;
}

TEST_F(Florence2Test, LossIgnoresMinus100AndMatchesCrossEntropy) {
  const at::Tensor logits = randn({2, 4, 300}, 4);
  // Hand computation over the 7 labelled positions.
  double sum = 0.0;
  int count = 0;
  const at::Tensor logp = at::log_softmax(logits, -1);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 4; ++t) {
      const int64_t y = labels[b][t].item<int64_t>();
      if (y == -100) continue;
      sum -= logp[b][t][y].item<double>();
      ++count;
    }
  EXPECT_NEAR(model.loss(logits, labels).item<double>(), sum / count, 1e-5);
  const at::Tensor none = at::full({2, 4}, -100, at::kLong);
  EXPECT_EQ(model.loss(logits, none).item<double>(), 0.0);
}

TEST_F(Florence2Test, CheckpointRoundTripByName) {
  const at::Tensor ref = logits_of(model);
  Florence2 other(Florence2Config::tiny(), 2);
  ASSERT_FALSE(at::allclose(logits_of(other), ref, 1e-4, 1e-4)) << "seeds must give different models";
  ASSERT_EQ(load_error(other, model.state(), "model.safetensors"), "");
  EXPECT_TRUE(at::equal(logits_of(other), ref));
  // Loading from the directory finds model.safetensors too.
  Florence2 third(Florence2Config::tiny(), 3);
  third.load(dir_);
  EXPECT_TRUE(at::equal(logits_of(third), ref));
}

TEST_F(Florence2Test, SameSeedSameWeights) {
  const Florence2 a(Florence2Config::tiny(), 9), b(Florence2Config::tiny(), 9);
  ASSERT_EQ(a.state().size(), b.state().size());
  for (const auto& [name, t] : a.state()) EXPECT_TRUE(at::equal(t, b.state().at(name))) << name;
  // The temporal embedding is the reference's sinusoid table, not noise.
  const at::Tensor temporal = a.state().at("visual_temporal_embed.pos_idx_to_embed");
  EXPECT_NEAR(temporal[0][1].item<double>(), 1.0, 1e-6);             // cos(0)
  EXPECT_NEAR(temporal[3][0].item<double>(), std::sin(3.0), 1e-6);   // sin(3 · 1)
  EXPECT_TRUE(at::equal(a.state().at(kShared)[1], at::zeros({32}))); // padding row
}

TEST_F(Florence2Test, MissingKeyIsNamed) {
  TensorMap state = model.state();
  const std::string key = kLastDec + "encoder_attn.k_proj.weight";
  state.erase(key);
  Florence2 other(Florence2Config::tiny(), 2);
  const TensorMap before = tensor_map_clone(other.state());
  const std::string msg = load_error(other, state, "missing.safetensors");
  EXPECT_NE(msg.find("1 missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find(key), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing.safetensors"), std::string::npos) << msg;
  // A failed load changes nothing.
  for (const auto& [name, t] : before) EXPECT_TRUE(at::equal(t, other.state().at(name))) << name;
}

TEST_F(Florence2Test, TemporalSinusoidMayBeAbsentFromACheckpoint) {
  // A constant buffer: a checkpoint that kept parameters only still loads, with the exact table.
  const std::string key = "visual_temporal_embed.pos_idx_to_embed";
  TensorMap state = model.state();
  state.erase(key);
  Florence2 other(Florence2Config::tiny(), 2);
  other.mutable_state().at(key).zero_();
  ASSERT_EQ(load_error(other, state, "no_buffer.safetensors"), "");
  EXPECT_TRUE(at::equal(other.state().at(key), model.state().at(key)));
  EXPECT_TRUE(at::equal(logits_of(other), logits_of(model)));
}

TEST_F(Florence2Test, UnexpectedKeyIsNamed) {
  TensorMap state = model.state();
  state["language_model.model.decoder.layers.7.fc1.weight"] = at::zeros({64, 32});
  Florence2 other(Florence2Config::tiny(), 2);
  const std::string msg = load_error(other, state, "unexpected.safetensors");
  EXPECT_NE(msg.find("1 unexpected"), std::string::npos) << msg;
  EXPECT_NE(msg.find("language_model.model.decoder.layers.7.fc1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected.safetensors"), std::string::npos) << msg;
}

TEST_F(Florence2Test, MisshapedKeyIsNamed) {
  TensorMap state = model.state();
  const std::string key = "vision_tower.convs.2.proj.weight";
  state[key] = at::zeros({64, 32, 3, 2});
  Florence2 other(Florence2Config::tiny(), 2);
  const std::string msg = load_error(other, state, "misshaped.safetensors");
  EXPECT_NE(msg.find("1 mis-shaped"), std::string::npos) << msg;
  EXPECT_NE(msg.find(key + " (expected [64, 32, 3, 3], got [64, 32, 3, 2])"), std::string::npos) << msg;
  EXPECT_NE(msg.find("misshaped.safetensors"), std::string::npos) << msg;
}

// A checkpoint of nan used to load and train to loss nan; it must be refused at load.
TEST_F(Florence2Test, NonFiniteCheckpointIsRefusedNamingFileAndTensor) {
  TensorMap state = tensor_map_clone(model.state());
  const std::string key = "vision_tower.convs.2.proj.weight";
  state[key].view(-1)[5] = std::numeric_limits<float>::quiet_NaN();
  Florence2 other(Florence2Config::tiny(), 2);
  const std::string msg = load_error(other, state, "nan.safetensors");
  EXPECT_NE(msg.find("nan.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor '" + key + "' holds nan at element 5"), std::string::npos) << msg;
}

TEST_F(Florence2Test, TiedEmbeddingStoredOnlyAsLmHeadLoads) {
  TensorMap state = model.state();
  state["language_model.lm_head.weight"] = state.at(kShared);
  state.erase(kShared);
  state.erase("language_model.final_logits_bias"); // a buffer the reference tolerates missing
  Florence2 other(Florence2Config::tiny(), 2);
  ASSERT_EQ(load_error(other, state, "tied.safetensors"), "");
  EXPECT_TRUE(at::equal(other.state().at(kShared), model.state().at(kShared)));
  EXPECT_TRUE(at::equal(other.state().at("language_model.final_logits_bias"), at::zeros({1, 300})));
  EXPECT_EQ(other.state().count("language_model.lm_head.weight"), 0u);
}

TEST_F(Florence2Test, RedundantTiedCopiesAreIgnoredButMustFit) {
  TensorMap state = model.state();
  state["language_model.model.encoder.embed_tokens.weight"] = state.at(kShared);
  state["language_model.model.decoder.embed_tokens.weight"] = state.at(kShared);
  state["language_model.lm_head.weight"] = state.at(kShared);
  Florence2 other(Florence2Config::tiny(), 2);
  ASSERT_EQ(load_error(other, state, "all_tied.safetensors"), "");
  EXPECT_TRUE(at::equal(logits_of(other), logits_of(model)));
  state["language_model.lm_head.weight"] = at::zeros({301, 32});
  const std::string msg = load_error(other, state, "bad_tied.safetensors");
  EXPECT_NE(msg.find("language_model.lm_head.weight (expected [300, 32], got [301, 32])"),
            std::string::npos) << msg;
}

TEST_F(Florence2Test, HalfPrecisionCheckpointIsWidenedToFloat32) {
  TensorMap state;
  for (const auto& [name, t] : model.state()) state[name] = t.to(at::kBFloat16);
  Florence2 other(Florence2Config::tiny(), 2);
  ASSERT_EQ(load_error(other, state, "bf16.safetensors"), "");
  for (const auto& [name, t] : other.state()) {
    EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(at::equal(t, state.at(name).to(at::kFloat))) << name;
  }
}

TEST_F(Florence2Test, MixedLayoutsAreReportedNotMerged) {
  // One tensor under both layouts' names: the native one cannot silently replace the other.
  TensorMap state = model.state();
  state["model.language_model.shared.weight"] = state.at(kShared);
  Florence2 other(Florence2Config::tiny(), 2);
  const std::string msg = load_error(other, state, "mixed.safetensors");
  EXPECT_NE(msg.find("1 unexpected: model.language_model.shared.weight"), std::string::npos) << msg;
}

TEST_F(Florence2Test, AdaptableLayersAndLastDecoderTargets) {
  const auto layers = model.adaptable_layers();
  for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                        "encoder_attn.q_proj", "encoder_attn.k_proj", "encoder_attn.v_proj",
                        "encoder_attn.out_proj"}) {
    ASSERT_TRUE(layers.count(kLastDec + m)) << m;
    EXPECT_EQ(layers.at(kLastDec + m).out_features, 32);
    EXPECT_EQ(layers.at(kLastDec + m).in_features, 32);
  }
  EXPECT_EQ(layers.at(kLastDec + "fc1").out_features, 64);
  EXPECT_EQ(layers.at(kLastDec + "fc1").in_features, 32);
  EXPECT_EQ(layers.at(kLastDec + "fc2").out_features, 32);
  EXPECT_EQ(layers.at(kLastDec + "fc2").in_features, 64);
  for (const auto& [name, shape] : layers)
    EXPECT_EQ(name.find("language_model.model.encoder."), std::string::npos) << name;

  std::vector<std::string> targets = model.last_decoder_layer_targets();
  std::sort(targets.begin(), targets.end());
  std::vector<std::string> expected;
  for (const char* m : {"encoder_attn.k_proj", "encoder_attn.out_proj", "encoder_attn.q_proj",
                        "encoder_attn.v_proj", "fc1", "fc2", "self_attn.k_proj", "self_attn.out_proj",
                        "self_attn.q_proj", "self_attn.v_proj"})
    expected.push_back(kLastDec + m);
  EXPECT_EQ(targets, expected);
}

TEST_F(Florence2Test, FirstAdaptedDecoderLayer) {
  EXPECT_EQ(model.first_adapted_decoder_layer(nullptr), 2);
  TensorMap adapters;
  adapters["language_model.lm_head.lora_A"] = at::zeros({1});
  EXPECT_EQ(model.first_adapted_decoder_layer(&adapters), 2);
  adapters[kLastDec + "fc1.lora_A"] = at::zeros({1});
  EXPECT_EQ(model.first_adapted_decoder_layer(&adapters), 1);
  adapters["language_model.model.decoder.layers.0.self_attn.q_proj.lora_B"] = at::zeros({1});
  EXPECT_EQ(model.first_adapted_decoder_layer(&adapters), 0);
}

TEST_F(Florence2Test, GenerateStopsAtEosAndEncodeIgnoresAdapters) {
  const at::Tensor enc = model.encode(pixels, prompt, ForwardContext{});
  model.mutable_state().at("language_model.final_logits_bias")[0][2] = 1e4;
  EXPECT_TRUE(at::equal(model.generate(enc, ForwardContext{}, 5), at::full({2, 1}, 2, at::kLong)));

  // Adapters on encoder Linears are not applied by encode().
  LoraSettings lora;
  TensorMap adapters = lora_init({{"language_model.model.encoder.layers.0.fc1", AdaptableLayer{64, 32}}}, lora, 1);
  adapters.at("language_model.model.encoder.layers.0.fc1.lora_B").normal_(0.0, 1.0);
  ForwardContext ctx;
  ctx.adapters = &adapters;
  EXPECT_TRUE(at::equal(model.encode(pixels, prompt, ctx), enc));
}

TEST(Florence2Configs, NamedAndSizes) {
  EXPECT_EQ(Florence2Config::named("base").text.d_model, 768);
  EXPECT_EQ(Florence2Config::named("large").text.d_model, 1024);
  EXPECT_EQ(Florence2Config::named("tiny").text.vocab_size, 300);
  EXPECT_THROW((void)Florence2Config::named("huge"), std::invalid_argument);

  // Exact sums of every checkpoint tensor (tied embedding once, final_logits_bias and the
  // temporal-sinusoid buffer included):
  //   base : vision + projection 91,309,568 + language 140,258,137 = 231,567,705 (~0.23B)
  //   large: vision + projection 363,038,720 + language 413,682,777 = 776,721,497 (~0.77B);
  //          with max_position_embeddings 1024 instead of config.json's 4096 it would be
  //          770,430,041 (embed_positions 2 × 3072 × 1024 rows fewer).
  const int64_t base = parameter_count(Florence2Config::base());
  const int64_t large = parameter_count(Florence2Config::large());
  EXPECT_EQ(base, 231567705);
  EXPECT_EQ(large, 776721497);
  EXPECT_NEAR(static_cast<double>(base), 232e6, 0.03 * 232e6);
  EXPECT_NEAR(static_cast<double>(large), 771e6, 0.03 * 771e6);
}

} // namespace
} // namespace fedvlm
