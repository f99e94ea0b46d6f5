// actors/client_actor.hpp — one simulated client: its data split, its adapters, its optimizer state.
#pragma once

#include "actors/messages.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/data/partition.hpp"
#include "fl/config/strategy.hpp"
#include "fl/federation/client_round.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "model/tensor_map.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <optional>

namespace fedvlm {

/// A client's settings (fl/federation/client_round.hpp), where it starts, and its scheduler.
struct ClientConfig : ClientSettings {
  TensorMap initial_adapters;  ///< A from its own (or the shared) seed, B = 0; or resumed state
  TensorMap initial_optimizer_state; ///< empty for a fresh client
  TensorMap initial_residual;        ///< compression.up = "topk": from a checkpoint; empty for a fresh client
  scheduler_actor scheduler;
  /// On a node with a state directory: writes the client's state after a round (save_atom);
  /// empty: nothing is saved and save_atom answers false.
  std::function<void(int round, const ClientCheckpoint& state)> save_state;
  /// On a node with a state directory: the state saved after a round, if there is one
  /// (restore_atom); empty: restore_atom answers false for every round but 0.
  std::function<std::optional<ClientCheckpoint>(int round)> load_state;
};

/// The client_actor interface (actors/messages.hpp): (train_atom, round) → ClientUpdate and
/// (eval_atom, GlobalDown) → ClientEval, ...
/// A GlobalDown is merged by apply_download (fl/aggregation/round_aggregation.hpp): shared tensors replaced,
/// private ones kept, residuals and stacked products added to lora_delta.
/// (snapshot_atom) → AdapterSnapshot returns its adapters and optimizer state (the same tensors: they are
/// never changed in place) and a copy of its top-k residual.
/// (restore_atom, round) → bool takes back the state saved after `round` (0: the initial one),
/// as a client spawned from it would hold it; a training begun before answers with an error.
/// Simulated faults: a failing or dropped-out client answers train with an EngineErrc
/// simulated_fault error; a crashing one throws, so its actor dies as a real one would.
client_actor spawn_client(caf::actor_system& system, ClientConfig config);

} // namespace fedvlm
