// fl/aggregation/round_aggregation.cpp — every aggregation rule of the strategy table, server side and client side.
#include "fl/aggregation/round_aggregation.hpp"

#include "fl/privacy/differential_privacy.hpp"
#include "fl/aggregation/lora_aggregation.hpp"
#include "model/lora.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <stdexcept>

namespace fedvlm {

namespace {

double lora_scale(double alpha, int64_t rank) { return alpha / static_cast<double>(rank); }

/// Per module, each sender's factors with its FedAvg weight (ascending client order).
std::map<std::string, std::vector<LoraFactors>> factors_of(const std::vector<ClientContribution>& updates,
                                                          Weighting weighting) {
  int64_t total = 0;
  for (const auto& u : updates) total += u.samples;
  std::vector<ClientAdapters> maps;
  for (const auto& u : updates)
    maps.push_back({u.client, fedavg_weight(u.samples, total, updates.size(), weighting), u.tensors});
  return lora_factors_by_module(maps);
}

/// The same factors with each client's scale α/r_k folded into B: products in weight units,
/// comparable across ranks.
std::vector<LoraFactors> scaled(const std::vector<LoraFactors>& factors, double alpha) {
  std::vector<LoraFactors> out = factors;
  for (auto& f : out) f.B = f.B * lora_scale(alpha, f.A.size(0));
  return out;
}

at::Tensor plus_previous(const TensorMap& previous, const std::string& name, const at::Tensor& increment) {
  auto it = previous.find(name);
  return it == previous.end() ? increment.clone() : it->second + increment;
}

RoundAggregate average_rule(const RoundRule& rule, const std::vector<ClientContribution>& updates, const TensorMap& previous) {
  RoundAggregate out;
  out.broadcast = aggregate(updates, rule.weighting);
  if (rule.noise_stddev > 0) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(rule.noise_seed);
    add_gaussian_noise(out.broadcast, rule.noise_stddev, gen);
  }
  out.global = out.broadcast;
  // An alternating strategy sends one factor per round; the global keeps the other's last
  // average too, for adapters/global.safetensors and checkpoints.
  if (rule.spec.alternating)
    for (const auto& [name, t] : previous) out.global.emplace(name, t);
  return out;
}

/// Recipients of a per-client rule: every client at its rank, capped at what the round can give.
std::vector<LoraRecipient> recipients(const RoundRule& rule, int64_t cap) {
  std::vector<LoraRecipient> out;
  for (std::size_t id = 0; id < rule.client_ranks.size(); ++id)
    out.push_back({static_cast<int>(id), static_cast<int>(std::min<int64_t>(rule.client_ranks[id], cap))});
  return out;
}

int64_t max_rank(const std::vector<LoraFactors>& factors) {
  int64_t r = 0;
  for (const auto& f : factors) r = std::max(r, f.A.size(0));
  return r;
}

/// Each recipient's factors, B divided by the scale of the client's own adapter (α / its rank,
/// also when the round could give it fewer rows: they fill its leading block).
void add_personal(RoundAggregate& out, const std::string& module, const std::vector<ClientLora>& results, const RoundRule& rule) {
  for (const ClientLora& c : results) {
    TensorMap& mine = out.personal[c.client];
    mine[module + kLoraA] = c.A;
    mine[module + kLoraB] = (c.B / lora_scale(rule.lora_alpha, rule.client_ranks.at(static_cast<std::size_t>(c.client)))).contiguous();
  }
}

} // namespace

TensorMap RoundAggregate::download_for(int client) const {
  TensorMap out = broadcast;
  if (auto it = personal.find(client); it != personal.end())
    for (const auto& [name, t] : it->second) out[name] = t;
  return out;
}

int64_t RoundAggregate::bytes_for(int client) const {
  return static_cast<int64_t>(tensor_map_bytes(download_for(client)));
}

RoundAggregate aggregate_round(const RoundRule& rule, const std::vector<ClientContribution>& updates, const TensorMap& previous) {
  const StrategySpec& spec = rule.spec;
  if (!shares_anything(spec)) return {previous, {}, {}};
  if (rule.spec.rule == AggregationRule::average) return average_rule(rule, updates, previous);

  RoundAggregate out;
  for (const auto& [module, factors] : factors_of(updates, rule.weighting)) {
    try {
      switch (spec.rule) {
      case AggregationRule::average: break; // handled above
      case AggregationRule::fedex: {
        const FedExResult r = aggregate_fedex(factors);
        const at::Tensor residual = (r.residual * lora_scale(rule.lora_alpha, r.A.size(0))).contiguous();
        out.broadcast[module + kLoraA] = out.global[module + kLoraA] = r.A;
        out.broadcast[module + kLoraB] = out.global[module + kLoraB] = r.B;
        out.broadcast[module + kLoraResidual] = residual;
        out.global[module + kLoraDelta] = plus_previous(previous, module + kLoraDelta, residual);
        break;
      }
      case AggregationRule::stack: {
        const LoraPair s = aggregate_stack(scaled(factors, rule.lora_alpha));
        out.broadcast[module + kLoraStackA] = s.A;
        out.broadcast[module + kLoraStackB] = s.B;
        const at::Tensor product = at::matmul(s.B.to(at::kDouble), s.A.to(at::kDouble)).to(s.B.scalar_type());
        out.global[module + kLoraDelta] = plus_previous(previous, module + kLoraDelta, product);
        break;
      }
      case AggregationRule::flexlora: {
        const std::vector<LoraFactors> sf = scaled(factors, rule.lora_alpha);
        int64_t sum_rank = 0;
        for (const auto& f : factors) sum_rank += f.A.size(0);
        const int64_t out_f = factors.front().B.size(0), in_f = factors.front().A.size(1);
        add_personal(out, module, aggregate_flexlora_for(sf, recipients(rule, std::min({out_f, in_f, sum_rank}))), rule);
        out.global[module + kLoraDelta] = lora_mean_product(sf).to(factors.front().B.scalar_type());
        break;
      }
      case AggregationRule::hetlora: {
        const std::vector<LoraFactors> sf = scaled(factors, rule.lora_alpha);
        const int64_t r_max = max_rank(factors);
        add_personal(out, module, aggregate_hetlora_for(sf, recipients(rule, r_max)), rule);
        const ClientLora padded = aggregate_hetlora_for(sf, {{-1, static_cast<int>(r_max)}}).front();
        out.global[module + kLoraA] = padded.A;
        out.global[module + kLoraB] = (padded.B / lora_scale(rule.lora_alpha, r_max)).contiguous();
        break;
      }
      }
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("module '" + module + "': " + e.what());
    }
  }
  return out;
}

bool apply_download(const StrategySpec& spec, TensorMap& adapters, const TensorMap& download, uint64_t restart_seed) {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> stacked;
  auto add_to_delta = [&adapters](const std::string& module, const at::Tensor& increment) {
    at::Tensor& delta = adapters[module + kLoraDelta];
    delta = delta.defined() ? delta + increment : increment.clone();
  };
  for (const auto& [name, t] : download) {
    if (tensor_kind(name) == TensorKind::base || tensor_kind(name) == TensorKind::head) {
      adapters[name] = t; // full fine-tuning's averaged base tensor, or the linear probe's
    } else if (ends_with(name, kLoraA) || ends_with(name, kLoraB)) {
      at::Tensor& own = adapters[name];
      const bool is_a = ends_with(name, kLoraA);
      const int dim = is_a ? 0 : 1; // the rank's dimension
      if (!own.defined() || own.dim() != 2 || t.size(dim) >= own.size(dim)) {
        own = t; // the usual case: the same shape
        continue;
      }
      // A download of lower rank than the client's (a per-client rule capped by what the round
      // could give): it replaces the leading block; the rest of B is zeroed, so the product is
      // exactly the download's, and the rest of A kept, so those directions can still learn.
      at::Tensor mine = own.clone();
      mine.narrow(dim, 0, t.size(dim)).copy_(t);
      if (!is_a) mine.narrow(1, t.size(1), mine.size(1) - t.size(1)).zero_();
      own = mine;
    } else if (ends_with(name, kLoraResidual)) {
      add_to_delta(name.substr(0, name.size() - kLoraResidual.size()), t);
    } else if (ends_with(name, kLoraStackA)) {
      stacked[name.substr(0, name.size() - kLoraStackA.size())].first = t;
    } else if (ends_with(name, kLoraStackB)) {
      stacked[name.substr(0, name.size() - kLoraStackB.size())].second = t;
    } else if (ends_with(name, kLoraDelta)) {
      adapters[name] = t;
    } else {
      throw std::invalid_argument("apply_download: unexpected tensor '" + name +
                                  "' (expected .lora_A, .lora_B, .lora_delta, .lora_residual or .lora_stack_A/B)");
    }
  }
  for (const auto& [module, pair] : stacked) {
    if (!pair.first.defined() || !pair.second.defined())
      throw std::invalid_argument("apply_download: module '" + module + "' has one half of a stacked adapter; expected both " +
                                  kLoraStackA + " and " + kLoraStackB);
    add_to_delta(module, at::matmul(pair.second.to(at::kDouble), pair.first.to(at::kDouble)).to(pair.second.scalar_type()));
  }
  if (download.empty()) return false;
  // FlexLoRA's download is a new factorisation (SVD) of the product: momentum accumulated for
  // the old factors points nowhere useful for the new ones, and carried over it diverged.
  if (spec.rule == AggregationRule::flexlora) return true;
  if (!spec.fresh_adapters) return false;
  lora_restart(adapters, restart_seed);
  return true;
}

} // namespace fedvlm
