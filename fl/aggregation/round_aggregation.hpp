// fl/aggregation/round_aggregation.hpp — what the server makes of a round's updates, and what a client makes of its download.
//
// One function per side, for every aggregation rule of the strategy table (fl/config/strategy.hpp), so
// the actors only carry messages: aggregate_round() on the server, apply_download() on a client.
// What travels down, by rule (<m> is an adapted module):
//  - average:  the FedAvg of each shared tensor ("<m>.lora_A" / "<m>.lora_B"); the same for all.
//  - fedex:    Ā, B̄ and "<m>.lora_residual" = scale·(Σp_k B_k A_k − B̄Ā) (dense, out × in), which
//              the client adds to its "<m>.lora_delta": after the round every client's product is
//              exactly the weighted mean of the products.
//  - stack:    "<m>.lora_stack_A" ((Σr_k) × in) and "<m>.lora_stack_B" (out × Σr_k) with each
//              client's scale and weight folded in, so B_s·A_s = Σp_k (α/r_k) B_k A_k; the client
//              adds B_s·A_s to its lora_delta and starts fresh adapters (spec.fresh_adapters).
//  - flexlora: to each client its own "<m>.lora_A" / "<m>.lora_B" at its rank: the best rank-r_k
//              approximation of Σp_k (α/r_k) B_k A_k, divided by its own scale α/r_k.
//  - hetlora:  to each client the first r_k rows of A and columns of B of the zero-padded average
//              (scales folded in before averaging, divided out after).
// Every client receives its download, also clients that were not selected or failed, so all
// hold the same lora_delta. The server's `global` is what a checkpoint and
// adapters/global.safetensors keep: the averages, and "<m>.lora_delta" for the global model's
// dense correction (fedex, stack: accumulated over rounds; flexlora: this round's Σp_k ΔW_k).
#pragma once

#include "fl/aggregation/aggregate.hpp"
#include "fl/config/strategy.hpp"
#include "model/tensor_map.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

inline const std::string kLoraResidual = ".lora_residual";
inline const std::string kLoraStackA = ".lora_stack_A";
inline const std::string kLoraStackB = ".lora_stack_B";

struct RoundRule {
  StrategySpec spec;               ///< the strategy as it is in this round (spec_in_round)
  Weighting weighting = Weighting::samples;
  double lora_alpha = 8.0;
  std::vector<int> client_ranks;   ///< index = client id: every client that receives a download
  double noise_stddev = 0;         ///< central DP noise on the average (average rule only)
  uint64_t noise_seed = 0;
};

struct RoundAggregate {
  TensorMap global;                  ///< the server's state after the round
  TensorMap broadcast;               ///< sent to every client
  std::map<int, TensorMap> personal; ///< sent to one client each, besides the broadcast
  /// What `client` receives: broadcast plus its personal tensors.
  [[nodiscard]] TensorMap download_for(int client) const;
  /// Bytes of download_for(client).
  [[nodiscard]] int64_t bytes_for(int client) const;
};

/// The round's aggregation under spec.rule. `updates` are the shared tensors the clients sent
/// (summed in ascending client order, in float64, as fl/aggregation/aggregate.hpp); `previous` the server's
/// state before the round. Throws std::invalid_argument on inconsistent updates (names, shapes,
/// ranks a rule cannot combine), naming the module and client.
[[nodiscard]] RoundAggregate aggregate_round(const RoundRule& rule, const std::vector<ClientContribution>& updates,
                                             const TensorMap& previous);

/// Merges a download into a client's adapters: lora_A / lora_B are replaced (private tensors
/// stay), a residual or a stacked pair is added to lora_delta (created at zero when absent),
/// and when the strategy has fresh_adapters and the download was not empty the adapters restart
/// (lora_restart with `restart_seed`). Returns true when the caller must drop the optimizer
/// state: after a restart (its moments belong to the adapters just merged) and after a
/// FlexLoRA download (new SVD factors of the product, a basis the moments were not built in). Throws
/// std::invalid_argument for a tensor name it does not know or a stacked half without the other.
[[nodiscard]] bool apply_download(const StrategySpec& spec, TensorMap& adapters, const TensorMap& download, uint64_t restart_seed);

} // namespace fedvlm
