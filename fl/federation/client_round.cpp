// fl/federation/client_round.cpp — a client's training job, its (privatized) update and its own drift.
#include "fl/federation/client_round.hpp"
#include "fl/federation/starting_state.hpp" // kSharedInit

#include "fl/aggregation/aggregation_error.hpp"
#include "fl/aggregation/compression.hpp"
#include "fl/aggregation/round_aggregation.hpp"
#include "fl/privacy/differential_privacy.hpp"
#include "fl/runtime/random_streams.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

namespace fedvlm {

ClientSettings client_settings(const ExperimentConfig& c, const std::vector<LocalSplit>& splits, int id, bool on_node) {
  ClientSettings cs;
  cs.id = id;
  if (id == kSharedInit) {
    for (const auto& s : splits) cs.split.train.insert(cs.split.train.end(), s.train.begin(), s.train.end());
    std::sort(cs.split.train.begin(), cs.split.train.end());
  } else {
    cs.split = splits.at(static_cast<std::size_t>(id));
    cs.faults = c.faults;
    cs.privacy = c.privacy;
    cs.compression = c.compression;
  }
  cs.strategy = c.strategy;
  cs.run_seed = c.seed;
  cs.lora_alpha = c.lora.alpha;
  cs.keeps_factors = on_node;
  return cs;
}

LocalTrainJob training_job(const ClientSettings& client, const StrategySpec& spec, const TensorMap& adapters,
                           TensorMap optimizer_state, int key) {
  LocalTrainJob job;
  job.adapters = adapters;
  job.optimizer_state = std::move(optimizer_state);
  for (const auto& [name, t] : adapters)
    if (is_trainable(spec, name)) job.trainable.insert(name);
  job.prox_reference = tensor_map_clone(shared_part(spec, adapters));
  job.indices = client.split.train;
  job.seed = job_seed(client.run_seed, client.id, key, Stream::training);
  job.client = client.id; // named by NonFiniteLossError
  job.round = key;
  return job;
}

void privatize_update(const ClientSettings& client, int round, const TensorMap& received, TensorMap& update) {
  const PrivacySettings& p = client.privacy;
  if (!p.enabled() || update.empty()) return;
  clip_update(update, received, p.clip_norm);
  if (p.mode == PrivacyMode::local && p.noise_multiplier > 0) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(job_seed(client.run_seed, client.id, round, Stream::privacy_noise));
    add_gaussian_noise(update, local_noise_stddev(p.noise_multiplier, p.clip_norm), gen);
  }
}

ClientUpdate synchronous_update(const ClientSettings& client, int round, const LocalTrainResult& trained,
                                const TensorMap& adapters, const TensorMap& received, double delay_seconds,
                                TensorMap& kept_measure, bool& kept, TensorMap& residual) {
  const StrategySpec sp = spec_in_round(strategy_spec(client.strategy), round);
  kept = false;
  ClientUpdate up;
  up.client = client.id;
  up.round = round;
  up.samples = trained.samples;
  up.tensors = tensor_map_clone(shared_part(sp, adapters));
  privatize_update(client, round, received, up.tensors);
  if (client.compression.up == CompressionKind::none) up.bytes = static_cast<int64_t>(tensor_map_bytes(up.tensors));
  else up.bytes = compress_update(up.tensors, received, residual, client.compression);
  up.train_loss = trained.mean_loss;
  up.delay_seconds = delay_seconds;
  if (sp.share_a || sp.share_b) {
    up.measured = adapters;
    for (const auto& [name, t] : up.tensors) up.measured[name] = t; // as sent
    if (client.keeps_factors && up.measured.size() != up.tensors.size()) {
      // Private tensors in it: they stay here (the drift is measured at eval).
      kept_measure = std::move(up.measured);
      kept = true;
      up.measured.clear();
    }
  }
  return up;
}

ClientUpdate asynchronous_update(const ClientSettings& client, int job, const LocalTrainResult& trained) {
  ClientUpdate up;
  up.client = client.id;
  up.round = job;
  up.samples = trained.samples;
  up.tensors = tensor_map_clone(shared_part(strategy_spec(client.strategy), trained.adapters));
  up.bytes = static_cast<int64_t>(tensor_map_bytes(up.tensors));
  up.train_loss = trained.mean_loss;
  return up;
}

double own_drift(const ClientSettings& client, const GlobalDown& down, const TensorMap& measured, int measured_round) {
  const StrategySpec round_spec = spec_in_round(strategy_spec(client.strategy), std::max(down.round, 1));
  if (measured_round != down.round || !personalised_outcome(round_spec) || down.tensors.empty())
    return std::numeric_limits<double>::quiet_NaN();
  RoundAggregate mine;
  mine.broadcast = down.tensors;
  const AggregationMeasure m = measure_aggregation(round_spec, {TrainedClient{client.id, 1.0, &measured}}, mine, client.lora_alpha);
  if (auto it = m.drift_by_client.find(client.id); it != m.drift_by_client.end()) return it->second;
  return std::numeric_limits<double>::quiet_NaN();
}

} // namespace fedvlm
