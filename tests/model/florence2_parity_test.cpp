// tests/model/florence2_parity_test.cpp — our Florence-2 against the published reference code's outputs on a random-weight fixture.
//
// tests/fixtures/florence2_parity was written by scripts/make_florence2_parity_fixture.py from
// microsoft/Florence-2's modeling_florence2.py: a small random model (window 3, so every DaViT
// stage pads), two images, prompts and labels (one padded with -100), and the reference's image
// features, encoder states, logits and loss. Nothing in it is a real model.
#include "model/davit.hpp"
#include "model/florence2.hpp"
#include "model/florence2_hf_config.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(FEDVLM_SOURCE_DIR) / "tests/fixtures/florence2_parity";

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// transformers' convert_florence2_original_pytorch_to_hf.py, written out in its direction
// (remote-code name → native name), independently of the loader's reverse mapping.
std::string native_name(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> parts = {
      {".conv1.fn.dw.", ".conv1."},          {".conv2.fn.dw.", ".conv2."},
      {".window_attn.norm.", ".norm1."},     {".channel_attn.norm.", ".norm1."},
      {".ffn.norm.", ".norm2."},             {".window_attn.fn.", ".window_attn."},
      {".channel_attn.fn.", ".channel_attn."}, {".ffn.fn.net.", ".ffn."},
  };
  auto starts = [&](const std::string& p) { return name.rfind(p, 0) == 0; };
  if (starts("vision_tower.convs.")) {
    std::string n = "model." + name;
    const auto at = n.find(".proj.");
    return at == std::string::npos ? n : n.replace(at, 6, ".conv.");
  }
  if (starts("vision_tower.blocks.")) {
    std::string n = "model." + name;
    for (const auto& [from, to] : parts) {
      const auto at = n.find(from);
      if (at != std::string::npos) n.replace(at, from.size(), to);
    }
    return n;
  }
  if (name == "image_projection") return "model.multi_modal_projector.image_projection.weight";
  if (starts("image_proj_norm.")) return "model.multi_modal_projector." + name;
  if (starts("image_pos_embed."))
    return "model.multi_modal_projector.image_position_embed." + name.substr(std::string("image_pos_embed.").size());
  if (starts("visual_temporal_embed.")) return "model.multi_modal_projector." + name;
  if (starts("language_model.model.")) return "model.language_model." + name.substr(std::string("language_model.model.").size());
  if (name == "language_model.lm_head.weight") return "lm_head.weight";
  return ""; // final_logits_bias: the port has none
}

class Florence2Parity : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    io_ = new TensorMap(safetensors_load(kFixture / "io.safetensors").tensors);
  }
  static void TearDownTestSuite() {
    delete io_;
    io_ = nullptr;
  }
  static const at::Tensor& io(const std::string& name) { return io_->at(name); }

  static Florence2 reference_model(Precision precision) {
    Florence2Config config = florence2_config_from_hf(kFixture / "config.json");
    config.precision = precision;
    Florence2 model(config, 7);
    model.load(kFixture / "model.safetensors");
    return model;
  }

  static TensorMap* io_;
};
TensorMap* Florence2Parity::io_ = nullptr;

TEST_F(Florence2Parity, FixtureConfigIsReadFromItsJson) {
  const Florence2Config c = florence2_config_from_hf(kFixture / "config.json");
  EXPECT_EQ(c.vision.dims, (std::vector<int64_t>{8, 16, 24, 32}));
  EXPECT_EQ(c.vision.depths, (std::vector<int64_t>{1, 1, 2, 1}));
  EXPECT_EQ(c.vision.window_size, 3);
  EXPECT_EQ(c.text.d_model, 24);
  EXPECT_EQ(c.text.vocab_size, 120);
  EXPECT_EQ(c.image_size, 64); // from preprocessor_config.json
  EXPECT_EQ(c.name, "hf:florence2_parity");
}

TEST_F(Florence2Parity, ImageFeaturesMatchTheReference) {
  const Florence2 model = reference_model(Precision::float32);
  const Florence2Config& c = model.config();
  const at::Tensor& pixels = io("pixel_values");
  const auto [h, w] = davit_output_grid(c.vision, pixels.size(2), pixels.size(3));
  const at::Tensor features = image_tokens_project(
      model.state(), c.projection, davit_forward(model.state(), c.vision, pixels), h, w);
  ASSERT_EQ(features.sizes(), io("image_features").sizes());
  EXPECT_LT(max_abs_diff(features, io("image_features")), 1e-4);
}

TEST_F(Florence2Parity, EncoderStatesLogitsAndLossMatchTheReference) {
  const Florence2 model = reference_model(Precision::float32);
  const at::Tensor encoded = model.encode(io("pixel_values"), io("input_ids"), ForwardContext{});
  ASSERT_EQ(encoded.sizes(), io("encoder_hidden").sizes());
  EXPECT_LT(max_abs_diff(encoded, io("encoder_hidden")), 1e-4);

  const at::Tensor logits = model.decode_logits(encoded, io("labels"), ForwardContext{});
  ASSERT_EQ(logits.sizes(), io("logits").sizes());
  // Here the match is exact (Debian's python torch and LibTorch are one library, running the
  // same kernels in the same order); 1e-4 leaves room for another BLAS's round-off, and is far
  // below a real difference (ZeroingOneBiasBreaksParity).
  EXPECT_LT(max_abs_diff(logits, io("logits")), 1e-4);
  EXPECT_NEAR(model.loss(logits, io("labels")).item<double>(), io("loss").item<double>(), 1e-5);
}

TEST_F(Florence2Parity, Bfloat16StaysCloseToTheFloat32Reference) {
  const Florence2 model = reference_model(Precision::bfloat16);
  const at::Tensor logits =
      model.decode_logits(model.encode(io("pixel_values"), io("input_ids"), ForwardContext{}), io("labels"),
                          ForwardContext{});
  const at::Tensor reference = io("logits");
  // bf16 keeps 8 bits of mantissa: expect errors of a few percent of the logits' spread, and
  // the same top token almost everywhere.
  const double spread = reference.std().item<double>();
  EXPECT_LT(max_abs_diff(logits, reference), 0.15 * spread);
  const double agree = logits.to(at::kFloat).argmax(-1).eq(reference.argmax(-1)).to(at::kFloat).mean().item<double>();
  EXPECT_GE(agree, 0.9);
}

TEST_F(Florence2Parity, ZeroingOneBiasBreaksParity) {
  // The comparison must be able to fail: one small reference bias dropped is visible.
  Florence2 model = reference_model(Precision::float32);
  model.mutable_state().at("language_model.model.decoder.layers.0.fc2.bias").zero_();
  const at::Tensor logits =
      model.decode_logits(model.encode(io("pixel_values"), io("input_ids"), ForwardContext{}), io("labels"),
                          ForwardContext{});
  EXPECT_GT(max_abs_diff(logits, io("logits")), 1e-2);
}

TEST_F(Florence2Parity, NativeTransformersLayoutLoadsToTheSameModel) {
  // The fixture renamed as transformers' native port stores it: image_projection transposed to a
  // Linear weight, the vocabulary padded (here 120 → 128) and no final_logits_bias.
  const TensorMap reference_state = safetensors_load(kFixture / "model.safetensors").tensors;
  constexpr int64_t kPadded = 128;
  TensorMap native;
  for (const auto& [name, t] : reference_state) {
    const std::string renamed = native_name(name);
    if (renamed.empty()) continue;
    if (name == "image_projection") {
      native[renamed] = t.t().contiguous();
    } else if (name == "language_model.model.shared.weight") {
      native[renamed] = at::cat({t, at::randn({kPadded - t.size(0), t.size(1)})});
    } else {
      native[renamed] = t;
    }
  }
  ASSERT_EQ(native.count("model.vision_tower.blocks.2.1.channel_block.ffn.fc2.bias"), 1u);
  ASSERT_EQ(native.count("model.multi_modal_projector.image_position_embed.row_embeddings.weight"), 1u);

  Florence2Config config = florence2_config_from_hf(kFixture / "config.json");
  config.text.vocab_size = kPadded;
  Florence2 model(config, 3);
  model.load_state(native);
  const at::Tensor logits =
      model.decode_logits(model.encode(io("pixel_values"), io("input_ids"), ForwardContext{}), io("labels"),
                          ForwardContext{});
  ASSERT_EQ(logits.size(2), kPadded);
  const at::Tensor bias = reference_state.at("language_model.final_logits_bias").view({-1});
  EXPECT_LT(max_abs_diff(logits.slice(2, 0, 120) + bias, io("logits")), 1e-4);
}

TEST_F(Florence2Parity, NativeLayoutErrorsSayTheLayout) {
  TensorMap native;
  for (const auto& [name, t] : safetensors_load(kFixture / "model.safetensors").tensors)
    if (!native_name(name).empty()) native[native_name(name)] = name == "image_projection" ? t.t().contiguous() : t;
  native.erase("model.vision_tower.blocks.0.0.spatial_block.norm1.weight");
  native["model.vision_tower.blocks.0.0.spatial_block.norm3.weight"] = at::ones({8});
  Florence2 model(florence2_config_from_hf(kFixture / "config.json"), 3);
  try {
    model.load_state(native);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("native transformers layout"), std::string::npos) << what;
    EXPECT_NE(what.find("1 missing: vision_tower.blocks.0.0.spatial_block.window_attn.norm.weight"), std::string::npos)
        << what;
    EXPECT_NE(what.find("1 unexpected: model.vision_tower.blocks.0.0.spatial_block.norm3.weight"), std::string::npos)
        << what;
  }
}

} // namespace
} // namespace fedvlm
