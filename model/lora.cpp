// model/lora.cpp — functional LoRA layers and adapter initialisation.
#include "model/lora.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <set>
#include <stdexcept>

namespace fedvlm {

namespace {

/// Kaiming-uniform with a = sqrt(5), as nn.Linear and PEFT do: bound = 1/sqrt(fan_in).
at::Tensor kaiming_uniform(int64_t rows, int64_t fan_in, at::Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  at::Tensor a = at::empty({rows, fan_in}, at::kFloat);
  a.uniform_(-bound, bound, gen);
  return a;
}

} // namespace

TensorMap lora_init(const std::map<std::string, AdaptableLayer>& targets,
                    const LoraSettings& settings, uint64_t seed) {
  if (settings.rank < 1) throw std::invalid_argument("lora.rank must be >= 1");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  TensorMap out;
  for (const auto& [layer, shape] : targets) {
    if (settings.rank > std::min(shape.in_features, shape.out_features))
      throw std::invalid_argument("lora.rank " + std::to_string(settings.rank) +
                                  " exceeds the dimensions of layer '" + layer + "' (" +
                                  std::to_string(shape.out_features) + " x " +
                                  std::to_string(shape.in_features) + ")");
    out.emplace(layer + kLoraA, kaiming_uniform(settings.rank, shape.in_features, gen));
    out.emplace(layer + kLoraB, at::zeros({shape.out_features, settings.rank}, at::kFloat));
  }
  return out;
}

void lora_restart(TensorMap& adapters, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& [name, t] : adapters) { // name order: the same draws on every platform
    if (name.size() > kLoraA.size() && name.compare(name.size() - kLoraA.size(), kLoraA.size(), kLoraA) == 0)
      t = kaiming_uniform(t.size(0), t.size(1), gen);
    else if (name.size() > kLoraB.size() && name.compare(name.size() - kLoraB.size(), kLoraB.size(), kLoraB) == 0)
      t = at::zeros_like(t);
  }
}

at::Tensor cpu_drawn_mask(at::IntArrayRef sizes, double keep, at::Generator gen, const at::Tensor& like) {
  at::Tensor mask = at::empty(sizes, like.options().device(at::kCPU)).bernoulli_(keep, gen);
  return like.device().is_cpu() ? mask : mask.to(like.device(), /*non_blocking=*/true);
}

int64_t ClientRows::total_rows() const {
  int64_t n = 0;
  for (int64_t r : rows) n += r;
  return n;
}

ForwardContext client_context(const ForwardContext& ctx, std::size_t k) {
  ForwardContext one = ctx;
  one.clients = nullptr;
  one.adapters = ctx.clients->adapters.at(k);
  one.generator = ctx.clients->generators.at(k);
  return one;
}

std::vector<at::Tensor> split_client_rows(const at::Tensor& x, const ClientRows& clients) {
  const int64_t total = clients.total_rows();
  if (total <= 0 || x.dim() == 0 || x.size(0) % total != 0)
    throw std::invalid_argument("a pass over several clients' rows got a tensor of " + std::to_string(x.dim() ? x.size(0) : 0) +
                                " rows, not a multiple of the clients' " + std::to_string(total));
  const int64_t m = x.size(0) / total;
  std::vector<int64_t> sizes;
  for (int64_t r : clients.rows) sizes.push_back(r * m);
  return x.split_with_sizes(sizes, 0);
}

at::Tensor concat_rows(const std::vector<at::Tensor>& parts) { return at::cat(parts, 0); }

at::Tensor dropout_with(const at::Tensor& x, double p, const ForwardContext& ctx) {
  if (!ctx.dropout_active || p <= 0.0) return x;
  if (ctx.clients) // each client's mask from its own generator, as when it runs alone
    return for_each_client_rows(x, ctx, [p](const at::Tensor& xk, const ForwardContext& ck) { return dropout_with(xk, p, ck); });
  if (!ctx.generator) return at::dropout(x, p, /*train=*/true);
  return x * cpu_drawn_mask(x.sizes(), 1.0 - p, *ctx.generator, x) / (1.0 - p);
}

namespace {

struct AdapterPair {
  const at::Tensor* a = nullptr;
  const at::Tensor* b = nullptr;
  const at::Tensor* delta = nullptr;
  /// alpha / r, with r this adapter's own rank.
  [[nodiscard]] double scale(const LoraSettings& s) const { return s.alpha / static_cast<double>(a->size(0)); }
};

AdapterPair find_adapter(const std::string& layer, const ForwardContext& ctx) {
  if (ctx.adapters == nullptr) return {};
  AdapterPair p;
  auto ia = ctx.adapters->find(layer + kLoraA);
  auto ib = ctx.adapters->find(layer + kLoraB);
  if (ia != ctx.adapters->end() && ib != ctx.adapters->end()) {
    p.a = &ia->second;
    p.b = &ib->second;
  }
  if (auto id = ctx.adapters->find(layer + kLoraDelta); id != ctx.adapters->end()) p.delta = &id->second;
  return p;
}

/// One client's adapter term on its rows x (..., in): its correction Δ and its LoRA path.
at::Tensor adapter_term(const at::Tensor& x, const at::Tensor& w2, const std::string& layer, const ForwardContext& ctx) {
  const AdapterPair ad = find_adapter(layer, ctx);
  at::Tensor t;
  if (ad.delta != nullptr) t = at::linear(x, ad.delta->reshape(w2.sizes()).to(x.scalar_type()));
  if (ad.a != nullptr) {
    const at::Tensor h = at::linear(dropout_with(x, ctx.lora.dropout, ctx), ad.a->to(x.scalar_type()));
    const at::Tensor l = at::linear(h, ad.b->to(x.scalar_type())) * ad.scale(ctx.lora);
    t = t.defined() ? t + l : l;
  }
  if (!t.defined()) { // this client adapts another set of layers
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = w2.size(0);
    t = at::zeros(shape, x.options());
  }
  return t;
}

/// Every client's adapter term on its own rows. With equal rows and equal-rank LoRA pairs
/// and no corrections, one batched matmul per factor (the grouped matmul multi-LoRA systems
/// use); otherwise client by client.
at::Tensor clients_adapter_term(const at::Tensor& x, const at::Tensor& w2, const std::string& layer,
                                const ForwardContext& ctx) {
  const ClientRows& cr = *ctx.clients;
  const std::size_t k = cr.adapters.size();
  std::vector<at::Tensor> as, bs;
  bool uniform = k > 1;
  for (std::size_t i = 0; i < k && uniform; ++i) {
    const AdapterPair ad = find_adapter(layer, client_context(ctx, i));
    uniform = ad.a != nullptr && ad.delta == nullptr && cr.rows[i] == cr.rows[0] &&
              (as.empty() || ad.a->sizes() == as.front().sizes());
    if (uniform) {
      as.push_back(*ad.a);
      bs.push_back(*ad.b);
    }
  }
  if (!uniform)
    return for_each_client_rows(x, ctx, [&](const at::Tensor& xk, const ForwardContext& ck) { return adapter_term(xk, w2, layer, ck); });
  const at::Tensor xd = dropout_with(x, ctx.lora.dropout, ctx); // per client, from its generator
  const int64_t in = x.size(-1);
  const at::Tensor xs = xd.reshape({static_cast<int64_t>(k), -1, in});                   // (K, R, in)
  const at::Tensor a = at::stack(as).to(x.scalar_type());                                // (K, r, in)
  const at::Tensor b = at::stack(bs).to(x.scalar_type());                                // (K, out, r)
  const at::Tensor h = at::bmm(xs, a.transpose(1, 2));                                   // (K, R, r)
  const double scale = ctx.lora.alpha / static_cast<double>(as.front().size(0));
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = w2.size(0);
  return (at::bmm(h, b.transpose(1, 2)) * scale).reshape(shape);
}

} // namespace

const at::Tensor& base_or_override(const at::Tensor& base, const std::string& name, const ForwardContext& ctx) {
  if (ctx.adapters == nullptr) return base; // several clients' rows carry adapters only (ClientRows)
  auto it = ctx.adapters->find(name);
  return it == ctx.adapters->end() ? base : it->second;
}

at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& base_weight, const at::Tensor& base_bias,
                       const std::string& layer, const ForwardContext& ctx) {
  const at::Tensor& weight = base_or_override(base_weight, layer + ".weight", ctx);
  const at::Tensor& bias = base_or_override(base_bias, layer + ".bias", ctx);
  const at::Tensor w2 = weight.dim() == 4 ? weight.flatten(1) : weight;
  at::Tensor y = at::linear(x, w2, bias);
  if (ctx.clients) return y + clients_adapter_term(x, w2, layer, ctx);
  const AdapterPair ad = find_adapter(layer, ctx);
  // Adapters stay float32 while a model may run in bf16: cast at use (gradients still reach them).
  if (ad.delta != nullptr) y = y + at::linear(x, ad.delta->reshape(w2.sizes()).to(x.scalar_type()));
  if (ad.a == nullptr) return y;
  const at::Tensor h = at::linear(dropout_with(x, ctx.lora.dropout, ctx), ad.a->to(x.scalar_type()));
  return y + at::linear(h, ad.b->to(x.scalar_type())) * ad.scale(ctx.lora);
}

at::Tensor lora_conv1x1(const at::Tensor& x, const at::Tensor& base_weight, const at::Tensor& base_bias,
                        const std::string& layer, const ForwardContext& ctx) {
  const at::Tensor& weight = base_or_override(base_weight, layer + ".weight", ctx);
  const at::Tensor& bias = base_or_override(base_bias, layer + ".bias", ctx);
  at::Tensor y = at::conv2d(x, weight, bias);
  if (ctx.clients) { // channels last, the adapter term as for a Linear, channels back
    const at::Tensor xc = x.permute({0, 2, 3, 1});
    return y + clients_adapter_term(xc, weight.flatten(1), layer, ctx).permute({0, 3, 1, 2});
  }
  const AdapterPair ad = find_adapter(layer, ctx);
  if (ad.delta != nullptr) y = y + at::conv2d(x, ad.delta->reshape(weight.sizes()).to(x.scalar_type()));
  if (ad.a == nullptr) return y;
  // A 1×1 convolution is a Linear over channels: move C last, apply, move back.
  const at::Tensor xc = dropout_with(x, ctx.lora.dropout, ctx).permute({0, 2, 3, 1});
  const at::Tensor delta =
      at::linear(at::linear(xc, ad.a->to(x.scalar_type())), ad.b->to(x.scalar_type())) * ad.scale(ctx.lora);
  return y + delta.permute({0, 3, 1, 2});
}

at::Tensor lora_merge(const at::Tensor& weight, const at::Tensor& lora_a,
                      const at::Tensor& lora_b, double scale) {
  const at::Tensor delta = at::matmul(lora_b, lora_a) * scale;
  return weight + delta.reshape(weight.sizes());
}

std::vector<std::string> lora_layers(const TensorMap& adapters) {
  std::set<std::string> layers;
  for (const auto& [name, t] : adapters) {
    for (const std::string* suf : {&kLoraA, &kLoraB})
      if (name.size() > suf->size() &&
          name.compare(name.size() - suf->size(), suf->size(), *suf) == 0)
        layers.insert(name.substr(0, name.size() - suf->size()));
  }
  return {layers.begin(), layers.end()};
}

} // namespace fedvlm
