// fl/federation/client_round.hpp — what a client decides in a round: its training job, the update it sends, its drift.
//
// The client actor (actors/client_actor.cpp) holds the state and carries messages; these plain
// functions decide what goes into them, so tests can check them without an actor system.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/config/strategy.hpp"
#include "fl/data/partition.hpp"
#include "fl/federation/client_exchange.hpp"
#include "fl/tasks/local_training.hpp"
#include "model/tensor_map.hpp"

#include <cstdint>

namespace fedvlm {

/// Who a client is and the rules it plays by.
struct ClientSettings {
  int id = 0;
  LocalSplit split;            ///< pool indices of its local train and test samples
  StrategyKind strategy = StrategyKind::plora;
  uint64_t run_seed = 0;
  FaultSettings faults;        ///< simulated drop-outs, stragglers and crashes (fl/federation/client_faults.hpp)
  PrivacySettings privacy;     ///< clipping (and local noise) of the shared update
  CompressionSettings compression; ///< how the shared update is encoded on its way up
  double lora_alpha = 8.0;     ///< scale α/r of its products (drift it measures itself)
  /// The client is on a node (serve): nothing but what the strategy shares leaves it. Its update
  /// carries `measured` only when that holds no other tensor; under a personalised strategy it
  /// measures its own drift at the next evaluation instead (ClientEval::drift).
  bool keeps_factors = false;
};

/// Client `id`'s settings from the experiment, in one place: its split, the strategy and seed,
/// its simulated faults and privacy, and whether it sits on a node (serve). `id` = kSharedInit
/// is the centralized trainer: every client's training samples, no faults, no privacy.
[[nodiscard]] ClientSettings client_settings(const ExperimentConfig& config, const std::vector<LocalSplit>& splits, int id,
                                             bool on_node);

/// One local training from `adapters` under `spec`. `key` is the round (sync) or the job
/// counter (async) that keys the training stream.
[[nodiscard]] LocalTrainJob training_job(const ClientSettings& client, const StrategySpec& spec, const TensorMap& adapters,
                                         TensorMap optimizer_state, int key);

/// DP-FedAvg on the client: the update (change from what it received) clipped to clip_norm,
/// and in local mode noised with std σ·C from the client's own privacy stream.
void privatize_update(const ClientSettings& client, int round, const TensorMap& received, TensorMap& update);

/// What the client sends after training `round` into `adapters`: the shared part (privatized,
/// then compressed with [compression]: `residual` holds topk's error feedback between rounds),
/// its bytes (encoded) and loss, and what the aggregation error measures (the tensors as
/// decoded, so it includes what compression lost). A client that keeps its factors and has
/// private tensors moves that measure into `kept_measure` instead of sending it.
[[nodiscard]] ClientUpdate synchronous_update(const ClientSettings& client, int round, const LocalTrainResult& trained,
                                              const TensorMap& adapters, const TensorMap& received, double delay_seconds,
                                              TensorMap& kept_measure, bool& kept, TensorMap& residual);

/// Asynchronous mode: the shared part of job `job`'s result, as sent.
[[nodiscard]] ClientUpdate asynchronous_update(const ClientSettings& client, int job, const LocalTrainResult& trained);

/// A client that keeps its factors: its drift from `down` (the round's broadcast) against what
/// it measured after training that round; NaN where it does not apply.
[[nodiscard]] double own_drift(const ClientSettings& client, const GlobalDown& down, const TensorMap& measured,
                               int measured_round);

} // namespace fedvlm
