// fl/privacy/privacy_budget.cpp — ε of a run from its settings, through the RDP accountant.
#include "fl/privacy/privacy_budget.hpp"

#include "fl/privacy/privacy_accountant.hpp"

#include <limits>

namespace fedvlm {

double client_sampling_rate(const FederationSettings& f) {
  if (f.clients_per_round <= 0 || f.clients_per_round >= f.clients) return 1.0;
  return static_cast<double>(f.clients_per_round) / static_cast<double>(f.clients);
}

double epsilon_after_rounds(const PrivacySettings& p, const FederationSettings& f, int rounds) {
  if (!p.accounted()) return std::numeric_limits<double>::quiet_NaN();
  if (rounds <= 0) return 0.0;
  RdpAccountant accountant;
  accountant.step(client_sampling_rate(f), p.noise_multiplier, rounds);
  return accountant.epsilon(p.delta).epsilon;
}

int rounds_within_budget(const PrivacySettings& p, const FederationSettings& f) {
  if (!p.accounted() || p.target_epsilon <= 0) return f.rounds;
  return max_steps_within(p.target_epsilon, p.delta, client_sampling_rate(f), p.noise_multiplier, f.rounds);
}

} // namespace fedvlm
