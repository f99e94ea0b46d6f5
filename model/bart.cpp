// model/bart.cpp — BART encoder-decoder (Florence-2's language model) as ATen functions over a TensorMap.
#include "model/bart.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fedvlm {
namespace {

const std::string kModel = "language_model.model.";
const std::string kShared = "language_model.model.shared.weight";
const std::string kLmHead = "language_model.lm_head";
const std::string kFinalLogitsBias = "language_model.final_logits_bias";
// BART's learned positions start at row 2: a fairseq leftover (rows 0/1 once served padding).
constexpr int64_t kPositionOffset = 2;
constexpr double kLayerNormEps = 1e-5; // nn.LayerNorm default, as the reference uses

const at::Tensor& get(const TensorMap& weights, const std::string& key) {
  auto it = weights.find(key);
  if (it == weights.end())
    throw std::runtime_error("bart: weights have no tensor '" + key + "'");
  return it->second;
}


void validate(const BartConfig& c) {
  auto positive = [](int64_t v, const char* what) {
    if (v < 1) throw std::invalid_argument(std::string("bart: ") + what + " must be >= 1, got " +
                                           std::to_string(v));
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.d_model, "d_model");
  positive(c.encoder_heads, "encoder_heads");
  positive(c.decoder_heads, "decoder_heads");
  positive(c.encoder_ffn_dim, "encoder_ffn_dim");
  positive(c.decoder_ffn_dim, "decoder_ffn_dim");
  positive(c.max_position_embeddings, "max_position_embeddings");
  if (c.encoder_layers < 0 || c.decoder_layers < 0)
    throw std::invalid_argument("bart: layer counts must be >= 0");
  if (c.d_model % c.encoder_heads != 0 || c.d_model % c.decoder_heads != 0)
    throw std::invalid_argument("bart: d_model " + std::to_string(c.d_model) +
                                " is not divisible by the number of heads");
  for (double p : {c.dropout, c.attention_dropout, c.activation_dropout})
    // p = 1 would divide by zero in the inverted-dropout rescale.
    if (!(p >= 0.0 && p < 1.0))
      throw std::invalid_argument("bart: dropout probabilities must be in [0, 1), got " +
                                  std::to_string(p));
}

at::Tensor layer_norm(const TensorMap& w, const std::string& module, const at::Tensor& x) {
  return at::layer_norm(x, {x.size(-1)}, get(w, module + ".weight"), get(w, module + ".bias"),
                        kLayerNormEps, /*cudnn_enable=*/false);
}

at::Tensor linear(const TensorMap& w, const std::string& module, const at::Tensor& x,
                  const ForwardContext& ctx) {
  return lora_linear(x, get(w, module + ".weight"), get(w, module + ".bias"), module, ctx);
}

// (B, S, d) → (B, H, S, d/H).
at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

// Multi-head attention of `x` (B, T, d) over keys `k` and values `v` already projected and
// split into heads (B, H, S, d/H); `module` is e.g. "language_model.model.decoder.layers.5.self_attn".
at::Tensor attend(const TensorMap& w, const std::string& module, const at::Tensor& x, const at::Tensor& k,
                  const at::Tensor& v, int64_t heads, bool causal, double attn_dropout, const ForwardContext& ctx) {
  const int64_t b = x.size(0), t = x.size(1), d = x.size(2), s = k.size(2);
  // The reference scales q after its projection (bias and any LoRA delta included).
  const double scaling = 1.0 / std::sqrt(static_cast<double>(d / heads));
  const at::Tensor q = split_heads(linear(w, module + ".q_proj", x, ctx) * scaling, heads);
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)); // (B, H, T, S)
  if (causal) {
    // Position i sees keys 0..i; the diagonal is always visible, so no row is all -inf.
    const at::Tensor future = at::ones({t, s}, x.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = dropout_with(at::softmax(scores, -1), attn_dropout, ctx);
  const at::Tensor out = at::matmul(probs, v).transpose(1, 2).reshape({b, t, d});
  return linear(w, module + ".out_proj", out, ctx);
}

// The same over `kv` (B, S, d), projecting keys and values here.
at::Tensor attention(const TensorMap& w, const std::string& module, const at::Tensor& x,
                     const at::Tensor& kv, int64_t heads, bool causal, double attn_dropout,
                     const ForwardContext& ctx) {
  return attend(w, module, x, split_heads(linear(w, module + ".k_proj", kv, ctx), heads),
                split_heads(linear(w, module + ".v_proj", kv, ctx), heads), heads, causal, attn_dropout, ctx);
}

// Post-LN feed-forward sub-block shared by encoder and decoder layers.
at::Tensor feed_forward(const TensorMap& w, const std::string& layer, const at::Tensor& h,
                        const BartConfig& c, const ForwardContext& ctx) {
  at::Tensor y = at::gelu(linear(w, layer + "fc1", h, ctx)); // exact (erf) GELU, ACT2FN["gelu"]
  y = dropout_with(y, c.activation_dropout, ctx);
  y = dropout_with(linear(w, layer + "fc2", y, ctx), c.dropout, ctx);
  return layer_norm(w, layer + "final_layer_norm", h + y);
}

at::Tensor encoder_layer(const TensorMap& w, const BartConfig& c, int64_t i, const at::Tensor& h,
                         const ForwardContext& ctx) {
  const std::string layer = kModel + "encoder.layers." + std::to_string(i) + ".";
  at::Tensor a = attention(w, layer + "self_attn", h, h, c.encoder_heads, /*causal=*/false,
                           c.attention_dropout, ctx);
  at::Tensor x = layer_norm(w, layer + "self_attn_layer_norm", h + dropout_with(a, c.dropout, ctx));
  return feed_forward(w, layer, x, c, ctx);
}

std::string decoder_layer_name(int64_t i) { return kModel + "decoder.layers." + std::to_string(i) + "."; }

at::Tensor decoder_layer(const TensorMap& w, const BartConfig& c, int64_t i, const at::Tensor& h,
                         const at::Tensor& encoder_hidden, const ForwardContext& ctx) {
  const std::string layer = decoder_layer_name(i);
  at::Tensor a = attention(w, layer + "self_attn", h, h, c.decoder_heads, /*causal=*/true,
                           c.attention_dropout, ctx);
  at::Tensor x = layer_norm(w, layer + "self_attn_layer_norm", h + dropout_with(a, c.dropout, ctx));
  a = attention(w, layer + "encoder_attn", x, encoder_hidden, c.decoder_heads, /*causal=*/false,
                c.attention_dropout, ctx);
  x = layer_norm(w, layer + "encoder_attn_layer_norm", x + dropout_with(a, c.dropout, ctx));
  return feed_forward(w, layer, x, c, ctx);
}

// What incremental decoding keeps per decoder layer, each (B, H, ·, d/H): the cross-attention
// keys/values (they depend on the encoder states and the adapters only, both fixed while
// generating, so they are projected once instead of every step) and the self-attention
// keys/values of the tokens decoded so far (so a step runs one token through the decoder).
struct DecoderCache {
  std::vector<at::Tensor> cross_k, cross_v, self_k, self_v;
  int64_t length = 0; ///< tokens decoded so far

  /// Row `rows[j]` of every self-attention cache becomes row j (beam search's reordering).
  void select_rows(const at::Tensor& rows) {
    for (auto* list : {&self_k, &self_v})
      for (at::Tensor& t : *list) t = t.index_select(0, rows);
  }
};

DecoderCache start_cache(const TensorMap& w, const BartConfig& c, const at::Tensor& encoder_hidden,
                         const ForwardContext& ctx) {
  DecoderCache cache;
  for (int64_t i = 0; i < c.decoder_layers; ++i) {
    const std::string module = decoder_layer_name(i) + "encoder_attn";
    cache.cross_k.push_back(split_heads(linear(w, module + ".k_proj", encoder_hidden, ctx), c.decoder_heads));
    cache.cross_v.push_back(split_heads(linear(w, module + ".v_proj", encoder_hidden, ctx), c.decoder_heads));
  }
  cache.self_k.resize(static_cast<std::size_t>(c.decoder_layers));
  cache.self_v.resize(static_cast<std::size_t>(c.decoder_layers));
  return cache;
}

// Learned positions start..start+len-1 (rows offset by 2), broadcast over the batch.
at::Tensor positions(const TensorMap& w, const std::string& side, int64_t start, int64_t len,
                     const BartConfig& c) {
  if (start + len > c.max_position_embeddings)
    throw std::invalid_argument("bart: " + side + " sequence of " + std::to_string(start + len) +
                                " tokens exceeds max_position_embeddings " +
                                std::to_string(c.max_position_embeddings));
  return get(w, kModel + side + ".embed_positions.weight")
      .slice(0, kPositionOffset + start, kPositionOffset + start + len)
      .unsqueeze(0);
}

// Encoder states must be (B, S, d_model), with B = `batch` where the caller fixes it.
void check_encoder_hidden(const at::Tensor& encoder_hidden, const BartConfig& c, const char* who,
                          std::optional<int64_t> batch = std::nullopt) {
  if (encoder_hidden.dim() != 3 || encoder_hidden.size(2) != c.d_model ||
      (batch && encoder_hidden.size(0) != *batch))
    throw std::invalid_argument(std::string(who) + ": expected encoder_hidden (" +
                                (batch ? std::to_string(*batch) : std::string("B")) + ", S, " +
                                std::to_string(c.d_model) + "), got " + tensor_shape_string(encoder_hidden.sizes()));
}

} // namespace

at::Tensor bart_embed_tokens(const TensorMap& weights, const at::Tensor& ids) {
  // scale_embedding is false in both published configs: embed_scale 1.
  return at::embedding(get(weights, kShared), ids);
}

at::Tensor bart_encode(const TensorMap& weights, const BartConfig& config,
                       const at::Tensor& inputs_embeds, const ForwardContext& ctx) {
  validate(config);
  if (inputs_embeds.dim() != 3 || inputs_embeds.size(2) != config.d_model)
    throw std::invalid_argument("bart_encode: expected inputs_embeds (B, S, " +
                                std::to_string(config.d_model) + "), got " +
                                tensor_shape_string(inputs_embeds.sizes()));
  // Positions run over the whole input (image tokens and prompt alike), as the reference does
  // with inputs_embeds; no attention mask: Florence-2 passes an all-ones mask.
  at::Tensor h = inputs_embeds + positions(weights, "encoder", 0, inputs_embeds.size(1), config);
  h = layer_norm(weights, kModel + "encoder.layernorm_embedding", h);
  h = dropout_with(h, config.dropout, ctx);
  for (int64_t i = 0; i < config.encoder_layers; ++i) h = encoder_layer(weights, config, i, h, ctx);
  return h;
}

namespace {

// lm_head is tied to the shared embedding and has no bias; final_logits_bias is a buffer.
at::Tensor lm_head(const TensorMap& weights, const at::Tensor& h, const ForwardContext& ctx) {
  return lora_linear(h, get(weights, kShared), at::Tensor(), kLmHead, ctx) + get(weights, kFinalLogitsBias);
}

// Feeds `last` (B, 1), the newest token of each row, through the decoder on top of `cache`
// and returns the logits (B, vocab) of the token after it. One position per step: the layers
// see a single query, whose attention over the cached keys needs no causal mask.
at::Tensor decode_step(const TensorMap& w, const BartConfig& c, const at::Tensor& last, DecoderCache& cache,
                       const ForwardContext& ctx) {
  at::Tensor h = layer_norm(w, kModel + "decoder.layernorm_embedding",
                            bart_embed_tokens(w, last) + positions(w, "decoder", cache.length, 1, c));
  for (int64_t i = 0; i < c.decoder_layers; ++i) {
    const std::string layer = decoder_layer_name(i);
    const auto at = static_cast<std::size_t>(i);
    const std::string self = layer + "self_attn";
    const at::Tensor k = split_heads(linear(w, self + ".k_proj", h, ctx), c.decoder_heads);
    const at::Tensor v = split_heads(linear(w, self + ".v_proj", h, ctx), c.decoder_heads);
    cache.self_k[at] = cache.self_k[at].defined() ? at::cat({cache.self_k[at], k}, 2) : k;
    cache.self_v[at] = cache.self_v[at].defined() ? at::cat({cache.self_v[at], v}, 2) : v;
    at::Tensor a = attend(w, self, h, cache.self_k[at], cache.self_v[at], c.decoder_heads, false, 0.0, ctx);
    at::Tensor x = layer_norm(w, layer + "self_attn_layer_norm", h + a);
    const at::Tensor& ck = cache.cross_k[at];
    const at::Tensor& cv = cache.cross_v[at];
    const int64_t rows = h.size(0);
    // Beam search keeps one row of encoder keys for all its hypotheses: broadcast, no copy.
    a = attend(w, layer + "encoder_attn", x, ck.expand({rows, ck.size(1), ck.size(2), ck.size(3)}),
               cv.expand({rows, cv.size(1), cv.size(2), cv.size(3)}), c.decoder_heads, false, 0.0, ctx);
    x = layer_norm(w, layer + "encoder_attn_layer_norm", x + a);
    h = feed_forward(w, layer, x, c, ctx);
  }
  ++cache.length;
  return lm_head(w, h.select(1, 0), ctx);
}

// Generation runs in eval mode whatever the caller's context says about dropout.
ForwardContext generation_context(const BartConfig& config, const at::Tensor& encoder_hidden,
                                  const ForwardContext& ctx) {
  validate(config);
  check_encoder_hidden(encoder_hidden, config, "bart_generate");
  ForwardContext eval = ctx;
  eval.dropout_active = false;
  eval.batchnorm_update = false;
  return eval;
}

} // namespace

at::Tensor bart_decode(const TensorMap& weights, const BartConfig& config,
                       const at::Tensor& decoder_input_ids, const at::Tensor& encoder_hidden,
                       const ForwardContext& ctx, int64_t first_grad_layer) {
  validate(config);
  if (decoder_input_ids.dim() != 2 || decoder_input_ids.scalar_type() != at::kLong)
    throw std::invalid_argument("bart_decode: expected decoder_input_ids (B, T) int64, got " +
                                tensor_shape_string(decoder_input_ids.sizes()));
  check_encoder_hidden(encoder_hidden, config, "bart_decode", decoder_input_ids.size(0));
  const int64_t frozen = std::clamp<int64_t>(first_grad_layer, 0, config.decoder_layers);
  at::Tensor h;
  {
    // Nothing below `first_grad_layer` depends on a trainable tensor, so recording its graph
    // would only cost memory: run it (embeddings included) without autograd.
    std::optional<at::NoGradGuard> no_grad;
    if (frozen > 0) no_grad.emplace();
    h = bart_embed_tokens(weights, decoder_input_ids) +
        positions(weights, "decoder", 0, decoder_input_ids.size(1), config);
    h = layer_norm(weights, kModel + "decoder.layernorm_embedding", h);
    h = dropout_with(h, config.dropout, ctx);
    for (int64_t i = 0; i < frozen; ++i) h = decoder_layer(weights, config, i, h, encoder_hidden, ctx);
  }
  for (int64_t i = frozen; i < config.decoder_layers; ++i)
    h = decoder_layer(weights, config, i, h, encoder_hidden, ctx);
  return lm_head(weights, h, ctx);
}

at::Tensor bart_generate_greedy(const TensorMap& weights, const BartConfig& config,
                                const at::Tensor& encoder_hidden, const ForwardContext& ctx,
                                int64_t max_new_tokens) {
  at::NoGradGuard no_grad;
  const ForwardContext eval = generation_context(config, encoder_hidden, ctx);
  const int64_t batch = encoder_hidden.size(0);
  DecoderCache cache = start_cache(weights, config, encoder_hidden, eval);
  // On the encoder states' device: the loop concatenates and compares with decode_step's output.
  at::Tensor ids = at::full({batch, 1}, config.decoder_start_token_id, encoder_hidden.options().dtype(at::kLong));
  at::Tensor finished = at::zeros({batch}, encoder_hidden.options().dtype(at::kBool));
  const int64_t steps = std::max<int64_t>(max_new_tokens, 0);
  for (int64_t step = 0; step < steps; ++step) {
    at::Tensor next = decode_step(weights, config, ids.slice(1, ids.size(1) - 1), cache, eval).argmax(-1);
    next = at::where(finished, at::full_like(next, config.pad_token_id), next);
    ids = at::cat({ids, next.unsqueeze(1)}, 1);
    finished = finished.logical_or(next.eq(config.eos_token_id));
    if (finished.all().item<bool>()) break;
  }
  return ids.slice(1, 1);
}

namespace {

/// Tokens that would complete an n-gram already present in `ids` (the no_repeat_ngram rule).
std::vector<int64_t> banned_by_ngram(const std::vector<int64_t>& ids, int64_t n) {
  std::vector<int64_t> banned;
  const auto len = static_cast<int64_t>(ids.size());
  if (n <= 0 || len + 1 < n) return banned;
  for (int64_t start = 0; start + n <= len; ++start) {
    bool same = true;
    for (int64_t j = 0; j < n - 1 && same; ++j) same = ids[start + j] == ids[len - (n - 1) + j];
    if (same) banned.push_back(ids[start + n - 1]);
  }
  return banned;
}

struct Hypothesis {
  std::vector<int64_t> ids; ///< with the start token
  double score = 0;         ///< summed log-probability (normalised once finished)
};

} // namespace

at::Tensor bart_generate(const TensorMap& weights, const BartConfig& config, const at::Tensor& encoder_hidden,
                         const ForwardContext& ctx, const GenerationSettings& settings) {
  if (settings.num_beams <= 1 && settings.no_repeat_ngram_size <= 0)
    return bart_generate_greedy(weights, config, encoder_hidden, ctx, settings.max_new_tokens);
  at::NoGradGuard no_grad;
  const ForwardContext eval = generation_context(config, encoder_hidden, ctx);
  const int64_t beams = std::max<int64_t>(1, settings.num_beams);
  const int64_t batch = encoder_hidden.size(0);
  auto normalised = [&](const Hypothesis& h) {
    return h.score / std::pow(static_cast<double>(h.ids.size()), settings.length_penalty);
  };

  std::vector<std::vector<int64_t>> best(static_cast<std::size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    // Cache rows follow `alive`: row a holds hypothesis a's keys and values.
    DecoderCache cache = start_cache(weights, config, encoder_hidden.slice(0, b, b + 1), eval);
    std::vector<Hypothesis> alive = {{{config.decoder_start_token_id}, 0.0}};
    std::vector<Hypothesis> done;
    for (int64_t step = 0; step < settings.max_new_tokens && !alive.empty(); ++step) {
      const auto n_alive = static_cast<int64_t>(alive.size());
      std::vector<int64_t> last_ids;
      for (int64_t a = 0; a < n_alive; ++a) last_ids.push_back(alive[a].ids.back());
      const at::Tensor last = at::tensor(last_ids, at::kLong).view({n_alive, 1}).to(encoder_hidden.device());
      const at::Tensor logits = decode_step(weights, config, last, cache, eval);
      at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1).contiguous();
      for (int64_t a = 0; a < n_alive; ++a)
        for (int64_t tok : banned_by_ngram(alive[a].ids, settings.no_repeat_ngram_size))
          logp[a][tok] = -std::numeric_limits<float>::infinity();
      const int64_t per_beam = std::min<int64_t>(2 * beams, logp.size(1));
      const auto top = logp.topk(per_beam, -1);
      const at::Tensor values = std::get<0>(top).to(at::kCPU).contiguous(); // read one by one below
      const at::Tensor tokens = std::get<1>(top).to(at::kCPU).contiguous();
      struct Candidate {
        double score;
        int64_t beam, token;
      };
      std::vector<Candidate> cands;
      for (int64_t a = 0; a < n_alive; ++a)
        for (int64_t j = 0; j < per_beam; ++j) {
          const double v = values[a][j].item<double>();
          if (std::isfinite(v)) cands.push_back({alive[a].score + v, a, tokens[a][j].item<int64_t>()});
        }
      std::stable_sort(cands.begin(), cands.end(), [](const auto& x, const auto& y) { return x.score > y.score; });
      std::vector<Hypothesis> next;
      std::vector<int64_t> parents;
      for (std::size_t rank = 0; rank < cands.size(); ++rank) {
        const Candidate& c = cands[rank];
        Hypothesis h{alive[c.beam].ids, c.score};
        h.ids.push_back(c.token);
        if (c.token == config.eos_token_id) {
          // As Hugging Face: an eos outside the best num_beams candidates does not finish a beam.
          if (static_cast<int64_t>(rank) < beams) done.push_back(std::move(h));
        } else {
          next.push_back(std::move(h));
          parents.push_back(c.beam);
        }
        if (static_cast<int64_t>(next.size()) == beams) break;
      }
      alive = std::move(next);
      if (!alive.empty()) cache.select_rows(at::tensor(parents, at::kLong).to(encoder_hidden.device()));
      if (static_cast<int64_t>(done.size()) >= beams && !alive.empty()) {
        // Log-probabilities only fall: a live beam's best possible final score is its current one.
        double worst_done = std::numeric_limits<double>::infinity();
        std::sort(done.begin(), done.end(), [&](const auto& x, const auto& y) { return normalised(x) > normalised(y); });
        done.resize(static_cast<std::size_t>(beams));
        worst_done = normalised(done.back());
        double best_alive = -std::numeric_limits<double>::infinity();
        for (const auto& h : alive) best_alive = std::max(best_alive, normalised(h));
        if (best_alive <= worst_done) break;
      }
    }
    for (auto& h : alive) done.push_back(std::move(h));
    const auto winner = std::max_element(done.begin(), done.end(),
                                         [&](const auto& x, const auto& y) { return normalised(x) < normalised(y); });
    if (winner != done.end()) best[static_cast<std::size_t>(b)].assign(winner->ids.begin() + 1, winner->ids.end());
  }
  std::size_t width = 1;
  for (const auto& ids : best) width = std::max(width, ids.size());
  at::Tensor out = at::full({batch, static_cast<int64_t>(width)}, config.pad_token_id, at::kLong);
  for (int64_t b = 0; b < batch; ++b)
    for (std::size_t j = 0; j < best[static_cast<std::size_t>(b)].size(); ++j)
      out[b][static_cast<int64_t>(j)] = best[static_cast<std::size_t>(b)][j];
  return out;
}

at::Tensor bart_shift_right(const at::Tensor& labels, const BartConfig& config) {
  if (labels.dim() != 2)
    throw std::invalid_argument("bart_shift_right: expected labels (B, T), got " +
                                tensor_shape_string(labels.sizes()));
  at::Tensor out = at::empty(labels.sizes(), labels.options().dtype(at::kLong));
  if (labels.size(1) == 0) return out;
  out.select(1, 0).fill_(config.decoder_start_token_id);
  out.slice(1, 1).copy_(labels.slice(1, 0, labels.size(1) - 1).to(at::kLong));
  return out.masked_fill_(out.eq(-100), config.pad_token_id);
}

std::map<std::string, std::vector<int64_t>> bart_parameter_shapes(const BartConfig& c) {
  validate(c);
  std::map<std::string, std::vector<int64_t>> shapes;
  const int64_t d = c.d_model;
  auto linear_shapes = [&](const std::string& module, int64_t out, int64_t in) {
    shapes[module + ".weight"] = {out, in};
    shapes[module + ".bias"] = {out};
  };
  auto norm_shapes = [&](const std::string& module) {
    shapes[module + ".weight"] = {d};
    shapes[module + ".bias"] = {d};
  };
  shapes[kShared] = {c.vocab_size, d};
  shapes[kFinalLogitsBias] = {1, c.vocab_size};
  for (const std::string side : {"encoder", "decoder"}) {
    shapes[kModel + side + ".embed_positions.weight"] = {c.max_position_embeddings + kPositionOffset, d};
    norm_shapes(kModel + side + ".layernorm_embedding");
  }
  for (const auto& [module, shape] : bart_linear_layers(c))
    if (module != kLmHead) linear_shapes(module, shape.first, shape.second);
  for (int64_t i = 0; i < c.encoder_layers; ++i) {
    const std::string layer = kModel + "encoder.layers." + std::to_string(i) + ".";
    norm_shapes(layer + "self_attn_layer_norm");
    norm_shapes(layer + "final_layer_norm");
  }
  for (int64_t i = 0; i < c.decoder_layers; ++i) {
    const std::string layer = kModel + "decoder.layers." + std::to_string(i) + ".";
    norm_shapes(layer + "self_attn_layer_norm");
    norm_shapes(layer + "encoder_attn_layer_norm");
    norm_shapes(layer + "final_layer_norm");
  }
  return shapes;
}

std::map<std::string, std::pair<int64_t, int64_t>> bart_linear_layers(const BartConfig& c) {
  std::map<std::string, std::pair<int64_t, int64_t>> layers;
  const int64_t d = c.d_model;
  auto attn = [&](const std::string& module) {
    for (const char* p : {".q_proj", ".k_proj", ".v_proj", ".out_proj"}) layers[module + p] = {d, d};
  };
  for (int64_t i = 0; i < c.encoder_layers; ++i) {
    const std::string layer = kModel + "encoder.layers." + std::to_string(i) + ".";
    attn(layer + "self_attn");
    layers[layer + "fc1"] = {c.encoder_ffn_dim, d};
    layers[layer + "fc2"] = {d, c.encoder_ffn_dim};
  }
  for (int64_t i = 0; i < c.decoder_layers; ++i) {
    const std::string layer = kModel + "decoder.layers." + std::to_string(i) + ".";
    attn(layer + "self_attn");
    attn(layer + "encoder_attn");
    layers[layer + "fc1"] = {c.decoder_ffn_dim, d};
    layers[layer + "fc2"] = {d, c.decoder_ffn_dim};
  }
  layers[kLmHead] = {c.vocab_size, d};
  return layers;
}

} // namespace fedvlm
