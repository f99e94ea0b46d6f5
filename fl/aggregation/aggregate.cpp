// fl/aggregation/aggregate.cpp — FedAvg in a fixed order and in double precision.
#include "fl/aggregation/aggregate.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace fedvlm {

double fedavg_weight(int64_t samples, int64_t total_samples, std::size_t clients, Weighting weighting) {
  if (weighting == Weighting::uniform) return clients ? 1.0 / static_cast<double>(clients) : 0.0;
  return total_samples > 0 ? static_cast<double>(samples) / static_cast<double>(total_samples) : 0.0;
}

TensorMap aggregate(std::vector<ClientContribution> contributions, Weighting weighting) {
  if (contributions.empty()) throw std::invalid_argument("aggregate: no client contributions");
  std::sort(contributions.begin(), contributions.end(),
            [](const auto& a, const auto& b) { return a.client < b.client; });
  const auto twice = std::adjacent_find(contributions.begin(), contributions.end(),
                                        [](const auto& a, const auto& b) { return a.client == b.client; });
  if (twice != contributions.end())
    throw std::invalid_argument("aggregate: client " + std::to_string(twice->client) +
                                " contributed twice; one update per client and round");
  int64_t total = 0;
  for (const auto& c : contributions) {
    if (c.tensors == nullptr) throw std::invalid_argument("aggregate: client " + std::to_string(c.client) + " sent no tensors");
    if (c.samples < 0) throw std::invalid_argument("aggregate: client " + std::to_string(c.client) + " has a negative sample count");
    total += c.samples;
  }
  if (weighting == Weighting::samples && total == 0)
    throw std::invalid_argument("aggregate: sample weighting with zero samples in total");

  const TensorMap& first = *contributions.front().tensors;
  TensorMap sums;
  for (const auto& [name, t] : first) sums.emplace(name, at::zeros(t.sizes(), t.options().dtype(at::kDouble)));

  for (const auto& c : contributions) {
    if (c.tensors->size() != first.size())
      throw std::invalid_argument("aggregate: client " + std::to_string(c.client) + " sent " +
                                  std::to_string(c.tensors->size()) + " tensors, client " +
                                  std::to_string(contributions.front().client) + " sent " +
                                  std::to_string(first.size()));
    const double w = fedavg_weight(c.samples, total, contributions.size(), weighting);
    for (auto& [name, acc] : sums) {
      auto it = c.tensors->find(name);
      if (it == c.tensors->end())
        throw std::invalid_argument("aggregate: client " + std::to_string(c.client) + " did not send '" + name + "'");
      if (!it->second.sizes().equals(acc.sizes()))
        throw std::invalid_argument("aggregate: client " + std::to_string(c.client) + " sent '" + name +
                                    "' with a different shape");
      acc.add_(it->second.to(at::kDouble), w);
    }
  }
  TensorMap out;
  for (auto& [name, acc] : sums) out.emplace(name, acc.to(first.at(name).scalar_type()));
  return out;
}

} // namespace fedvlm
