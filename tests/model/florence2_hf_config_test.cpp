// tests/model/florence2_hf_config_test.cpp — reading a checkpoint's config.json / preprocessor_config.json into Florence2Config.
#include "model/florence2_hf_config.hpp"

#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fedvlm {
namespace {

using testing::TempDir;
using testing::write_text_file;

// microsoft/Florence-2-large's config.json as published (the keys that matter; the rest of the
// file is labels and generation defaults).
const std::string kLargeConfig = R"({
  "model_type": "florence2", "vocab_size": 51289, "projection_dim": 1024,
  "text_config": {"vocab_size": 51289, "activation_dropout": 0.1, "activation_function": "gelu",
    "attention_dropout": 0.1, "d_model": 1024, "decoder_attention_heads": 16, "decoder_ffn_dim": 4096,
    "decoder_layers": 12, "decoder_start_token_id": 2, "dropout": 0.1, "encoder_attention_heads": 16,
    "encoder_ffn_dim": 4096, "encoder_layers": 12, "eos_token_id": 2, "max_position_embeddings": 4096,
    "pad_token_id": 1, "scale_embedding": false, "label2id": {"LABEL_0": 0}},
  "vision_config": {"model_type": "davit", "drop_path_rate": 0.1, "patch_size": [7, 3, 3, 3],
    "patch_stride": [4, 2, 2, 2], "patch_padding": [3, 1, 1, 1], "patch_prenorm": [false, true, true, true],
    "enable_checkpoint": false, "dim_embed": [256, 512, 1024, 2048], "num_heads": [8, 16, 32, 64],
    "num_groups": [8, 16, 32, 64], "depths": [1, 1, 9, 1], "window_size": 12, "projection_dim": 1024,
    "visual_temporal_embedding": {"type": "COSINE", "max_temporal_embeddings": 100},
    "image_pos_embed": {"type": "learned_abs_2d", "max_pos_embeddings": 50},
    "image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"]}
})";

// Florence-2-base differs from large only in widths and depths of the text tower.
const std::string kBaseConfig = R"({
  "model_type": "florence2", "vocab_size": 51289, "projection_dim": 768,
  "text_config": {"d_model": 768, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 12,
    "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072,
    "attention_dropout": 0.1, "activation_dropout": 0.1},
  "vision_config": {"dim_embed": [128, 256, 512, 1024], "num_heads": [4, 8, 16, 32],
    "num_groups": [4, 8, 16, 32], "projection_dim": 768}
})";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  if (at == std::string::npos) throw std::logic_error("test text lacks " + from);
  return text.replace(at, from.size(), to);
}

class HfConfig : public ::testing::Test {
protected:
  Florence2Config read(const std::string& config_json) {
    write_text_file(dir / "config.json", config_json);
    return florence2_config_from_hf(dir / "config.json");
  }
  // The message of the error reading `config_json` raises ("" when it reads).
  std::string error_of(const std::string& config_json) {
    try {
      (void)read(config_json);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
  TempDir dir{"fedvlm-hfcfg"};
};

TEST_F(HfConfig, PublishedLargeConfigIsTheLargeModel) {
  const Florence2Config c = read(kLargeConfig);
  EXPECT_EQ(florence2_architecture_difference(c, Florence2Config::large()), "");
  EXPECT_EQ(c.text.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.text.attention_dropout, 0.1);
  EXPECT_DOUBLE_EQ(c.text.activation_dropout, 0.1);
  EXPECT_EQ(c.image_size, 768); // no preprocessor_config.json: Florence-2's own size stands
  EXPECT_EQ(c.name, "hf:" + dir.path().filename().string());
  EXPECT_NE(florence2_architecture_difference(c, Florence2Config::base()), "");
}

TEST_F(HfConfig, BaseConfigIsTheBaseModelAndDifferencesAreNamed) {
  const Florence2Config c = read(kBaseConfig);
  EXPECT_EQ(florence2_architecture_difference(c, Florence2Config::base()), "");
  EXPECT_EQ(florence2_architecture_difference(c, Florence2Config::large()),
            "vision_config.dim_embed [128, 256, 512, 1024] vs [256, 512, 1024, 2048]");
  Florence2Config deeper = c;
  deeper.text.decoder_layers = 7;
  EXPECT_EQ(florence2_architecture_difference(deeper, c), "text_config.decoder_layers 7 vs 6");
}

TEST_F(HfConfig, AbsentKeysTakeTheReferenceDefaults) {
  // The reference's config classes default to the large sizes, with max_position_embeddings
  // 1024 and no attention or activation dropout.
  const Florence2Config c = read(R"({"model_type": "florence2", "vision_config": {}, "text_config": {}})");
  EXPECT_EQ(florence2_architecture_difference(c, Florence2Config::large()), "");
  EXPECT_EQ(c.text.max_position_embeddings, 1024);
  EXPECT_DOUBLE_EQ(c.text.attention_dropout, 0.0);
  EXPECT_DOUBLE_EQ(c.text.dropout, 0.1);
}

TEST_F(HfConfig, PreprocessorConfigSetsImageSizeMeanAndStd) {
  write_text_file(dir / "preprocessor_config.json",
                  R"({"size": {"height": 384, "width": 384}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})");
  const Florence2Config c = read(kBaseConfig);
  EXPECT_EQ(c.image_size, 384);
  EXPECT_EQ(c.image_mean, (std::vector<double>{0.5, 0.5, 0.5}));
  EXPECT_EQ(c.image_std, (std::vector<double>{0.25, 0.25, 0.25}));

  write_text_file(dir / "preprocessor_config.json", R"({"size": {"height": 512}})");
  EXPECT_EQ(read(kBaseConfig).image_size, 512); // a square side given once

  write_text_file(dir / "preprocessor_config.json", R"({"size": {"height": 384, "width": 512}})");
  const std::string e = error_of(kBaseConfig);
  EXPECT_NE(e.find("preprocessor_config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'size.width'"), std::string::npos) << e;
}

TEST_F(HfConfig, ErrorsNameTheFileTheKeyAndWhatWasExpected) {
  struct Case {
    std::string config;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {replaced(kLargeConfig, R"("model_type": "florence2")", R"("model_type": "bart")"),
       {"config.json", "'model_type'", "\"florence2\"", "\"bart\""}},
      {replaced(kLargeConfig, R"("num_groups": [8, 16, 32, 64])", R"("num_groups": [8, 16, 32, 32])"),
       {"'vision_config.num_groups'", "num_heads"}},
      {replaced(kLargeConfig, R"("dim_embed": [256, 512, 1024, 2048])", R"("dim_embed": [256, 512, 1024])"),
       {"'vision_config.dim_embed'", "a list of 4 numbers"}},
      {replaced(kLargeConfig, R"("depths": [1, 1, 9, 1])", R"("depths": [1, 1, "9", 1])"),
       {"'vision_config.depths'", "a list of 4 numbers"}},
      {replaced(kLargeConfig, R"("activation_function": "gelu")", R"("activation_function": "relu")"),
       {"'text_config.activation_function'", "\"gelu\""}},
      {replaced(kLargeConfig, R"("encoder_layers": 12)", R"("encoder_layers": -3)"),
       {"'text_config.encoder_layers'", "an integer >= 1", "-3"}},
      {replaced(kLargeConfig, R"("type": "learned_abs_2d")", R"("type": "sine_2d")"),
       {"'vision_config.image_pos_embed.type'", "learned_abs_2d"}},
      {replaced(kLargeConfig, R"("image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"])",
                R"("image_feature_source": ["last_frame"])"),
       {"'vision_config.image_feature_source'", "last_frame"}},
      {replaced(kLargeConfig, R"("projection_dim": 1024,
    "visual)", R"("projection_dim": 768,
    "visual)"),
       {"'vision_config.projection_dim'", "text_config.d_model (1024)"}},
      {replaced(kLargeConfig, R"("scale_embedding": false)", R"("scale_embedding": true)"),
       {"'text_config.scale_embedding'"}},
      {R"({"model_type": "florence2", "text_config": {}})", {"'vision_config'", "an object"}},
      {R"({"model_type": "florence2", )", {"config.json", "not valid JSON"}},
      // nlohmann throws out_of_range, not parse_error, for this: it used to escape raw.
      {R"({"model_type": "florence2", "x": 1e999})", {"config.json", "not valid JSON", "number overflow"}},
      {"{\"model_type\": \"florence2\xff\"}", {"config.json", "not valid JSON", "ill-formed UTF-8", "\\xFF"}},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(c.config);
    ASSERT_FALSE(e.empty()) << c.config;
    for (const std::string& needle : c.needles) EXPECT_NE(e.find(needle), std::string::npos) << needle << " in " << e;
  }
}

TEST_F(HfConfig, ConfigPathIsBesideTheWeights) {
  EXPECT_EQ(florence2_hf_config_path(dir.path()), dir / "config.json");
  EXPECT_EQ(florence2_hf_config_path(dir / "model.safetensors"), dir / "config.json");
  EXPECT_EQ(florence2_hf_config_path(dir / "model.safetensors.index.json"), dir / "config.json");
}

TEST_F(HfConfig, NativeTransformersConfigIsRead) {
  // The layout transformers' own Florence2Config writes (florence-community/Florence-2-base).
  const Florence2Config c = read(R"({
    "model_type": "florence2", "image_token_id": 51289,
    "text_config": {"model_type": "bart", "vocab_size": 51328, "d_model": 768, "encoder_layers": 6,
      "decoder_layers": 6, "encoder_attention_heads": 12, "decoder_attention_heads": 12,
      "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "attention_dropout": 0.1, "activation_dropout": 0.1},
    "vision_config": {"model_type": "florence_vision", "embed_dim": [128, 256, 512, 1024],
      "num_heads": [4, 8, 16, 32], "num_groups": [4, 8, 16, 32], "projection_dim": 768,
      "max_position_embeddings": 50, "max_temporal_embeddings": 100, "mlp_ratio": 4.0}
  })");
  EXPECT_EQ(florence2_architecture_difference(c, Florence2Config::base()), "");
  EXPECT_EQ(c.text.vocab_size, 51328); // padded by the port; the checkpoint decides
  // The native classes' defaults: a base-sized vision tower, BartConfig's vocabulary.
  const Florence2Config d = read(R"({"model_type": "florence2", "text_config": {"model_type": "bart"},
    "vision_config": {"model_type": "florence_vision", "projection_dim": 1024}})");
  EXPECT_EQ(d.vision.dims, Florence2Config::base().vision.dims);
  EXPECT_EQ(d.text.vocab_size, 50265);
  const std::string e = error_of(R"({"model_type": "florence2", "text_config": {"model_type": "t5"},
    "vision_config": {"model_type": "florence_vision"}})");
  EXPECT_NE(e.find("'text_config.model_type'"), std::string::npos) << e;
  EXPECT_NE(error_of(R"({"model_type": "florence2", "text_config": {},
    "vision_config": {"model_type": "clip_vision_model"}})").find("'vision_config.model_type'"), std::string::npos);
}

} // namespace
} // namespace fedvlm
