// fl/privacy/privacy_accountant.hpp — Rényi-DP accounting of the sampled Gaussian mechanism (DP-FedAvg rounds).
#pragma once

// Overview. A DP-FedAvg round samples each client with probability q = clients_per_round /
// clients, clips every sampled update to norm C and adds Gaussian noise of std σ·C to their sum
// (see fl/privacy/differential_privacy.hpp). One round is then the sampled Gaussian mechanism (SGM) with
// sampling rate q and noise multiplier σ; T rounds compose by adding their Rényi-DP (RDP) at every
// order α; at the end the RDP curve is converted to (ε, δ)-DP at the best order.
//
// Sources: Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
// Mechanism" (Sec. 3.3 integer α, Sec. 3.4 fractional α; the same evaluation as TF-Privacy's and
// Opacus's `_compute_log_a_int` / `_compute_log_a_frac`); Balle, Barthe, Gaboardi, Hsu, Sato 2020,
// "Hypothesis Testing Interpretations and Renyi Differential Privacy", Thm 21 (conversion).
//
// Caveat on sampling: the SGM analysis assumes Poisson sampling (each client joins independently
// with probability q). Choosing exactly m of N clients uniformly is accounted with q = m/N by
// common practice (McMahan et al. 2018) but is not the same mechanism; callers state which one.

#include <string>
#include <vector>

namespace fedvlm {

// -- one step ---------------------------------------------------------------------------------

/// RDP at order `alpha` of one application of the sampled Gaussian mechanism with sampling rate
/// `q` and noise multiplier `sigma` (noise std / L2 sensitivity), in nats:
///   log(A_α) / (α − 1),  A_α = E_{z~N(0,σ²)}[((1 − q) + q·e^{(2z − 1)/(2σ²)})^α].
/// Integer α: the binomial sum Σ_k C(α,k)(1−q)^{α−k} q^k e^{(k²−k)/(2σ²)}, evaluated as
/// log1p of its excess over 1 in log-space, so a tiny q keeps full relative precision.
/// Fractional α: the paper's two-sided erfc series, summed in log-space until a term falls below
/// e^{-40} of the sum (TF-Privacy and Opacus stop at e^{-30} absolute, 1e-13 in A_α).
/// Precision: about 1e-12 relative for integer α; for fractional α about 1e-16 absolute in
/// log A_α, i.e. relative 1e-16/((α − 1)·RDP) (1e-8 at RDP ~1e-8). Checked against numerical
/// integration in tests/fl/privacy/privacy_test.cpp.
/// Special cases: q = 0 → 0; q = 1 → α/(2σ²) (the plain Gaussian); σ = 0 with q > 0 → +inf;
/// σ = +inf → 0.
/// Throws std::invalid_argument naming the argument and its value unless q ∈ [0, 1], σ ≥ 0 (not
/// nan) and α > 1 finite.
[[nodiscard]] double rdp_sampled_gaussian(double q, double sigma, double alpha);

// -- conversion -------------------------------------------------------------------------------

/// Opacus's default orders: 1.1, 1.2, …, 10.9 (1 + x/10 for x = 1..99), then 12, 13, …, 63.
[[nodiscard]] std::vector<double> default_rdp_orders();

/// ε at a given δ and the order that attains it.
struct PrivacySpent {
  double epsilon = 0.0;
  double order = 0.0; ///< the α of the minimum; nan when ε is +inf at every order
};

/// (ε, δ) from an RDP curve (`rdp[i]` at `orders[i]`, already composed over all steps), by
/// Balle et al. 2020, Thm 21 — the conversion Opacus uses:
///   ε(α) = rdp(α) − (log δ + log α)/(α − 1) + log((α − 1)/α),   ε = max(0, min_α ε(α)).
/// It is never larger than the classic ε(α) = rdp(α) + log(1/δ)/(α − 1) (Mironov 2017, Prop. 3,
/// which Abadi et al. 2016 and TF-Privacy before 2020 used), and usually about 10–20% smaller;
/// ε values quoted from older papers were computed with the classic one. A negative bound means
/// (0, δ)-DP, hence the clamp at 0. Ties keep the first order in the list.
/// Throws std::invalid_argument when the lists are empty or differ in length, δ ∉ (0, 1), an
/// order is not > 1 and finite, or an RDP value is negative or nan.
[[nodiscard]] PrivacySpent epsilon_from_rdp(const std::vector<double>& orders,
                                            const std::vector<double>& rdp, double delta);

// -- accountant -------------------------------------------------------------------------------

/// Records steps of the sampled Gaussian mechanism and reports the ε spent. Not thread-safe;
/// the round loop owns it. Consecutive steps with the same (q, σ) share one history entry, so the
/// history stays short and can be written to a checkpoint and replayed with `step`.
class RdpAccountant {
public:
  struct Entry {
    double q = 0.0;
    double sigma = 0.0;
    long long steps = 0;
  };

  /// Orders to evaluate at; `default_rdp_orders()` unless given. Throws std::invalid_argument when
  /// the list is empty or an order is not > 1 and finite.
  RdpAccountant();
  explicit RdpAccountant(std::vector<double> orders);

  // -- modifiers ---

  /// Records `steps` applications with sampling rate q and noise multiplier σ. Throws
  /// std::invalid_argument (before recording anything) on q ∉ [0, 1], σ < 0 or nan, steps < 0.
  void step(double q, double sigma, long long steps = 1);

  // -- observers ---

  /// ε spent so far at δ (0 before any step). Throws std::invalid_argument on δ ∉ (0, 1).
  [[nodiscard]] PrivacySpent epsilon(double delta) const;

  /// The RDP curve spent so far, one value per order.
  [[nodiscard]] std::vector<double> rdp() const;

  [[nodiscard]] const std::vector<double>& orders() const { return orders_; }
  [[nodiscard]] const std::vector<Entry>& history() const { return history_; }
  [[nodiscard]] long long total_steps() const;

private:
  std::vector<double> orders_;
  std::vector<Entry> history_;
};

/// The largest T in [0, limit] with ε(T steps of (q, σ)) ≤ target_epsilon at δ, over the default
/// orders: a run that stops after T rounds stays within its budget, and T + 1 rounds (when
/// T < limit) would not. 0 when even one step exceeds the budget; `limit` when the budget is
/// +inf or never reached. ε is nondecreasing in T, so this is a binary search (log2(limit)
/// conversions, one RDP evaluation per order).
/// Throws std::invalid_argument on target_epsilon < 0 or nan, δ ∉ (0, 1), q ∉ [0, 1], σ < 0 or
/// nan, limit < 0.
[[nodiscard]] int max_steps_within(double target_epsilon, double delta, double q, double sigma, int limit);

} // namespace fedvlm
