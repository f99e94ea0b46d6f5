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

at::Tensor dropout_with(const at::Tensor& x, double p, const ForwardContext& ctx) {
  if (!ctx.dropout_active || p <= 0.0) return x;
  if (!ctx.generator) return at::dropout(x, p, /*train=*/true);
  at::Tensor keep = at::empty_like(x).bernoulli_(1.0 - p, *ctx.generator);
  return x * keep / (1.0 - p);
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

} // namespace

const at::Tensor& base_or_override(const at::Tensor& base, const std::string& name, const ForwardContext& ctx) {
  if (ctx.adapters == nullptr) return base;
  auto it = ctx.adapters->find(name);
  return it == ctx.adapters->end() ? base : it->second;
}

at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& base_weight, const at::Tensor& base_bias,
                       const std::string& layer, const ForwardContext& ctx) {
  const at::Tensor& weight = base_or_override(base_weight, layer + ".weight", ctx);
  const at::Tensor& bias = base_or_override(base_bias, layer + ".bias", ctx);
  const at::Tensor w2 = weight.dim() == 4 ? weight.flatten(1) : weight;
  at::Tensor y = at::linear(x, w2, bias);
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
  const AdapterPair ad = find_adapter(layer, ctx);
  at::Tensor y = at::conv2d(x, weight, bias);
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
