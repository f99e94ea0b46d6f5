// fl/aggregation/aggregation_error.cpp — the aggregation error and client drift of one round.
#include "fl/aggregation/aggregation_error.hpp"

#include "fl/aggregation/lora_aggregation.hpp"
#include "model/lora.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace fedvlm {

namespace {

at::Tensor product64(const at::Tensor& B, const at::Tensor& A) { return at::matmul(B.to(at::kDouble), A.to(at::kDouble)); }

const at::Tensor& shared_or_own(bool shared, const TensorMap& global, const std::string& name, const at::Tensor& own) {
  if (!shared) return own;
  auto it = global.find(name);
  if (it == global.end()) throw std::invalid_argument("measure_aggregation: global lacks '" + name + "'");
  return it->second;
}

const at::Tensor* find(const TensorMap& m, const std::string& name) {
  auto it = m.find(name);
  return it == m.end() ? nullptr : &it->second;
}

/// P_k of one layer: the client's scaled product after the round plus what its lora_delta gained.
at::Tensor effective_update(const TensorMap& before, const TensorMap& after, const std::string& module, double alpha) {
  const at::Tensor& A = after.at(module + kLoraA);
  at::Tensor p = product64(after.at(module + kLoraB), A) * (alpha / static_cast<double>(A.size(0)));
  if (const at::Tensor* d_after = find(after, module + kLoraDelta)) {
    p = p + d_after->to(at::kDouble).reshape(p.sizes());
    if (const at::Tensor* d_before = find(before, module + kLoraDelta)) p = p - d_before->to(at::kDouble).reshape(p.sizes());
  }
  return p;
}

} // namespace

bool personalised_outcome(const StrategySpec& spec) {
  // A factor that stays with the client and keeps training makes the outcome personal; a
  // frozen common A (FFA-LoRA) does not.
  return (spec.share_a != spec.share_b) && (spec.share_a ? spec.train_b : spec.train_a);
}

AggregationMeasure measure_aggregation(const StrategySpec& spec, const std::vector<TrainedClient>& clients,
                                       const RoundAggregate& result, double lora_alpha) {
  AggregationMeasure out;
  if ((!spec.share_a && !spec.share_b) || clients.empty() || (result.broadcast.empty() && result.personal.empty())) return out;

  std::vector<ClientAdapters> maps;
  for (const auto& c : clients) maps.push_back({c.client, c.weight, c.adapters});
  const auto by_module = lora_factors_by_module(maps);
  const bool personalised = personalised_outcome(spec);
  std::map<int, std::pair<double, int>> drift_sum;
  std::map<int, TensorMap> after;
  if (!personalised)
    for (const auto& c : clients) {
      TensorMap mine = *c.adapters;
      (void)apply_download(spec, mine, result.download_for(c.client), /*restart_seed=*/0);
      after.emplace(c.client, std::move(mine));
    }
  std::map<int, const TensorMap*> before;
  for (const auto& c : clients) before[c.client] = c.adapters;
  for (const auto& [module, factors] : by_module) {
    const std::string a_name = module + std::string(kLoraA), b_name = module + std::string(kLoraB);
    if (!personalised) {
      std::vector<LoraFactors> weighted = factors; // W = Σ p_k (α/r_k) B_k A_k
      for (auto& f : weighted) f.B = f.B * (lora_alpha / static_cast<double>(f.A.size(0)));
      double error = 0;
      for (const LoraFactors& f : factors)
        error += f.weight * aggregation_error(weighted, effective_update(*before.at(f.client), after.at(f.client), module, lora_alpha));
      out.error_by_layer[module] = error;
      continue;
    }
    for (const LoraFactors& f : factors) {
      const at::Tensor mine = product64(f.B, f.A);
      const at::Tensor moved = product64(shared_or_own(spec.share_b, result.broadcast, b_name, f.B),
                                         shared_or_own(spec.share_a, result.broadcast, a_name, f.A));
      auto& [sum, n] = drift_sum[f.client];
      sum += client_drift(moved, mine);
      ++n;
    }
  }
  out.measured = true;
  if (!out.error_by_layer.empty()) {
    double s = 0;
    for (const auto& [m, e] : out.error_by_layer) s += e;
    out.error = s / static_cast<double>(out.error_by_layer.size());
  }
  for (const auto& [client, sn] : drift_sum) out.drift_by_client[client] = sn.first / sn.second;
  return out;
}

} // namespace fedvlm
