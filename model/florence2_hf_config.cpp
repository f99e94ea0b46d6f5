// model/florence2_hf_config.cpp — config.json / preprocessor_config.json → Florence2Config.
#include "model/florence2_hf_config.hpp"

#include "model/json_error.hpp"
#include "model/json_section.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;



// Two layouts of config.json: the remote code's (vision model_type "davit", the published
// microsoft/Florence-2-*) and transformers' native port's ("florence_vision"). They name a few
// keys differently and default differently; absent keys take the defaults of the layout's own
// config class.
void read_vision(const JsonSection& v, Florence2Config& c) {
  const std::string type = v.text("model_type", "davit");
  if (type != "davit" && type != "florence_vision")
    v.fail("model_type", "\"davit\" (remote-code layout) or \"florence_vision\" (transformers' native layout), got \"" +
                             type + "\"");
  const bool native = type == "florence_vision";
  const std::vector<int64_t> dims = native ? std::vector<int64_t>{128, 256, 512, 1024} : std::vector<int64_t>{256, 512, 1024, 2048};
  const std::vector<int64_t> heads = native ? std::vector<int64_t>{4, 8, 16, 32} : std::vector<int64_t>{8, 16, 32, 64};
  c.vision.dims = v.list<int64_t>(native ? "embed_dim" : "dim_embed", dims, 4);
  const size_t stages = c.vision.dims.size();
  c.vision.heads = v.list<int64_t>("num_heads", heads, stages);
  const auto groups = v.list<int64_t>("num_groups", heads, stages);
  if (groups != c.vision.heads)
    v.fail("num_groups", "the same list as num_heads (every published Florence-2 has them equal, and this engine "
                         "uses one list for both)");
  c.vision.depths = v.list<int64_t>("depths", {1, 1, 9, 1}, stages);
  c.vision.patch_size = v.list<int64_t>("patch_size", {7, 3, 3, 3}, stages);
  c.vision.patch_stride = v.list<int64_t>("patch_stride", {4, 2, 2, 2}, stages);
  c.vision.patch_padding = v.list<int64_t>("patch_padding", {3, 1, 1, 1}, stages);
  c.vision.patch_prenorm = v.list<bool>("patch_prenorm", {false, true, true, true}, stages);
  c.vision.window_size = v.integer("window_size", 12, 1);
  c.projection.projection_dim = v.integer("projection_dim", 1024, 1);

  if (native) {
    c.projection.max_pos_embeddings = v.integer("max_position_embeddings", 50, 1);
    c.projection.max_temporal_embeddings = v.integer("max_temporal_embeddings", 100, 1);
    if (v.non_negative("mlp_ratio", 4.0) != 4.0) v.fail("mlp_ratio", "4.0 (as every published Florence-2)");
    if (!v.flag("qkv_bias", true)) v.fail("qkv_bias", "true");
    if (v.text("activation_function", "gelu") != "gelu") v.fail("activation_function", "\"gelu\"");
    return;
  }
  if (v.has("image_pos_embed")) {
    const JsonSection pos = v.child("image_pos_embed");
    if (pos.text("type", "") != "learned_abs_2d") pos.fail("type", "\"learned_abs_2d\"");
    c.projection.max_pos_embeddings = pos.integer("max_pos_embeddings", 50, 1);
  }
  if (v.has("visual_temporal_embedding")) {
    const JsonSection temporal = v.child("visual_temporal_embedding");
    if (temporal.text("type", "") != "COSINE") temporal.fail("type", "\"COSINE\"");
    c.projection.max_temporal_embeddings = temporal.integer("max_temporal_embeddings", 100, 1);
  }
  if (v.has("image_feature_source") &&
      v.raw("image_feature_source") != json::array({"spatial_avg_pool", "temporal_avg_pool"}))
    v.fail("image_feature_source", "[\"spatial_avg_pool\", \"temporal_avg_pool\"] (the published setting), got " +
                                       v.raw("image_feature_source").dump());
}

// Defaults are those of the remote code's Florence2LanguageConfig, or of BartConfig (the native
// port's text model) where model_type says "bart": BART-large sized, they differ in vocab only.
void read_text(const JsonSection& t, Florence2Config& c) {
  const std::string type = t.text("model_type", "florence2_language");
  if (type != "florence2_language" && type != "bart")
    t.fail("model_type", "\"florence2_language\" or \"bart\", got \"" + type + "\"");
  BartConfig& b = c.text;
  b.vocab_size = t.integer("vocab_size", type == "bart" ? 50265 : 51289, 1);
  b.d_model = t.integer("d_model", 1024, 1);
  b.encoder_layers = t.integer("encoder_layers", 12, 1);
  b.decoder_layers = t.integer("decoder_layers", 12, 1);
  b.encoder_heads = t.integer("encoder_attention_heads", 16, 1);
  b.decoder_heads = t.integer("decoder_attention_heads", 16, 1);
  b.encoder_ffn_dim = t.integer("encoder_ffn_dim", 4096, 1);
  b.decoder_ffn_dim = t.integer("decoder_ffn_dim", 4096, 1);
  b.max_position_embeddings = t.integer("max_position_embeddings", 1024, 1);
  b.dropout = t.non_negative("dropout", 0.1);
  b.attention_dropout = t.non_negative("attention_dropout", 0.0);
  b.activation_dropout = t.non_negative("activation_dropout", 0.0);
  b.pad_token_id = t.integer("pad_token_id", 1);
  b.bos_token_id = t.integer("bos_token_id", 0);
  b.eos_token_id = t.integer("eos_token_id", 2);
  b.decoder_start_token_id = t.integer("decoder_start_token_id", 2);
  if (t.text("activation_function", "gelu") != "gelu") t.fail("activation_function", "\"gelu\"");
  if (t.flag("scale_embedding", false)) t.fail("scale_embedding", "false (as every published Florence-2)");
  if (!t.flag("tie_word_embeddings", true)) t.fail("tie_word_embeddings", "true (lm_head shares the token table)");
  if (b.d_model % b.encoder_heads != 0 || b.d_model % b.decoder_heads != 0)
    t.fail("d_model", "a multiple of the attention head counts");
}

void read_preprocessor(const fs::path& file, Florence2Config& c) {
  const json root = read_json_file(file);
  const JsonSection p(file, root, "");
  if (p.has("size")) {
    const JsonSection size = p.child("size");
    const int64_t h = size.integer("height", c.image_size, 1), w = size.integer("width", h, 1);
    if (h != w) size.fail("width", "the same as height (square images), got " + std::to_string(w));
    c.image_size = h;
  }
  c.image_mean = p.list<double>("image_mean", c.image_mean, 3);
  c.image_std = p.list<double>("image_std", c.image_std, 3);
}

} // namespace

std::string florence2_architecture_difference(const Florence2Config& a, const Florence2Config& b) {
  auto show = [](const auto& v) {
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(v)>>) {
      return std::to_string(v);
    } else {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(static_cast<int64_t>(v[i]));
      return out + "]";
    }
  };
  std::string diff;
  auto check = [&](const char* key, const auto& x, const auto& y) {
    if (diff.empty() && !(x == y)) diff = std::string(key) + " " + show(x) + " vs " + show(y);
  };
  check("vision_config.dim_embed", a.vision.dims, b.vision.dims);
  check("vision_config.num_heads", a.vision.heads, b.vision.heads);
  check("vision_config.depths", a.vision.depths, b.vision.depths);
  check("vision_config.patch_size", a.vision.patch_size, b.vision.patch_size);
  check("vision_config.patch_stride", a.vision.patch_stride, b.vision.patch_stride);
  check("vision_config.patch_padding", a.vision.patch_padding, b.vision.patch_padding);
  check("vision_config.patch_prenorm", a.vision.patch_prenorm, b.vision.patch_prenorm);
  check("vision_config.window_size", a.vision.window_size, b.vision.window_size);
  check("vision_config.projection_dim", a.projection.projection_dim, b.projection.projection_dim);
  check("text_config.d_model", a.text.d_model, b.text.d_model);
  check("text_config.encoder_layers", a.text.encoder_layers, b.text.encoder_layers);
  check("text_config.decoder_layers", a.text.decoder_layers, b.text.decoder_layers);
  check("text_config.encoder_attention_heads", a.text.encoder_heads, b.text.encoder_heads);
  check("text_config.decoder_attention_heads", a.text.decoder_heads, b.text.decoder_heads);
  check("text_config.encoder_ffn_dim", a.text.encoder_ffn_dim, b.text.encoder_ffn_dim);
  check("text_config.decoder_ffn_dim", a.text.decoder_ffn_dim, b.text.decoder_ffn_dim);
  return diff;
}

fs::path florence2_hf_config_path(const fs::path& checkpoint) {
  return fs::is_directory(checkpoint) ? checkpoint / "config.json" : checkpoint.parent_path() / "config.json";
}

Florence2Config florence2_config_from_hf(const fs::path& config_json) {
  const json root = read_json_file(config_json);
  if (!root.is_object()) throw std::runtime_error(config_json.string() + ": expected a JSON object");
  const JsonSection top(config_json, root, "");
  const std::string type = top.text("model_type", "");
  if (type != "florence2")
    top.fail("model_type", "\"florence2\", got \"" + type + "\"" +
                               (type == "florence2_language" || type.empty() ? "" : " (another model's config)"));

  Florence2Config c;
  c.name = "hf:" + config_json.parent_path().filename().string();
  read_vision(top.child("vision_config"), c);
  read_text(top.child("text_config"), c);
  // The top level repeats a few text settings; where it does, they must agree.
  if (top.has("vocab_size") && top.integer("vocab_size", 0, 1) != c.text.vocab_size)
    top.fail("vocab_size", "text_config.vocab_size (" + std::to_string(c.text.vocab_size) + ")");
  if (c.projection.projection_dim != c.text.d_model)
    top.fail("vision_config.projection_dim",
             "text_config.d_model (" + std::to_string(c.text.d_model) + "): image tokens enter the text encoder");

  const fs::path pre = config_json.parent_path() / "preprocessor_config.json";
  if (fs::exists(pre)) read_preprocessor(pre, c);
  return c;
}

} // namespace fedvlm
