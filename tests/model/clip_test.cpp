// tests/model/clip_test.cpp — CLIP configs, HF config.json parsing, weight checks, pooling rules, LoRA by name, preprocessing settings.
#include "model/clip.hpp"
#include "model/clip_image_processor.hpp"
#include "model/safetensors.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using fedvlm::testing::TempDir;
using fedvlm::testing::write_text_file;

int64_t parameter_count(const ClipConfig& c) {
  int64_t n = 0;
  for (const auto& [name, shape] : clip_parameter_shapes(c)) {
    int64_t k = 1;
    for (int64_t d : shape) k *= d;
    n += k;
  }
  return n;
}

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The fields of openai/clip-vit-base-patch32's config.json (an old upload: eos_token_id 2,
// both text_config and text_config_dict present), with the many generation keys shortened.
const char* kClipB32Config = R"({
  "_name_or_path": "openai/clip-vit-base-patch32",
  "architectures": ["CLIPModel"],
  "initializer_factor": 1.0,
  "logit_scale_init_value": 2.6592,
  "model_type": "clip",
  "projection_dim": 512,
  "text_config": {
    "_name_or_path": "", "architectures": null, "attention_dropout": 0.0, "bos_token_id": 0,
    "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 512,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 2048,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model",
    "num_attention_heads": 8, "num_beams": 1, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 512, "torch_dtype": null, "vocab_size": 49408
  },
  "text_config_dict": null,
  "torch_dtype": "float32",
  "transformers_version": null,
  "vision_config": {
    "_name_or_path": "", "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu",
    "hidden_size": 768, "image_size": 224, "initializer_factor": 1.0, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-05, "model_type": "clip_vision_model",
    "num_attention_heads": 12, "num_channels": 3, "num_hidden_layers": 12, "patch_size": 32,
    "projection_dim": 512
  },
  "vision_config_dict": null
})";

// -- configs --------------------------------------------------------------------------------------

TEST(ClipConfig, PresetsHaveThePublishedParameterCounts) {
  // CLIPModel.num_parameters() of openai/clip-vit-base-patch32, -base-patch16, -large-patch14.
  EXPECT_EQ(parameter_count(clip_vit_b32()), 151277313);
  EXPECT_EQ(parameter_count(clip_vit_b16()), 149620737);
  EXPECT_EQ(parameter_count(clip_vit_l14()), 427616513);
  EXPECT_EQ(clip_vit_b32().vision.num_positions(), 50);
  EXPECT_EQ(clip_vit_l14().vision.num_positions(), 257);
  for (const char* arch : {"clip_vit_b32", "clip_vit_b16", "clip_vit_l14", "clip_tiny"}) {
    EXPECT_EQ(clip_config_named(arch).name, arch);
    EXPECT_NO_THROW(clip_config_check(clip_config_named(arch)));
  }
  EXPECT_THROW((void)clip_config_named("clip_vit_h14"), std::invalid_argument);
  ClipConfig bad = clip_tiny();
  bad.vision.patch_size = 5; // 32 px is not a whole number of 5 px patches
  EXPECT_THROW(clip_config_check(bad), std::invalid_argument);
}

TEST(ClipConfig, ParsesTheConfigOfOpenaiClipVitBasePatch32) {
  TempDir dir("clip-config");
  write_text_file(dir / "config.json", kClipB32Config);
  const ClipConfig c = clip_config_from_hf(dir / "config.json");
  EXPECT_EQ(clip_architecture_difference(c, clip_vit_b32()), "");
  EXPECT_EQ(c.text.vocab_size, 49408);
  EXPECT_EQ(c.text.hidden_size, 512);
  EXPECT_EQ(c.text.num_layers, 12);
  EXPECT_EQ(c.text.num_heads, 8);
  EXPECT_EQ(c.text.intermediate_size, 2048);
  EXPECT_EQ(c.text.max_positions, 77);
  EXPECT_EQ(c.text.eos_token_id, 2);
  EXPECT_EQ(clip_text_pooling(c.text), ClipTextPooling::legacy_argmax);
  EXPECT_EQ(c.vision.hidden_size, 768);
  EXPECT_EQ(c.vision.num_layers, 12);
  EXPECT_EQ(c.vision.num_heads, 12);
  EXPECT_EQ(c.vision.intermediate_size, 3072);
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_EQ(c.vision.patch_size, 32);
  EXPECT_EQ(c.vision.activation, ClipActivation::quick_gelu);
  EXPECT_EQ(c.projection_dim, 512);
  EXPECT_DOUBLE_EQ(c.logit_scale_init, 2.6592);
  EXPECT_EQ(c.name, "hf:" + dir.path().filename().string());
  EXPECT_EQ(clip_architecture_difference(c, clip_vit_b16()), "vision_config.patch_size 32 vs 16");
}

TEST(ClipConfig, ConfigDictOverridesAndBadKeysAreNamed) {
  TempDir dir("clip-config");
  nlohmann::json j = nlohmann::json::parse(kClipB32Config);
  j["vision_config_dict"] = {{"patch_size", 16}};
  write_text_file(dir / "config.json", j.dump());
  EXPECT_EQ(clip_architecture_difference(clip_config_from_hf(dir / "config.json"), clip_vit_b16()), "");

  auto error_of = [&](const nlohmann::json& config) {
    write_text_file(dir / "config.json", config.dump());
    try {
      (void)clip_config_from_hf(dir / "config.json");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  nlohmann::json act = nlohmann::json::parse(kClipB32Config);
  act["text_config"]["hidden_act"] = "relu";
  EXPECT_TRUE(mentions(error_of(act), "key 'text_config.hidden_act': expected \"quick_gelu\" or \"gelu\""))
      << error_of(act);
  nlohmann::json heads = nlohmann::json::parse(kClipB32Config);
  heads["vision_config"]["num_attention_heads"] = 7;
  EXPECT_TRUE(mentions(error_of(heads), "vision_config.hidden_size")) << error_of(heads);
  nlohmann::json other = nlohmann::json::parse(kClipB32Config);
  other["model_type"] = "siglip";
  EXPECT_TRUE(mentions(error_of(other), "model_type")) << error_of(other);
  nlohmann::json no_text = nlohmann::json::parse(kClipB32Config);
  no_text.erase("text_config");
  EXPECT_TRUE(mentions(error_of(no_text), "text_config")) << error_of(no_text);
  write_text_file(dir / "config.json", "{ not json");
  EXPECT_THROW((void)clip_config_from_hf(dir / "config.json"), std::runtime_error);
}

// -- weights --------------------------------------------------------------------------------------

TEST(ClipWeights, RandomWeightsAreDeterministicAndComplete) {
  const ClipConfig c = clip_tiny();
  const TensorMap a = clip_random_weights(c, 3), b = clip_random_weights(c, 3), d = clip_random_weights(c, 4);
  EXPECT_NO_THROW(clip_validate_weights(a, c));
  EXPECT_EQ(a.size(), clip_parameter_shapes(c).size());
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  EXPECT_FALSE(at::equal(a.at("text_model.encoder.layers.0.self_attn.q_proj.weight"),
                         d.at("text_model.encoder.layers.0.self_attn.q_proj.weight")));
  EXPECT_EQ(a.at("logit_scale").dim(), 0);
  EXPECT_FLOAT_EQ(a.at("logit_scale").item<float>(), 2.6592f);
  // HF's init: q_proj std = hidden^-0.5 (2 layers)^-0.5 = 32^-0.5 / 2 ≈ 0.088; LayerNorm 1 / 0.
  const double q_std = a.at("vision_model.encoder.layers.1.self_attn.q_proj.weight").std().item<double>();
  EXPECT_NEAR(q_std, 0.0884, 0.015);
  EXPECT_TRUE(at::equal(a.at("text_model.final_layer_norm.weight"), at::ones({32})));
  EXPECT_TRUE(at::equal(a.at("vision_model.pre_layrnorm.bias"), at::zeros({32})));
}

TEST(ClipWeights, ValidationListsEveryMissingUnexpectedAndMisshapedTensor) {
  const ClipConfig c = clip_tiny();
  TensorMap w = clip_random_weights(c, 1);
  w.erase("text_projection.weight");
  w.erase("vision_model.encoder.layers.1.mlp.fc2.bias");
  w["vision_model.embeddings.patch_embedding.bias"] = at::zeros({32});
  w["text_model.pooler.weight"] = at::zeros({2});
  w["visual_projection.weight"] = at::zeros({32, 24});
  w["text_model.encoder.layers.0.layer_norm1.weight"] = at::zeros({33});
  w["text_model.embeddings.position_ids"] = at::arange(16, at::kLong).unsqueeze(0); // accepted
  try {
    clip_validate_weights(w, c);
    FAIL() << "broken weights were accepted";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(mentions(what, "2 missing: text_projection.weight [24, 32], "
                               "vision_model.encoder.layers.1.mlp.fc2.bias [32]")) << what;
    EXPECT_TRUE(mentions(what, "2 unexpected: text_model.pooler.weight, vision_model.embeddings.patch_embedding.bias"))
        << what;
    EXPECT_TRUE(mentions(what, "2 mis-shaped: text_model.encoder.layers.0.layer_norm1.weight (expected [32], got [33]), "
                               "visual_projection.weight (expected [24, 32], got [32, 24])")) << what;
    EXPECT_FALSE(mentions(what, "position_ids")) << what;
  }
}

TEST(ClipWeights, LoaderListsBadTensorsOfACheckpointAndReadsHalfPrecision) {
  TempDir dir("clip-load");
  nlohmann::json j = nlohmann::json::parse(kClipB32Config);
  const ClipConfig tiny = clip_tiny();
  j["projection_dim"] = tiny.projection_dim;
  j["text_config"] = {{"vocab_size", 600}, {"hidden_size", 32}, {"num_hidden_layers", 2}, {"num_attention_heads", 2},
                      {"intermediate_size", 64}, {"max_position_embeddings", 16}, {"eos_token_id", 599}};
  j["vision_config"] = {{"hidden_size", 32}, {"num_hidden_layers", 2}, {"num_attention_heads", 2},
                        {"intermediate_size", 64}, {"image_size", 32}, {"patch_size", 8}};
  write_text_file(dir / "config.json", j.dump());
  TensorMap w = clip_random_weights(tiny, 5);
  TensorMap half;
  for (const auto& [name, t] : w) half[name] = t.to(at::kBFloat16);
  safetensors_save(dir / "model.safetensors", half);
  const ClipCheckpoint ok = clip_load_hf(dir.path(), "clip_tiny");
  EXPECT_EQ(ok.weights.at("text_projection.weight").scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(ok.weights.at("text_projection.weight"), half.at("text_projection.weight").to(at::kFloat)));

  w.erase("logit_scale");
  w["text_model.encoder.layers.2.mlp.fc1.weight"] = at::zeros({64, 32});
  safetensors_save(dir / "model.safetensors", w);
  try {
    (void)clip_load_hf(dir.path(), "clip_tiny");
    FAIL() << "a checkpoint without logit_scale was accepted";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(mentions(what, (dir / "model.safetensors").string())) << what;
    EXPECT_TRUE(mentions(what, "1 missing: logit_scale []")) << what;
    EXPECT_TRUE(mentions(what, "1 unexpected: text_model.encoder.layers.2.mlp.fc1.weight")) << what;
  }
}

// -- forward --------------------------------------------------------------------------------------

TEST(ClipForward, PoolingRules) {
  ClipTextConfig legacy = clip_vit_b32().text; // eos_token_id 2: argmax of ids
  const at::Tensor ids = at::tensor({49406, 320, 1125, 49407, 49407, 0, 49406, 49407, 0, 0}, at::kLong).view({2, 5});
  EXPECT_TRUE(at::equal(clip_text_pool_positions(legacy, ids), at::tensor({3, 2}, at::kLong)));
  ClipTextConfig first = clip_tiny().text; // eos 599, first occurrence
  const at::Tensor tiny_ids = at::tensor({598, 7, 599, 599, 598, 599, 5, 9}, at::kLong).view({2, 4});
  EXPECT_TRUE(at::equal(clip_text_pool_positions(first, tiny_ids).to(at::kLong), at::tensor({2, 1}, at::kLong)));
  // First eos even when a larger id follows it (the legacy rule would pick that one).
  first.eos_token_id = 7;
  first.vocab_size = 1000;
  const at::Tensor later = at::tensor({598, 7, 900, 1}, at::kLong).view({1, 4});
  EXPECT_EQ(clip_text_pool_positions(first, later)[0].item<int64_t>(), 1);
  const at::Tensor none = at::tensor({598, 5, 6, 1, 598, 7, 0, 0}, at::kLong).view({2, 4});
  try {
    (void)clip_text_pool_positions(first, none);
    FAIL() << "a row without an end-of-text token was pooled";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(mentions(e.what(), "row 0")) << e.what();
  }
}

TEST(ClipForward, ShapesInputChecksAndLogits) {
  const ClipConfig c = clip_tiny();
  const TensorMap w = clip_random_weights(c, 2);
  const ForwardContext ctx;
  const at::Tensor image = clip_encode_image(w, c, at::randn({2, 3, 32, 32}), ctx);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{2, 24}));
  const at::Tensor ids = at::tensor({598, 3, 599, 0, 598, 4, 5, 599}, at::kLong).view({2, 4});
  const at::Tensor text = clip_encode_text(w, c, ids, ctx);
  EXPECT_EQ(text.sizes(), (std::vector<int64_t>{2, 24}));
  EXPECT_TRUE(at::isfinite(text).all().item<bool>());
  EXPECT_THROW((void)clip_encode_image(w, c, at::randn({2, 3, 28, 28}), ctx), std::invalid_argument);
  EXPECT_THROW((void)clip_encode_text(w, c, at::full({1, 17}, 599, at::kLong), ctx), std::invalid_argument);
  EXPECT_THROW((void)clip_encode_text(w, c, at::full({1, 3}, 600, at::kLong), ctx), std::invalid_argument);
  EXPECT_THROW((void)clip_encode_text(w, c, ids.to(at::kInt), ctx), std::invalid_argument);

  const at::Tensor logits = clip_logits(image, text, w.at("logit_scale"));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 2}));
  // Scale-free: scaling an embedding leaves the logits; an embedding against itself gives exp(scale).
  EXPECT_TRUE(at::allclose(clip_logits(image * 3.0, text, w.at("logit_scale")), logits, 1e-5, 1e-6));
  const at::Tensor self = clip_logits(image, image, at::tensor(std::log(100.0)));
  EXPECT_NEAR(self[0][0].item<double>(), 100.0, 1e-3);
  EXPECT_NEAR(self[1][1].item<double>(), 100.0, 1e-3);
}

TEST(ClipForward, LoraOnATextQueryChangesOnlyTextAndTrainsOnlyAdapters) {
  const ClipConfig c = clip_tiny();
  const TensorMap w = clip_random_weights(c, 8);
  const auto layers = clip_adaptable_layers(c);
  EXPECT_EQ(layers.size(), 2u * 2u * 6u + 2u); // 6 Linears per layer, 2 layers, 2 towers, 2 projections
  const std::string target = "text_model.encoder.layers.0.self_attn.q_proj";
  ASSERT_EQ(layers.count(target), 1u);
  EXPECT_EQ(layers.at(target).out_features, 32);
  EXPECT_EQ(layers.at(target).in_features, 32);
  EXPECT_EQ(layers.at("visual_projection").out_features, 24);
  EXPECT_EQ(layers.count("vision_model.embeddings.patch_embedding"), 0u);

  LoraSettings settings;
  settings.rank = 2;
  TensorMap adapters = lora_init({{target, layers.at(target)}}, settings, 11);
  adapters.at(target + kLoraB).normal_(0.0, 0.5); // a trained-looking B, so B·A != 0
  for (auto& [name, t] : adapters) t.requires_grad_(true);
  ForwardContext plain, adapted;
  adapted.adapters = &adapters;
  adapted.lora = settings;

  const at::Tensor pixels = at::randn({2, 3, 32, 32});
  const at::Tensor ids = at::tensor({598, 3, 4, 599, 598, 10, 599, 0}, at::kLong).view({2, 4});
  const at::Tensor base_text = clip_encode_text(w, c, ids, plain);
  const at::Tensor base_image = clip_encode_image(w, c, pixels, plain);
  const at::Tensor text = clip_encode_text(w, c, ids, adapted);
  const at::Tensor image = clip_encode_image(w, c, pixels, adapted);
  EXPECT_GT((text - base_text).abs().max().item<double>(), 1e-3);
  EXPECT_TRUE(at::equal(image, base_image));

  clip_logits(image, text, w.at("logit_scale")).logsumexp(1).sum().backward();
  for (const auto& [name, t] : adapters) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << name;
  }
  for (const auto& [name, t] : w) EXPECT_FALSE(t.grad().defined()) << name;
}

// Full fine-tuning hands the forward a client's own copies of base tensors: every tensor but
// logit_scale (not a module's; the task reads it itself) must be taken from them when present.
TEST(ClipForward, EveryTensorIsTakenFromAClientsOwnCopyWhenItHasOne) {
  const ClipConfig c = clip_tiny();
  const TensorMap w = clip_random_weights(c, 8);
  const at::Tensor pixels = at::randn({2, 3, 32, 32});
  const at::Tensor ids = at::tensor({598, 3, 4, 599, 598, 10, 599, 0}, at::kLong).view({2, 4});
  const ForwardContext plain;
  const at::Tensor base_text = clip_encode_text(w, c, ids, plain);
  const at::Tensor base_image = clip_encode_image(w, c, pixels, plain);
  int checked = 0;
  for (const auto& [name, t] : w) {
    if (name == "logit_scale") continue;
    TensorMap copies{{name, t + 0.5 * at::randn(t.sizes())}};
    ForwardContext own;
    own.adapters = &copies;
    TensorMap replaced = w; // the model whose weights are the copy: what the override must equal
    replaced[name] = copies.at(name);
    const bool text_tower = name.rfind("text_", 0) == 0;
    const at::Tensor out = text_tower ? clip_encode_text(w, c, ids, own) : clip_encode_image(w, c, pixels, own);
    const at::Tensor want = text_tower ? clip_encode_text(replaced, c, ids, plain) : clip_encode_image(replaced, c, pixels, plain);
    const at::Tensor before = text_tower ? base_text : base_image;
    EXPECT_TRUE(at::equal(out, want)) << name;
    // A key bias shifts every score of a query equally, which softmax ignores: it cannot show.
    if (name.find("k_proj.bias") == std::string::npos)
      EXPECT_GT((out - before).abs().max().item<double>(), 1e-4) << name << " was not taken from the copy";
    // The other tower never sees it.
    EXPECT_TRUE(at::equal(text_tower ? clip_encode_image(w, c, pixels, own) : clip_encode_text(w, c, ids, own),
                          text_tower ? base_image : base_text))
        << name;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(clip_parameter_shapes(c).size()) - 1);
}

// -- preprocessing settings -------------------------------------------------------------------------

TEST(ClipImageProcessor, ParsesOldAndNewPreprocessorConfigs) {
  TempDir dir("clip-pre");
  write_text_file(dir / "preprocessor_config.json",
                  R"({"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
                      "feature_extractor_type": "CLIPFeatureExtractor",
                      "image_mean": [0.48145466, 0.4578275, 0.40821073],
                      "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224})");
  ClipImageProcessorConfig c = clip_image_processor_config_from_hf(dir / "preprocessor_config.json");
  EXPECT_EQ(c.shortest_edge, 224);
  EXPECT_EQ(c.crop_height, 224);
  EXPECT_EQ(c.crop_width, 224);
  EXPECT_DOUBLE_EQ(c.image_std[2], 0.27577711);
  write_text_file(dir / "preprocessor_config.json",
                  R"({"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 320}, "do_rescale": false})");
  c = clip_image_processor_config_from_hf(dir / "preprocessor_config.json");
  EXPECT_EQ(c.shortest_edge, 336);
  EXPECT_EQ(c.crop_height, 336);
  EXPECT_EQ(c.crop_width, 320);
  EXPECT_FALSE(c.do_rescale);
  for (const char* bad : {R"({"resample": 2})", R"({"size": {"height": 224, "width": 224}})",
                          R"({"image_std": [0.2, 0.0, 0.3]})", R"({"crop_size": "big"})"}) {
    write_text_file(dir / "preprocessor_config.json", bad);
    try {
      (void)clip_image_processor_config_from_hf(dir / "preprocessor_config.json");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(mentions(e.what(), "preprocessor_config.json: key '")) << e.what();
    }
  }
}

TEST(ClipImageProcessor, ResizeRuleAndZeroPaddedCentreCrop) {
  EXPECT_EQ(clip_resize_size(480, 640, 224), (std::pair<int64_t, int64_t>{224, 298})); // int(224·640/480) = 298
  EXPECT_EQ(clip_resize_size(640, 480, 224), (std::pair<int64_t, int64_t>{298, 224}));
  EXPECT_EQ(clip_resize_size(100, 100, 224), (std::pair<int64_t, int64_t>{224, 224}));
  // A 2 × 3 image cropped to 4 × 4 without resizing: centred on zeros, 1 row above (ceil(2/2)),
  // 1 column left (ceil(1/2)), as HF's center_crop pads.
  ClipImageProcessorConfig c;
  c.do_resize = false;
  c.do_rescale = false;
  c.do_normalize = false;
  c.crop_height = c.crop_width = 4;
  const at::Tensor grey = at::tensor({10, 20, 30, 40, 50, 60}, at::kByte).view({2, 3});
  const at::Tensor out = clip_preprocess(grey, c);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 4, 4}));
  const at::Tensor expected = at::tensor({0, 0, 0, 0, 0, 10, 20, 30, 0, 40, 50, 60, 0, 0, 0, 0}, at::kFloat).view({4, 4});
  EXPECT_TRUE(at::equal(out[0], expected)) << out[0];
  EXPECT_TRUE(at::equal(out[2], expected));
  EXPECT_THROW((void)clip_preprocess(at::zeros({4, 4, 2}, at::kByte), c), std::invalid_argument);
  EXPECT_THROW((void)clip_preprocess(at::zeros({3, 4, 4}, at::kFloat), c), std::invalid_argument);
}

} // namespace
} // namespace fedvlm
