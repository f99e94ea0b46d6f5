// fl/config/strategy.hpp — what each federated LoRA strategy trains, sends up and receives down.
#pragma once

#include "model/tensor_map.hpp"
#include "support/enum_names.hpp"

#include <string>
#include <vector>

namespace fedvlm {

enum class StrategyKind { plora, flora, ffa_lora, fedsa_lora, local, centralized, rolora, fedex_lora, stacking, flexlora, hetlora, full, linear_probe };

/// What a tensor in a client's adapter map is, by its name's suffix: LoRA's two factors, the
/// dense correction some rules merge into (model/lora.hpp), or a client's own copy of a base
/// tensor ("<module>.weight", "<module>.bias": full fine-tuning), or the linear probe's classifier
/// ("probe.weight", "probe.bias": head). A name holding ".lora_" that
/// ends in none of the LoRA suffixes, or without a dot, is `unknown`.
enum class TensorKind { lora_a, lora_b, lora_delta, base, head, unknown };
[[nodiscard]] TensorKind tensor_kind(const std::string& name);

/// How the server turns the clients' shared factors into what they receive (fl/aggregation/round_aggregation.hpp).
enum class AggregationRule {
  average,  ///< FedAvg of each shared tensor (FedIT, pLoRA, FFA-LoRA, ...); one download for all
  fedex,    ///< FedIT's averages plus the residual Σp_k B_k A_k − B̄Ā folded into each client's lora_delta
  stack,    ///< the clients' factors stacked (product exactly Σp_k B_k A_k), merged into lora_delta; fresh adapters
  flexlora, ///< Σp_k B_k A_k SVD-truncated to each client's rank; a download per client
  hetlora,  ///< factors zero-padded to the largest rank, averaged, truncated to each client's rank
};

/// The whole behaviour of a strategy as data: every place in the engine asks this, so a new
/// strategy is one new row in strategy.cpp.
struct StrategySpec {
  StrategyKind kind;
  const char* name;
  const char* summary;
  bool train_a;      ///< clients optimise their lora_A
  bool train_b;      ///< clients optimise their lora_B
  bool share_a;      ///< lora_A travels up, is averaged, and comes back down
  bool share_b;      ///< lora_B travels up, is averaged, and comes back down
  bool common_a_init; ///< every client starts from the same A (a seed shared by all)
  bool centralized;   ///< one trainer on the union of client data; clients only evaluate
  /// RoLoRA: rounds alternate between the factors — odd rounds train and share only B (A
  /// frozen), even rounds only A (B frozen) — so every client holds the same frozen factor and
  /// the average of the other is exact. The flags above describe the union; spec_in_round()
  /// gives each round's.
  bool alternating = false;
  AggregationRule rule = AggregationRule::average;
  /// After merging a round's download, clients start fresh adapters (A redrawn, B = 0).
  bool fresh_adapters = false;
  /// Full fine-tuning (FedFFT): clients train their own copies of the base tensors of the
  /// trained modules, which travel and are averaged; no LoRA.
  bool train_base = false;
  bool share_base = false;
  /// Linear probe (FedLC): clients train a linear classifier on the frozen features ("probe.*"),
  /// which travels and is averaged.
  bool train_head = false;
  bool share_head = false;
};

/// Whether anything travels to the server and back.
[[nodiscard]] bool shares_anything(const StrategySpec& spec);

/// Whether clients may hold adapters of different ranks (`[lora] client_ranks`): the rules
/// that never add two factors of different shapes (stacking, FlexLoRA, HetLoRA), and local.
[[nodiscard]] bool supports_client_ranks(const StrategySpec& spec);

[[nodiscard]] const StrategySpec& strategy_spec(StrategyKind kind);
/// What the strategy trains and shares in `round` (>= 1): the spec itself, or for an
/// alternating strategy its B round (odd: B starts at zero, so training A first would get no
/// gradient) or A round (even).
[[nodiscard]] StrategySpec spec_in_round(const StrategySpec& spec, int round);
/// Throws std::invalid_argument listing the valid names.
[[nodiscard]] StrategyKind strategy_from_string(const std::string& name);
/// The strategies' names, in the table's order (to_string and parsing read it).
[[nodiscard]] const EnumNames<StrategyKind>& enum_names(StrategyKind);
[[nodiscard]] std::vector<std::string> strategy_names();

/// Adapter tensors this strategy lets a client optimise.
[[nodiscard]] bool is_trainable(const StrategySpec& spec, const std::string& tensor_name);
/// Adapter tensors that cross the network (up to the aggregator and back down).
[[nodiscard]] bool is_shared(const StrategySpec& spec, const std::string& tensor_name);
/// The part of `adapters` that travels.
[[nodiscard]] TensorMap shared_part(const StrategySpec& spec, const TensorMap& adapters);

} // namespace fedvlm
