// fl/aggregation_error.hpp — what a round's aggregation loses, for every strategy: error of the shared product, or each client's drift.
//
// Averaging factors is inexact (mean(B_k)·mean(A_k) ≠ mean(B_k·A_k)); strategies differ in what
// the clients end up with. After aggregation client k holds B'_k·A'_k with B'_k = B̄ where B is
// shared (else its own B_k) and likewise for A. Two cases:
//  - every client holds the same product P (FLoRA/FedIT; FFA-LoRA, whose A is frozen and common):
//    the aggregation error ‖Σ p_k B_k A_k − P‖_F / ‖Σ p_k B_k A_k‖_F per adapted layer;
//  - personalised strategies (pLoRA: A private; FedSA-LoRA: B private): each client's drift
//    ‖B'_k A'_k − B_k A_k‖_F / ‖B_k A_k‖_F, what its own update loses to the average.
// Weights p_k are the aggregation's. Nothing is measured where nothing is shared.
#pragma once

#include "fl/strategy.hpp"
#include "model/tensor_map.hpp"

#include <limits>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

/// One participant of a round: its adapters after local training (as sent, for the shared
/// parts) and its normalised aggregation weight.
struct TrainedClient {
  int client = 0;
  double weight = 0;
  const TensorMap* adapters = nullptr;
};

struct AggregationMeasure {
  std::map<std::string, double> error_by_layer; ///< shared-product strategies: per adapted module
  double error = std::numeric_limits<double>::quiet_NaN(); ///< mean of error_by_layer (NaN: not measured)
  std::map<int, double> drift_by_client;         ///< personalised strategies: mean over layers
  bool measured = false;
};

/// Measures the round: `global` holds the aggregated shared tensors (as clients receive them).
/// Throws std::invalid_argument (from fl/lora_aggregation) on inconsistent adapters.
[[nodiscard]] AggregationMeasure measure_aggregation(const StrategySpec& spec, const std::vector<TrainedClient>& clients,
                                                     const TensorMap& global);

} // namespace fedvlm
