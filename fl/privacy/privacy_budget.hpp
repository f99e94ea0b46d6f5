// fl/privacy/privacy_budget.hpp — a run's privacy settings in the accountant's terms: sampling rate, ε after r rounds, rounds within budget.
#pragma once

#include "fl/config/experiment_config.hpp"

namespace fedvlm {

/// q of the sampled Gaussian mechanism: clients_per_round / clients (1 when all take part).
/// Selection draws exactly that many clients, which the accountant treats as Poisson sampling
/// at the same rate — common practice, stated so it is not mistaken for a proof.
[[nodiscard]] double client_sampling_rate(const FederationSettings& federation);

/// ε at privacy.delta after `rounds` rounds of noise; NaN when the run is not accounted (no
/// noise: no finite ε).
[[nodiscard]] double epsilon_after_rounds(const PrivacySettings& privacy, const FederationSettings& federation,
                                          int rounds);

/// The most rounds whose ε stays within privacy.target_epsilon (at most federation.rounds);
/// federation.rounds when there is no budget.
[[nodiscard]] int rounds_within_budget(const PrivacySettings& privacy, const FederationSettings& federation);

} // namespace fedvlm
