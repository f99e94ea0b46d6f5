// actors/client_actor.hpp — one simulated client: its data split, its adapters, its optimizer state.
#pragma once

#include "fl/experiment_config.hpp"
#include "fl/partition.hpp"
#include "fl/strategy.hpp"
#include "model/tensor_map.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace fedvlm {

struct ClientConfig {
  int id = 0;
  LocalSplit split;            ///< pool indices of its local train and test samples
  TensorMap initial_adapters;  ///< A from its own (or the shared) seed, B = 0
  StrategyKind strategy = StrategyKind::plora;
  uint64_t run_seed = 0;
  bool fails = false;          ///< simulated drop-out: answers train requests with an error
  double delay_seconds = 0;    ///< simulated straggler: answers train requests this late
  caf::actor scheduler;
};

/// Handles (train_atom, round) → ClientUpdate and (eval_atom, GlobalDown) → ClientEval.
/// A GlobalDown replaces the shared tensors of the client's adapters; private ones stay.
/// (snapshot_atom) → AdapterSnapshot returns a copy of its adapters.
caf::actor spawn_client(caf::actor_system& system, ClientConfig config);

} // namespace fedvlm
