// fl/aggregation/aggregation_error.hpp — what a round's aggregation loses, for every strategy: error of the shared product, or each client's drift.
//
// Averaging factors is inexact (mean(B_k)·mean(A_k) ≠ mean(B_k·A_k)); rules differ in what the
// clients end up with. Client k's effective update of a layer after the round is
// P_k = (α/r'_k) B'_k A'_k + (its lora_delta after − before), where B'_k, A'_k are its factors once
// its download is applied (fl/aggregation/round_aggregation.hpp). Two cases:
//  - shared-product rules (FedIT, FFA-LoRA, RoLoRA, FedEx-LoRA, stacking, FlexLoRA, HetLoRA):
//    the aggregation error per adapted layer Σ_k p_k ‖W − P_k‖_F / ‖W‖_F with
//    W = Σ_k p_k (α/r_k) B_k A_k — for the rules that send everyone the same product every term
//    is the same, ‖W − P‖/‖W‖; FlexLoRA and HetLoRA give each client its own truncation;
//  - personalised strategies (pLoRA: A private; FedSA-LoRA: B private): each client's drift
//    ‖B'_k A'_k − B_k A_k‖_F / ‖B_k A_k‖_F, what its own update loses to the average.
// Weights p_k are the aggregation's. Nothing is measured where nothing is shared.
#pragma once

#include "fl/aggregation/round_aggregation.hpp"
#include "fl/config/strategy.hpp"
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

/// Personalised strategies (a factor stays with the client and keeps training: pLoRA,
/// FedSA-LoRA): what is measured is each client's drift, from its own factors and its download
/// alone, so a client can measure it where its private factor lives.
[[nodiscard]] bool personalised_outcome(const StrategySpec& spec);

/// Measures the round from each participant's adapters before aggregation and the round's
/// result (what each client downloads). Throws std::invalid_argument (from fl/aggregation/lora_aggregation)
/// on inconsistent adapters.
[[nodiscard]] AggregationMeasure measure_aggregation(const StrategySpec& spec, const std::vector<TrainedClient>& clients,
                                                     const RoundAggregate& result, double lora_alpha);

} // namespace fedvlm
