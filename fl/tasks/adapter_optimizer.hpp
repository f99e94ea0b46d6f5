// fl/tasks/adapter_optimizer.hpp — SGD (momentum) and AdamW over named tensors, state kept as tensors.
//
// The state is a TensorMap so it can live in the client that owns it (40 clients, 40 states,
// one shared base model) and travel inside scheduler jobs like the adapters themselves.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "model/tensor_map.hpp"

#include <set>
#include <string>

namespace fedvlm {

struct OptimizerSettings {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01;
  double momentum = 0.9;     ///< SGD
  double weight_decay = 0.0; ///< SGD and Adam: L2 added to the gradient; AdamW: decoupled
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8; ///< Adam and AdamW
};

/// One step on every tensor in `params` whose name is in `trainable` and that has a gradient.
/// `state` holds "<name>.momentum" (SGD) or "<name>.exp_avg", "<name>.exp_avg_sq", "<name>.step"
/// (AdamW) and is created on first use.
void optimizer_step(TensorMap& params, const std::set<std::string>& trainable, TensorMap& state,
                    const OptimizerSettings& settings);

} // namespace fedvlm
