// tests/model/bart_test.cpp — BART encoder/decoder: shapes, positions, causality, shift-right, LoRA gradients, greedy decoding.
#include "model/bart.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fedvlm {
namespace {

const std::string kDec = "language_model.model.decoder.layers.";
const std::string kEnc = "language_model.model.encoder.";

BartConfig tiny_config() {
  BartConfig c;
  c.vocab_size = 300;
  c.d_model = 32;
  c.encoder_layers = 2;
  c.decoder_layers = 2;
  c.encoder_heads = 2;
  c.decoder_heads = 2;
  c.encoder_ffn_dim = 64;
  c.decoder_ffn_dim = 64;
  c.max_position_embeddings = 128;
  c.dropout = 0.1;
  c.attention_dropout = 0.1;
  c.activation_dropout = 0.1;
  return c;
}

// Larger than the checkpoint init (0.02) so that every code path moves the logits visibly.
TensorMap random_weights(const BartConfig& c, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  TensorMap w;
  for (const auto& [name, shape] : bart_parameter_shapes(c)) {
    at::Tensor t = at::empty(shape, at::kFloat);
    t.normal_(0.0, 0.1, gen);
    const bool norm_weight = shape.size() == 1 && name.size() > 7 &&
                             name.compare(name.size() - 7, 7, ".weight") == 0;
    if (norm_weight) t.add_(1.0);
    w.emplace(name, t);
  }
  return w;
}

at::Tensor randn(at::IntArrayRef sizes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes, gen, at::kFloat);
}

at::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  at::Tensor t = at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())},
                           at::kLong);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j)
      t[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = rows[i][j];
  return t;
}

class Bart : public ::testing::Test {
protected:
  BartConfig config = tiny_config();
  TensorMap weights = random_weights(config, 1);
  at::Tensor encoder_hidden = [this] {
    return bart_encode(weights, config, randn({2, 7, 32}, 2), ForwardContext{});
  }();
  at::Tensor decoder_ids = ids_tensor({{2, 0, 17, 45, 99}, {2, 0, 250, 3, 8}});
};

TEST_F(Bart, EncodeAndDecodeShapes) {
  EXPECT_EQ(encoder_hidden.sizes(), (std::vector<int64_t>{2, 7, 32}));
  const at::Tensor logits = bart_decode(weights, config, decoder_ids, encoder_hidden, ForwardContext{});
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 5, 300}));
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
  EXPECT_EQ(bart_embed_tokens(weights, decoder_ids).sizes(), (std::vector<int64_t>{2, 5, 32}));
}

TEST_F(Bart, EncoderPositionsStartAtRowTwoAndSpanTheWholeInput) {
  const at::Tensor x = randn({1, 6, 32}, 3);
  const at::Tensor ref = bart_encode(weights, config, x, ForwardContext{});
  TensorMap w = weights;
  const std::string key = kEnc + "embed_positions.weight";
  w[key] = weights.at(key).clone();
  w[key].slice(0, 0, 2).fill_(100.0); // rows 0 and 1 are never used (offset 2)
  EXPECT_TRUE(at::allclose(bart_encode(w, config, x, ForwardContext{}), ref, 1e-6, 1e-6));
  // Row 2 + 5 is the sixth token's position: it must matter.
  w[key][7].fill_(3.0);
  const at::Tensor moved = bart_encode(w, config, x, ForwardContext{});
  EXPECT_FALSE(at::allclose(moved, ref, 1e-4, 1e-4));
  // Too long for the table: a clear error rather than an out-of-range read.
  EXPECT_THROW((void)bart_encode(weights, config, randn({1, 129, 32}, 4), ForwardContext{}),
               std::invalid_argument);
}

TEST_F(Bart, DecoderIsCausal) {
  const at::Tensor a = bart_decode(weights, config, decoder_ids, encoder_hidden, ForwardContext{});
  at::Tensor changed_ids = decoder_ids.clone();
  changed_ids.select(1, 3).fill_(123); // change the fourth token of both rows
  const at::Tensor b = bart_decode(weights, config, changed_ids, encoder_hidden, ForwardContext{});
  EXPECT_TRUE(at::allclose(a.slice(1, 0, 3), b.slice(1, 0, 3), 1e-6, 1e-6))
      << "positions before the change must not see it";
  EXPECT_FALSE(at::allclose(a.slice(1, 3), b.slice(1, 3), 1e-4, 1e-4))
      << "the changed position and later ones must";
}

TEST_F(Bart, DecoderSeesEncoderOutput) {
  const at::Tensor a = bart_decode(weights, config, decoder_ids, encoder_hidden, ForwardContext{});
  const at::Tensor b = bart_decode(weights, config, decoder_ids, encoder_hidden.flip({1}) * 2.0,
                                   ForwardContext{});
  EXPECT_FALSE(at::allclose(a, b, 1e-4, 1e-4));
}

TEST(BartShiftRight, HandCase) {
  const BartConfig c = tiny_config(); // start 2, pad 1
  const at::Tensor labels = ids_tensor({{0, 5, 6, 2}, {0, 7, 2, -100}, {-100, -100, 8, 2}});
  const at::Tensor expected = ids_tensor({{2, 0, 5, 6}, {2, 0, 7, 2}, {2, 1, 1, 8}});
  const at::Tensor got = bart_shift_right(labels, c);
  EXPECT_EQ(got.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(got, expected)) << got;
  EXPECT_TRUE(at::equal(labels, ids_tensor({{0, 5, 6, 2}, {0, 7, 2, -100}, {-100, -100, 8, 2}})))
      << "labels must not be modified in place";
}

TEST_F(Bart, LoraOnLastDecoderLayerGetsGradientsBaseWeightsNone) {
  const std::string q = kDec + "1.self_attn.q_proj";
  LoraSettings lora;
  lora.rank = 4;
  TensorMap adapters = lora_init({{q, AdaptableLayer{32, 32}}}, lora, 5);
  for (auto& [name, t] : adapters) t.requires_grad_(true);
  ForwardContext ctx;
  ctx.adapters = &adapters;
  ctx.lora = lora;
  const at::Tensor logits = bart_decode(weights, config, decoder_ids, encoder_hidden, ctx,
                                        /*first_grad_layer=*/config.decoder_layers - 1);
  const at::Tensor labels = ids_tensor({{0, 17, 45, 99, 2}, {0, 250, 3, 8, -100}});
  at::cross_entropy_loss(logits.reshape({-1, 300}), labels.reshape({-1}), {}, at::Reduction::Mean, -100)
      .backward();
  const at::Tensor& grad_b = adapters.at(q + kLoraB).grad();
  ASSERT_TRUE(grad_b.defined());
  EXPECT_GT(grad_b.abs().sum().item<double>(), 0.0);
  // B = 0 makes A's gradient zero, but it must still be part of the graph.
  EXPECT_TRUE(adapters.at(q + kLoraA).grad().defined());
  for (const auto& [name, t] : weights) {
    EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_FALSE(t.grad().defined()) << name;
  }
}

// The contract of first_grad_layer: decoder layers below it run without autograd, so an
// adapter placed there is applied in the forward pass but never trained. Callers derive
// first_grad_layer from the adapters (Florence2::first_adapted_decoder_layer).
TEST_F(Bart, LayersBelowFirstGradLayerBuildNoGraph) {
  const std::string low = kDec + "0.fc1";
  const std::string high = kDec + "1.fc2";
  LoraSettings lora;
  lora.rank = 2;
  const TensorMap init = lora_init({{low, AdaptableLayer{64, 32}}, {high, AdaptableLayer{32, 64}}}, lora, 6);
  for (int64_t first_grad_layer : {0, 1}) {
    TensorMap adapters = tensor_map_clone(init);
    for (auto& [name, t] : adapters) t.requires_grad_(true);
    ForwardContext ctx;
    ctx.adapters = &adapters;
    ctx.lora = lora;
    bart_decode(weights, config, decoder_ids, encoder_hidden, ctx, first_grad_layer).sum().backward();
    EXPECT_TRUE(adapters.at(high + kLoraB).grad().defined()) << first_grad_layer;
    EXPECT_EQ(adapters.at(low + kLoraB).grad().defined(), first_grad_layer == 0) << first_grad_layer;
  }
}

TEST_F(Bart, ZeroBAdaptersLeaveLogitsUnchangedNonZeroChangeThem) {
  std::map<std::string, AdaptableLayer> targets;
  for (const auto& [name, shape] : bart_linear_layers(config))
    targets[name] = AdaptableLayer{shape.first, shape.second};
  LoraSettings lora;
  lora.rank = 2;
  TensorMap adapters = lora_init(targets, lora, 7);
  ForwardContext ctx;
  ctx.adapters = &adapters;
  ctx.lora = lora;
  const at::Tensor plain = bart_decode(weights, config, decoder_ids, encoder_hidden, ForwardContext{});
  EXPECT_TRUE(at::allclose(bart_decode(weights, config, decoder_ids, encoder_hidden, ctx), plain,
                           1e-6, 1e-6));
  // Each adapter is really looked up by its module name: a non-zero B on one layer moves logits.
  adapters.at(kDec + "1.encoder_attn.v_proj" + kLoraB).normal_(0.0, 0.5);
  EXPECT_FALSE(at::allclose(bart_decode(weights, config, decoder_ids, encoder_hidden, ctx), plain,
                            1e-4, 1e-4));
}

TEST_F(Bart, DropoutFollowsContextAndGenerator) {
  const at::Tensor x = randn({2, 7, 32}, 8);
  ForwardContext train;
  train.dropout_active = true;
  train.generator = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor a = bart_encode(weights, config, x, train);
  train.generator = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor b = bart_encode(weights, config, x, train);
  EXPECT_TRUE(at::equal(a, b)) << "same generator seed, same masks";
  EXPECT_FALSE(at::allclose(a, bart_encode(weights, config, x, ForwardContext{}), 1e-4, 1e-4));
}

TEST_F(Bart, GreedyStopsAtEos) {
  TensorMap w = weights;
  w["language_model.final_logits_bias"] = at::zeros({1, 300});
  w["language_model.final_logits_bias"][0][config.eos_token_id] = 1e4;
  const at::Tensor out = bart_generate_greedy(w, config, encoder_hidden, ForwardContext{}, 10);
  EXPECT_TRUE(at::equal(out, at::full({2, 1}, config.eos_token_id, at::kLong))) << out;
}

TEST_F(Bart, GreedyRespectsMaxNewTokens) {
  TensorMap w = weights;
  w["language_model.final_logits_bias"] = at::zeros({1, 300});
  w["language_model.final_logits_bias"][0][7] = 1e4;
  const at::Tensor out = bart_generate_greedy(w, config, encoder_hidden, ForwardContext{}, 3);
  EXPECT_TRUE(at::equal(out, at::full({2, 3}, 7, at::kLong))) << out;
  EXPECT_EQ(bart_generate_greedy(w, config, encoder_hidden, ForwardContext{}, 0).sizes(),
            (std::vector<int64_t>{2, 0}));
}

// Re-decoding [start, generated...] teacher-forced must reproduce every greedy choice: the
// growing-prefix loop is equivalent to incremental decoding.
TEST_F(Bart, GreedyMatchesTeacherForcedArgmax) {
  const at::Tensor out = bart_generate_greedy(weights, config, encoder_hidden, ForwardContext{}, 6);
  ASSERT_EQ(out.size(0), 2);
  ASSERT_GE(out.size(1), 1);
  const at::Tensor prefix = at::cat({at::full({2, 1}, config.decoder_start_token_id, at::kLong), out}, 1);
  const at::Tensor logits = bart_decode(weights, config, prefix.slice(1, 0, out.size(1)),
                                        encoder_hidden, ForwardContext{});
  const at::Tensor argmax = logits.argmax(-1);
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < out.size(1); ++t) {
      // Once a row emitted eos, the rest of it is padding.
      const bool done = t > 0 && (out[r].slice(0, 0, t) == config.eos_token_id).any().item<bool>();
      const int64_t want = done ? config.pad_token_id : argmax[r][t].item<int64_t>();
      EXPECT_EQ(out[r][t].item<int64_t>(), want) << "row " << r << " step " << t;
    }
  }
}

// Generation projects the cross-attention keys/values once; with adapters on exactly those
// projections (the paper's last-layer pLoRA has them), every step must still see the adapted ones.
TEST_F(Bart, GreedyWithCrossAttentionAdaptersMatchesTeacherForcedArgmax) {
  LoraSettings lora;
  lora.rank = 2;
  std::map<std::string, AdaptableLayer> targets;
  for (const char* p : {"k_proj", "v_proj"}) targets[kDec + "1.encoder_attn." + p] = AdaptableLayer{32, 32};
  TensorMap adapters = lora_init(targets, lora, 8);
  for (auto& [name, t] : adapters)
    if (name.size() > kLoraB.size() && name.compare(name.size() - kLoraB.size(), kLoraB.size(), kLoraB) == 0)
      t.copy_(randn(t.sizes(), 9)); // B = 0 at init would make the adapters inert
  ForwardContext ctx;
  ctx.adapters = &adapters;
  ctx.lora = lora;
  const at::Tensor out = bart_generate_greedy(weights, config, encoder_hidden, ctx, 6);
  EXPECT_FALSE(at::equal(out, bart_generate_greedy(weights, config, encoder_hidden, ForwardContext{}, 6)))
      << "the adapters should change what is generated";
  const at::Tensor prefix = at::cat({at::full({2, 1}, config.decoder_start_token_id, at::kLong), out}, 1);
  const at::Tensor argmax = bart_decode(weights, config, prefix.slice(1, 0, out.size(1)), encoder_hidden, ctx).argmax(-1);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t < out.size(1); ++t) {
      const bool done = t > 0 && (out[r].slice(0, 0, t) == config.eos_token_id).any().item<bool>();
      const int64_t want = done ? config.pad_token_id : argmax[r][t].item<int64_t>();
      EXPECT_EQ(out[r][t].item<int64_t>(), want) << "row " << r << " step " << t;
    }
}

TEST(BartShapes, ParameterAndLinearInventory) {
  const BartConfig c = tiny_config();
  const auto shapes = bart_parameter_shapes(c);
  EXPECT_EQ(shapes.at("language_model.model.shared.weight"), (std::vector<int64_t>{300, 32}));
  EXPECT_EQ(shapes.at("language_model.final_logits_bias"), (std::vector<int64_t>{1, 300}));
  EXPECT_EQ(shapes.at(kEnc + "embed_positions.weight"), (std::vector<int64_t>{130, 32}));
  EXPECT_EQ(shapes.at(kDec + "1.encoder_attn.k_proj.weight"), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(shapes.at(kDec + "1.fc1.weight"), (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(shapes.at(kDec + "1.encoder_attn_layer_norm.bias"), (std::vector<int64_t>{32}));
  // Tied copies are listed once, as shared.
  EXPECT_EQ(shapes.count("language_model.lm_head.weight"), 0u);
  EXPECT_EQ(shapes.count("language_model.model.encoder.embed_tokens.weight"), 0u);
  const auto linears = bart_linear_layers(c);
  // Per encoder layer 4 + 2, per decoder layer 8 + 2, plus lm_head.
  EXPECT_EQ(linears.size(), static_cast<size_t>(2 * 6 + 2 * 10 + 1));
  EXPECT_EQ(linears.at(kDec + "0.fc2"), (std::pair<int64_t, int64_t>{32, 64}));
}

} // namespace
} // namespace fedvlm
