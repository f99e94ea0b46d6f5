// fl/aggregation/aggregate.hpp — FedAvg of named tensors: weighted by sample count, or uniform 1/K.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "model/tensor_map.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fedvlm {

/// One client's contribution to a round.
struct ClientContribution {
  int client = 0;
  int64_t samples = 0;
  const TensorMap* tensors = nullptr;
};

/// w_k of FedAvg: n_k / Σn (samples) or 1/K (uniform) — the one definition the average and
/// every metric weighted "as the aggregation is" use.
[[nodiscard]] double fedavg_weight(int64_t samples, int64_t total_samples, std::size_t clients, Weighting weighting);

/// Σ_k w_k · T_k with w_k = fedavg_weight(...), per tensor name.
/// Contributions are summed in ascending client order, in float64, whatever order they arrived
/// in, so a run is reproducible however the actors interleave. Throws std::invalid_argument when
/// the list is empty, a client appears twice, names or shapes differ between clients, or all
/// sample counts are zero under sample weighting.
[[nodiscard]] TensorMap aggregate(std::vector<ClientContribution> contributions, Weighting weighting);

} // namespace fedvlm
