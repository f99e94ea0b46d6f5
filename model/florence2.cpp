// model/florence2.cpp — Florence-2: DaViT image tokens + prompt embeddings → BART, weights by checkpoint name.
#include "model/florence2.hpp"

#include "model/florence2_native_layout.hpp"
#include "model/name_affixes.hpp"
#include "model/safetensors.hpp"

#include "support/join.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace fedvlm {
namespace {

const std::string kShared = "language_model.model.shared.weight";
const std::string kFinalLogitsBias = "language_model.final_logits_bias";
const std::string kTemporalEmbed = "visual_temporal_embed.pos_idx_to_embed";
const std::string kDecoderLayers = "language_model.model.decoder.layers.";

// Where checkpoints keep the one tied token table; the first present wins. save_pretrained drops
// all but one of them, conversions keep some or all.
const std::vector<std::string>& tied_embedding_names() {
  static const std::vector<std::string> names = {
      kShared,
      "language_model.model.encoder.embed_tokens.weight",
      "language_model.model.decoder.embed_tokens.weight",
      "language_model.lm_head.weight",
  };
  return names;
}


std::map<std::string, std::vector<int64_t>> all_shapes(const Florence2Config& c) {
  auto shapes = davit_parameter_shapes(c.vision, c.projection);
  for (auto& [name, shape] : bart_parameter_shapes(c.text)) {
    if (!shapes.emplace(name, shape).second)
      throw std::logic_error("florence2: tensor '" + name + "' named by both towers");
  }
  return shapes;
}

// The reference's PositionalEmbeddingCosine1D buffer: sin on even columns, cos on odd ones.
// It is a constant, so even a randomly initialised model carries the real values.
at::Tensor temporal_sinusoids(int64_t rows, int64_t dim) {
  const at::Tensor denominator =
      at::exp(at::arange(0, dim, 2, at::kFloat) * (-std::log(10000.0) / static_cast<double>(dim)));
  const at::Tensor freq = at::arange(rows, at::kFloat).unsqueeze(1) * denominator.unsqueeze(0);
  at::Tensor out = at::zeros({rows, dim}, at::kFloat);
  out.slice(1, 0, dim, 2).copy_(at::sin(freq));
  out.slice(1, 1, dim, 2).copy_(at::cos(freq).slice(1, 0, dim / 2));
  return out;
}

void validate(const Florence2Config& c) {
  if (c.projection.projection_dim != c.text.d_model)
    throw std::invalid_argument("florence2: projection_dim " + std::to_string(c.projection.projection_dim) +
                                " must equal the language model's d_model " +
                                std::to_string(c.text.d_model));
  if (c.image_size < 1) throw std::invalid_argument("florence2: image_size must be >= 1");
  if (c.image_mean.size() != 3 || c.image_std.size() != 3)
    throw std::invalid_argument("florence2: image_mean and image_std need 3 entries");
}

} // namespace

Florence2Config Florence2Config::base() {
  Florence2Config c; // every default is Florence-2-base's
  c.name = "base";
  c.text.attention_dropout = 0.1;
  c.text.activation_dropout = 0.1;
  return c;
}

Florence2Config Florence2Config::large() {
  Florence2Config c;
  c.name = "large";
  c.vision.dims = {256, 512, 1024, 2048};
  c.vision.heads = {8, 16, 32, 64};
  c.projection.projection_dim = 1024;
  c.text.d_model = 1024;
  c.text.encoder_layers = c.text.decoder_layers = 12;
  c.text.encoder_heads = c.text.decoder_heads = 16;
  c.text.encoder_ffn_dim = c.text.decoder_ffn_dim = 4096;
  // Florence-2-large's config.json says 4096 (base says 1024): embed_positions is [4098, 1024].
  c.text.max_position_embeddings = 4096;
  c.text.attention_dropout = 0.1;
  c.text.activation_dropout = 0.1;
  return c;
}

Florence2Config Florence2Config::tiny() {
  Florence2Config c;
  c.name = "tiny";
  c.vision.dims = {16, 32, 64, 128};
  c.vision.heads = {1, 2, 4, 8};
  c.vision.depths = {1, 1, 1, 1};
  c.vision.window_size = 2; // 64 px → 16², 8², 4², 2² maps: windows of 2 tile every stage
  c.projection.projection_dim = 32;
  c.text.vocab_size = 300;
  c.text.d_model = 32;
  c.text.encoder_layers = c.text.decoder_layers = 2;
  c.text.encoder_heads = c.text.decoder_heads = 2;
  c.text.encoder_ffn_dim = c.text.decoder_ffn_dim = 64;
  c.text.max_position_embeddings = 128;
  c.image_size = 64;
  return c;
}

Florence2Config Florence2Config::named(const std::string& name) {
  if (name == "base") return base();
  if (name == "large") return large();
  if (name == "tiny") return tiny();
  throw std::invalid_argument("florence2: unknown model \"" + name +
                              "\", expected \"base\", \"large\" or \"tiny\"");
}

Florence2::Florence2(Florence2Config config, uint64_t seed) : config_(std::move(config)) {
  validate(config_);
  // One generator drawn in sorted-name order, so a seed fixes every weight. Init as the
  // reference's _init_weights: normal(0, 0.02) for matrices, convolutions and embeddings,
  // LayerNorm 1/0, biases 0.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, shape] : all_shapes(config_)) {
    at::Tensor t;
    if (name == kTemporalEmbed) {
      t = temporal_sinusoids(shape[0], shape[1]);
    } else if (name == kFinalLogitsBias || ends_with(name, ".bias")) {
      t = at::zeros(shape, at::kFloat);
    } else if (shape.size() == 1) {
      t = at::ones(shape, at::kFloat); // a LayerNorm weight: the only 1-D non-bias tensor
    } else {
      t = at::empty(shape, at::kFloat);
      t.normal_(0.0, 0.02, gen);
    }
    weights_.emplace(name, t);
  }
  // nn.Embedding(padding_idx=pad) zeroes the pad row at init.
  weights_.at(kShared)[config_.text.pad_token_id].zero_();
  apply_precision();
}

void Florence2::apply_precision() {
  const at::ScalarType dtype = config_.precision == Precision::bfloat16 ? at::kBFloat16 : at::kFloat;
  for (auto& [name, t] : weights_)
    if (t.is_floating_point() && t.scalar_type() != dtype) t = t.to(dtype);
}

void Florence2::load(const std::filesystem::path& checkpoint) {
  const TensorMap state = safetensors_load_any(checkpoint);
  require_finite_weights(state, "checkpoint '" + checkpoint.string() + "'");
  try {
    load_state(state);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("checkpoint '" + checkpoint.string() + "': " + e.what());
  }
}

void Florence2::load_state(const TensorMap& state) {
  // transformers' built-in port names the same tensors differently: rename, then check as usual.
  if (is_florence2_native_layout(state))
    load_state_checked(florence2_from_native_layout(state), " (native transformers layout, shown renamed)");
  else
    load_state_checked(state, "");
}

void Florence2::load_state_checked(const TensorMap& state, const std::string& layout_note) {
  const std::string who = "Florence2 (" + config_.name + ")" + layout_note;
  std::vector<std::string> missing, unexpected, misshaped;
  TensorMap loaded;
  auto take = [&](const std::string& key, const at::Tensor& t, const at::Tensor& current) {
    if (!t.defined()) {
      misshaped.push_back(key + " (undefined tensor)");
    } else if (!at::isFloatingType(t.scalar_type())) {
      misshaped.push_back(key + " (expected a floating tensor, got " +
                          std::string(c10::toString(t.scalar_type())) + ")");
    } else if (t.sizes() != current.sizes()) {
      misshaped.push_back(key + " (expected " + tensor_shape_string(current.sizes()) + ", got " +
                          tensor_shape_string(t.sizes()) + ")");
    } else {
      // A fresh float32 copy: bf16/fp16 checkpoints are widened, and the caller's map may be freed.
      loaded[key] = at::empty(current.sizes(), at::kFloat).copy_(t);
    }
  };

  const auto& tied = tied_embedding_names();
  const at::Tensor& shared_now = weights_.at(kShared);
  bool have_shared = false;
  for (const std::string& name : tied) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    if (!have_shared) {
      take(kShared, it->second, shared_now);
      have_shared = true;
    } else if (!it->second.defined() || it->second.sizes() != shared_now.sizes()) {
      // A redundant copy is ignored, but one of another shape means the wrong checkpoint.
      take(name, it->second, shared_now);
    }
  }
  if (!have_shared) missing.push_back(kShared + " (or a tied copy)");

  for (const auto& [key, current] : weights_) {
    if (key == kShared) continue;
    auto it = state.find(key);
    if (it != state.end()) {
      take(key, it->second, current);
    } else if (key == kFinalLogitsBias) {
      // A zero-initialised buffer the reference tolerates missing (_keys_to_ignore_on_load_missing).
      loaded[key] = at::zeros(current.sizes(), at::kFloat);
    } else if (key == kTemporalEmbed) {
      // A constant the reference computes in its constructor; a checkpoint without it (one that
      // kept parameters only) loads there with the same values.
      loaded[key] = temporal_sinusoids(current.size(0), current.size(1));
    } else {
      missing.push_back(key);
    }
  }
  for (const auto& [key, t] : state) {
    if (weights_.count(key) || std::find(tied.begin(), tied.end(), key) != tied.end()) continue;
    // fairseq version markers the reference also ignores.
    if (key == "language_model.model.encoder.version" || key == "language_model.model.decoder.version")
      continue;
    unexpected.push_back(key);
  }

  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::ostringstream os;
    os << who << ": state does not fit the model";
    os << excerpt_of("missing", missing);
    os << excerpt_of("unexpected", unexpected);
    os << excerpt_of("mis-shaped", misshaped);
    throw std::runtime_error(os.str());
  }
  // Everything was checked before anything changes: a bad checkpoint leaves the model intact.
  weights_ = std::move(loaded);
  apply_precision();
}

std::map<std::string, AdaptableLayer> Florence2::adaptable_layers() const {
  return florence2_adaptable_layers(config_);
}

std::vector<std::string> Florence2::last_decoder_layer_targets() const {
  return florence2_last_decoder_layer_targets(config_);
}

std::map<std::string, AdaptableLayer> florence2_adaptable_layers(const Florence2Config& config) {
  std::map<std::string, AdaptableLayer> out;
  // Encoder Linears are left out on purpose: encode() runs the encoder without adapters (its
  // output is computed once per sample), so an adapter there would silently do nothing.
  for (const auto& [name, shape] : bart_linear_layers(config.text))
    if (!starts_with(name, "language_model.model.encoder."))
      out.emplace(name, AdaptableLayer{shape.first, shape.second});
  return out;
}

std::vector<std::string> florence2_last_decoder_layer_targets(const Florence2Config& config) {
  if (config.text.decoder_layers < 1) return {};
  const std::string layer = kDecoderLayers + std::to_string(config.text.decoder_layers - 1) + ".";
  std::vector<std::string> out;
  for (const char* attn : {"self_attn", "encoder_attn"})
    for (const char* proj : {".q_proj", ".k_proj", ".v_proj", ".out_proj"})
      out.push_back(layer + attn + proj);
  out.push_back(layer + "fc1");
  out.push_back(layer + "fc2");
  return out;
}

at::Tensor Florence2::encode(const at::Tensor& pixels, const at::Tensor& prompt_ids,
                             const ForwardContext& ctx) const {
  if (pixels.dim() != 4 || prompt_ids.dim() != 2 || prompt_ids.size(0) != pixels.size(0) ||
      prompt_ids.scalar_type() != at::kLong)
    throw std::invalid_argument("Florence2::encode: expected pixels (B, 3, H, W) and prompt_ids (B, P) "
                                "int64, got " + tensor_shape_string(pixels.sizes()) + " and " +
                                tensor_shape_string(prompt_ids.sizes()));
  at::NoGradGuard no_grad;
  ForwardContext frozen = ctx;
  frozen.adapters = nullptr;
  const at::Tensor tokens = davit_forward(weights_, config_.vision, pixels.to(weights_.at(kShared).scalar_type()));
  const auto [h, w] = davit_output_grid(config_.vision, pixels.size(2), pixels.size(3));
  const at::Tensor image = image_tokens_project(weights_, config_.projection, tokens, h, w);
  // _merge_input_ids_with_image_features: [image tokens, prompt embeddings], all attended.
  const at::Tensor inputs = at::cat({image, bart_embed_tokens(weights_, prompt_ids)}, 1);
  return bart_encode(weights_, config_.text, inputs, frozen);
}

at::Tensor Florence2::decode_logits(const at::Tensor& encoder_hidden, const at::Tensor& labels,
                                    const ForwardContext& ctx) const {
  int64_t first = first_adapted_decoder_layer(ctx.adapters);
  if (ctx.clients) // several clients in one pass: autograd from the lowest layer any of them adapts
    for (const TensorMap* a : ctx.clients->adapters) first = std::min(first, first_adapted_decoder_layer(a));
  return bart_decode(weights_, config_.text, bart_shift_right(labels, config_.text), encoder_hidden, ctx, first);
}

at::Tensor Florence2::loss(const at::Tensor& logits, const at::Tensor& labels) const {
  if (logits.dim() != 3 || labels.dim() != 2 || logits.size(0) != labels.size(0) ||
      logits.size(1) != labels.size(1))
    throw std::invalid_argument("Florence2::loss: expected logits (B, T, V) and labels (B, T), got " +
                                tensor_shape_string(logits.sizes()) + " and " + tensor_shape_string(labels.sizes()));
  const at::Tensor flat_labels = labels.reshape({-1}).to(at::kLong);
  // Mean over no tokens is 0/0; a batch of only ignored labels contributes nothing instead.
  if (!flat_labels.ne(-100).any().item<bool>()) return logits.sum() * 0.0;
  // In float32 whatever the model's precision: log-softmax over 51k logits is where bf16 hurts.
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(2)}).to(at::kFloat), flat_labels, {},
                                at::Reduction::Mean, -100);
}

at::Tensor Florence2::generate(const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                               int64_t max_new_tokens) const {
  return bart_generate_greedy(weights_, config_.text, encoder_hidden, ctx, max_new_tokens);
}

at::Tensor Florence2::generate(const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                               const GenerationSettings& settings) const {
  return bart_generate(weights_, config_.text, encoder_hidden, ctx, settings);
}

int64_t Florence2::first_adapted_decoder_layer(const TensorMap* adapters) const {
  int64_t first = config_.text.decoder_layers;
  if (adapters == nullptr) return first;
  for (const auto& [name, t] : *adapters) {
    if (!starts_with(name, kDecoderLayers)) continue;
    const size_t begin = kDecoderLayers.size();
    const size_t end = name.find('.', begin);
    if (end == std::string::npos || end == begin) continue;
    const std::string digits = name.substr(begin, end - begin);
    if (!std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      continue;
    first = std::min<int64_t>(first, std::stoll(digits));
  }
  return first;
}

} // namespace fedvlm
