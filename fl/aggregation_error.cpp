// fl/aggregation_error.cpp — the aggregation error and client drift of one round.
#include "fl/aggregation_error.hpp"

#include "fl/lora_aggregation.hpp"
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

} // namespace

AggregationMeasure measure_aggregation(const StrategySpec& spec, const std::vector<TrainedClient>& clients,
                                       const TensorMap& global) {
  AggregationMeasure out;
  if ((!spec.share_a && !spec.share_b) || clients.empty() || global.empty()) return out;

  std::vector<ClientAdapters> maps;
  for (const auto& c : clients) maps.push_back({c.client, c.weight, c.adapters});
  const auto by_module = lora_factors_by_module(maps);
  // A factor that stays with the client and keeps training makes the outcome personal; a
  // frozen common A (FFA-LoRA) does not.
  const bool personalised = (spec.share_a != spec.share_b) && (spec.share_a ? spec.train_b : spec.train_a);
  std::map<int, std::pair<double, int>> drift_sum;
  for (const auto& [module, factors] : by_module) {
    const std::string a_name = module + std::string(kLoraA), b_name = module + std::string(kLoraB);
    if (!personalised) {
      const LoraFactors& f = factors.front(); // every client's product is the same
      const at::Tensor P = product64(shared_or_own(spec.share_b, global, b_name, f.B), shared_or_own(spec.share_a, global, a_name, f.A));
      out.error_by_layer[module] = aggregation_error(factors, P);
      continue;
    }
    for (const LoraFactors& f : factors) {
      const at::Tensor mine = product64(f.B, f.A);
      const at::Tensor after = product64(shared_or_own(spec.share_b, global, b_name, f.B), shared_or_own(spec.share_a, global, a_name, f.A));
      auto& [sum, n] = drift_sum[f.client];
      sum += client_drift(after, mine);
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
