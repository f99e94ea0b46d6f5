// fl/privacy/differential_privacy.hpp — DP-FedAvg mechanics on named tensors: clip a client's update, add Gaussian noise.
#pragma once

// Overview. DP-FedAvg (McMahan, Ramage, Talwar, Zhang 2018, "Learning Differentially Private
// Recurrent Language Models") bounds each client's influence on a round and hides it in noise:
//   1. the client's update is Δ_k = T_k − G, its trained tensors minus the global tensors G it
//      received for the round (all tensors it shares, taken together as one vector);
//   2. Δ_k is clipped to L2 norm ≤ C (`clip_update`), so one client moves the sum by at most C;
//   3. noise is added with std proportional to C (`add_gaussian_noise`).
// Central DP (a trusted server adds noise once): averaging K clipped updates with uniform
// weights 1/K, the noise on the average has std σ·C/K (`central_noise_stddev`) — noise σ·C on
// the sum, sensitivity C. The accountant (fl/privacy/privacy_accountant.hpp) then takes noise multiplier
// σ and sampling rate q = K/N. K must be the planned clients per round, not the number that
// happened to report: dividing by a data-dependent count changes the sensitivity. Sample-count
// weighting also changes it (a client's weight bounds its influence) and is not covered here.
// Local DP (each client protects itself): the client adds std σ·C to its own clipped update
// (`local_noise_stddev`) before sending it; averaging K such updates leaves std σ·C/√K.

#include "model/tensor_map.hpp"

#include <ATen/core/Generator.h>

#include <cstdint>

namespace fedvlm {


/// Clips the update `update − reference` to L2 norm ≤ clip_norm and writes `reference + clipped`
/// back into `update`; returns the norm before clipping. The norm is one global norm over every
/// tensor, accumulated in float64. At or below clip_norm, `update` is left untouched (bit for
/// bit); above it, each entry is replaced by a new tensor of its own dtype holding
/// reference + Δ·(clip_norm/‖Δ‖) computed in float64 and rounded once (aliases of the old tensors
/// are not modified). Precision: the clipped norm, recomputed from the stored tensors, equals
/// clip_norm up to that one rounding (about 1e-7 relative in float32 when reference and Δ are of
/// similar magnitude). Throws std::invalid_argument when clip_norm is not > 0 and finite, the two
/// maps hold different names, a tensor's shape differs or is not floating point, or Δ holds
/// nan/inf (naming the tensor).
double clip_update(TensorMap& update, const TensorMap& reference, double clip_norm);

/// Adds independent N(0, stddev²) noise to every element, in name order (std::map), drawn in
/// float64 from `gen` (a CPU generator, e.g. at::make_generator<at::CPUGeneratorImpl>(seed)) and
/// rounded once to each tensor's dtype: the same seed and shapes give the same tensors whatever
/// the dtype or device. Entries are replaced by new tensors. stddev = 0 changes nothing and draws
/// nothing. Throws std::invalid_argument when stddev is negative or not finite, or a tensor is
/// not floating point (naming it).
void add_gaussian_noise(TensorMap& tensors, double stddev, at::Generator& gen);

/// σ·C/K: the noise std to add to the uniform average of K clipped updates (central DP).
/// Throws std::invalid_argument unless σ ≥ 0 and C > 0 are finite and K ≥ 1 (naming the argument).
[[nodiscard]] double central_noise_stddev(double noise_multiplier, double clip_norm, int clients_per_round);

/// σ·C: the noise std each client adds to its own clipped update (local DP).
/// Throws std::invalid_argument unless σ ≥ 0 and C > 0 are finite.
[[nodiscard]] double local_noise_stddev(double noise_multiplier, double clip_norm);

} // namespace fedvlm
