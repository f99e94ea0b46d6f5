// fl/federation/starting_state.cpp — each strategy's initial adapters; a checkpoint's states checked against the run.
#include "fl/federation/starting_state.hpp"

#include "fl/results/incremental_checkpoint.hpp"
#include "fl/runtime/random_streams.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/tasks/full_fine_tuning.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

namespace fedvlm {

TensorMap initial_adapters(const ExperimentConfig& c, const RunSetup& setup, int client) {
  if (strategy_spec(c.strategy).train_head) {
    // The linear probe starts at zero, the same for every client (FedAvg of a common start).
    if (!setup.task) throw std::logic_error("initial_adapters: the linear probe needs the task's feature size");
    const auto [classes, features] = setup.task->probe_shape();
    if (classes < 1 || features < 1) throw std::invalid_argument("strategy linear_probe: this model has no linear probe");
    return {{kProbeWeight, at::zeros({classes, features})}, {kProbeBias, at::zeros({classes})}};
  }
  if (strategy_spec(c.strategy).train_base) {
    // Full fine-tuning: every client starts from its own copy of the trained modules' base tensors.
    if (!setup.task) throw std::logic_error("initial_adapters: full fine-tuning needs the task's base weights");
    const TensorMap& base = setup.task->base_weights();
    TensorMap copies;
    for (const auto& name : full_tensor_names(setup.targets, tensor_shapes(base))) copies.emplace(name, base.at(name).clone());
    return copies;
  }
  const bool common = strategy_spec(c.strategy).common_a_init;
  const int stream = common ? kSharedInit : client;
  const int64_t rank = client_lora_rank(c, client);
  LoraSettings drawn = c.lora;
  // A common A with heterogeneous ranks: one draw at the largest rank, each client its first rows.
  drawn.rank = common ? max_lora_rank(c) : rank;
  TensorMap adapters = lora_init(setup.targets, drawn, job_seed(c.seed, stream, 0, Stream::adapter_init));
  if (drawn.rank != rank)
    for (auto& [name, t] : adapters) t = (ends_with(name, kLoraA) ? t.narrow(0, 0, rank) : t.narrow(1, 0, rank)).contiguous();
  return adapters;
}

std::vector<ClientCheckpoint> starting_states(const ExperimentConfig& c, const RunSetup& setup,
                                              const RunCheckpoint& from, ClientCheckpoint& central) {
  const int clients = training_clients(c);
  std::vector<ClientCheckpoint> states(static_cast<std::size_t>(clients));
  if (from.round == 0) {
    for (int k = 0; k < clients; ++k) {
      auto& state = states[static_cast<std::size_t>(k)];
      state = {k, initial_adapters(c, setup, k), {}};
      // What every client starts with alike (pLoRA's B = 0, FFA-LoRA's common A) is held once.
      if (k > 0) share_unchanged(state.adapters, states[0].adapters, nullptr);
    }
    central = {kSharedInit, initial_adapters(c, setup, kSharedInit), {}};
    return states;
  }
  std::vector<bool> seen(states.size(), false);
  for (const auto& cs : from.clients) {
    if (cs.id == kSharedInit) {
      central = cs;
      continue;
    }
    if (cs.id < 0 || cs.id >= clients || seen[static_cast<std::size_t>(cs.id)])
      throw std::runtime_error("checkpoint of round " + std::to_string(from.round) + " holds client " +
                               std::to_string(cs.id) + ", but the run has clients 0.." +
                               std::to_string(clients - 1));
    seen[static_cast<std::size_t>(cs.id)] = true;
    states[static_cast<std::size_t>(cs.id)] = cs;
  }
  for (std::size_t k = 0; k < seen.size(); ++k)
    if (!seen[k]) throw std::runtime_error("checkpoint of round " + std::to_string(from.round) + " lacks client " + std::to_string(k));
  const TensorMap expected = initial_adapters(c, setup, 0);
  for (const auto& [name, t] : expected) {
    auto it = states[0].adapters.find(name);
    if (it == states[0].adapters.end() || !it->second.sizes().equals(t.sizes()))
      throw std::runtime_error("checkpoint adapters do not fit this configuration: tensor " + name +
                               (it == states[0].adapters.end() ? " is missing"
                                                                : " has shape " + tensor_shape_string(it->second.sizes()) +
                                                                      ", expected " + tensor_shape_string(t.sizes())));
  }
  return states;
}

} // namespace fedvlm
