// fl/privacy/privacy_accountant.cpp — RDP of the sampled Gaussian in log-space, composition and (ε, δ) conversion.
#include "fl/privacy/privacy_accountant.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace fedvlm {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

void check_q(const char* fn, double q) {
  if (!(q >= 0.0 && q <= 1.0))
    throw std::invalid_argument(std::string(fn) + ": sampling rate q must be in [0, 1], got " + number(q));
}

void check_sigma(const char* fn, double sigma) {
  if (!(sigma >= 0.0))
    throw std::invalid_argument(std::string(fn) + ": noise multiplier sigma must be >= 0, got " + number(sigma));
}

void check_delta(const char* fn, double delta) {
  if (!(delta > 0.0 && delta < 1.0))
    throw std::invalid_argument(std::string(fn) + ": delta must be in (0, 1), got " + number(delta));
}

void check_order(const char* fn, double alpha) {
  if (!(alpha > 1.0 && std::isfinite(alpha)))
    throw std::invalid_argument(std::string(fn) + ": order alpha must be > 1 and finite, got " + number(alpha));
}

// log(e^a + e^b), exact for -inf operands.
double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = std::max(a, b);
  return hi + std::log1p(std::exp(std::min(a, b) - hi));
}

// log(1 + e^x) without overflow.
double log1p_exp(double x) { return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// log(e^x − 1) for x > 0.
double log_expm1(double x) { return x > 1.0 ? x + std::log1p(-std::exp(-x)) : std::log(std::expm1(x)); }

// log(erfc(x)); erfc underflows near x ≈ 26.5, so beyond 25 the asymptotic (Laurent) series
// log erfc(x) = −x² − log(x√π) − 1/(2x²) + 5/(8x⁴) − 37/(24x⁶) + 353/(64x⁸) + O(x⁻¹⁰) is used;
// its truncation error there is below 1e-14.
double log_erfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  const double r = 1.0 / (x * x);
  return -x * x - std::log(x) - 0.5 * std::log(3.14159265358979323846) +
         r * (-0.5 + r * (0.625 + r * (-37.0 / 24.0 + r * (353.0 / 64.0))));
}

// log A_α for integer α ≥ 2 and 0 < q < 1. Σ_k C(α,k)(1−q)^{α−k} q^k = 1 and the k = 0, 1 terms
// carry e^0, so A_α − 1 = Σ_{k≥2} C(α,k)(1−q)^{α−k} q^k (e^{(k²−k)/(2σ²)} − 1): every term is
// positive, and log1p keeps A_α ≈ 1 + tiny exact where the plain sum would round it away.
double log_a_int(double q, double sigma, double alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double lg_alpha = std::lgamma(alpha + 1.0);
  double log_excess = -kInf;
  for (double k = 2.0; k <= alpha; k += 1.0) {
    const double log_binom = lg_alpha - std::lgamma(k + 1.0) - std::lgamma(alpha - k + 1.0);
    const double term = log_binom + (alpha - k) * log_1mq + k * log_q +
                        log_expm1((k * k - k) / (2.0 * sigma * sigma));
    log_excess = log_add(log_excess, term);
  }
  return log1p_exp(log_excess);
}

// log A_α for fractional α and 0 < q < 1: Mironov, Talwar, Zhang 2019, Sec. 3.4. The integral is
// split at z0 = σ² log(1/q − 1) + 1/2, where the two binomial expansions converge, giving
//   A_α = Σ_i C(α,i) [ q^i (1−q)^{α−i} e^{(i²−i)/(2σ²)} ½ erfc((i − z0)/(√2σ))
//                    + q^{α−i} (1−q)^i e^{(j²−j)/(2σ²)} ½ erfc((z0 − j)/(√2σ)) ],  j = α − i.
// C(α,i) is negative for odd i − ⌈α⌉ > 0, so positive and negative terms are summed apart.
double log_a_frac(double q, double sigma, double alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double z0 = sigma * sigma * (log_1mq - log_q) + 0.5;
  const double two_var = 2.0 * sigma * sigma;
  const double sqrt2_sigma = std::sqrt(2.0) * sigma;
  double pos = -kInf, neg = -kInf;
  double log_abs_binom = 0.0; // log|C(α, 0)|
  bool binom_negative = false;
  // Once i passes α the terms decrease (past z0 only polynomially, ~ i^{−α−2}) and alternate in
  // sign, so the error of stopping is below the last term. TF-Privacy and Opacus stop below e^{-30}
  // absolute, which leaves ~1e-13 in A_α ≈ 1: 1e-9 relative in an RDP of 1e-4. Stopping at e^{-40}
  // relative to the positive sum leaves ~4e-18 (rounding then dominates) for a few ms per grid;
  // i > α keeps a small leading term from ending the sum early.
  constexpr long kMaxTerms = 100000000;
  for (long n = 0;; ++n) {
    if (n == kMaxTerms)
      throw std::runtime_error("rdp_sampled_gaussian: the series for alpha = " + number(alpha) +
                               " did not converge in " + std::to_string(kMaxTerms) + " terms");
    const double i = static_cast<double>(n);
    if (n > 0) {
      const double factor = (alpha - i + 1.0) / i; // C(α,i) = C(α,i−1)·(α − i + 1)/i
      log_abs_binom += std::log(std::abs(factor));
      if (factor < 0.0) binom_negative = !binom_negative;
    }
    const double j = alpha - i;
    const double log_s0 = log_abs_binom + i * log_q + j * log_1mq + (i * i - i) / two_var +
                          std::log(0.5) + log_erfc((i - z0) / sqrt2_sigma);
    const double log_s1 = log_abs_binom + j * log_q + i * log_1mq + (j * j - j) / two_var +
                          std::log(0.5) + log_erfc((z0 - j) / sqrt2_sigma);
    double& acc = binom_negative ? neg : pos;
    acc = log_add(acc, log_add(log_s0, log_s1));
    if (i > alpha && std::max(log_s0, log_s1) < pos - 40.0) break;
  }
  if (!(neg < pos))
    throw std::runtime_error("rdp_sampled_gaussian: the series for q = " + number(q) + ", sigma = " +
                             number(sigma) + ", alpha = " + number(alpha) + " lost all precision");
  return pos + std::log1p(-std::exp(neg - pos));
}

} // namespace

double rdp_sampled_gaussian(double q, double sigma, double alpha) {
  check_q("rdp_sampled_gaussian", q);
  check_sigma("rdp_sampled_gaussian", sigma);
  check_order("rdp_sampled_gaussian", alpha);
  if (q == 0.0) return 0.0;
  if (sigma == kInf) return 0.0;
  if (sigma == 0.0) return kInf;
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  const double log_a = alpha == std::floor(alpha) ? log_a_int(q, sigma, alpha) : log_a_frac(q, sigma, alpha);
  return log_a / (alpha - 1.0);
}

std::vector<double> default_rdp_orders() {
  std::vector<double> orders;
  for (int x = 1; x <= 99; ++x) orders.push_back(1.0 + x / 10.0);
  for (int a = 12; a <= 63; ++a) orders.push_back(a);
  return orders;
}

PrivacySpent epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta) {
  check_delta("epsilon_from_rdp", delta);
  if (orders.empty()) throw std::invalid_argument("epsilon_from_rdp: no orders");
  if (orders.size() != rdp.size())
    throw std::invalid_argument("epsilon_from_rdp: " + std::to_string(orders.size()) + " orders but " +
                                std::to_string(rdp.size()) + " RDP values; one per order");
  PrivacySpent best{kInf, std::numeric_limits<double>::quiet_NaN()};
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i], r = rdp[i];
    check_order("epsilon_from_rdp", a);
    if (!(r >= 0.0))
      throw std::invalid_argument("epsilon_from_rdp: RDP at order " + number(a) + " must be >= 0, got " + number(r));
    // RDP 0 at any order means identical output distributions: (0, 0)-DP.
    const double eps = r == 0.0 ? 0.0
                                : std::max(0.0, r - (std::log(delta) + std::log(a)) / (a - 1.0) +
                                                    std::log((a - 1.0) / a));
    if (eps < best.epsilon) best = {eps, a};
  }
  return best;
}

// -- RdpAccountant ----------------------------------------------------------------------------

RdpAccountant::RdpAccountant() : RdpAccountant(default_rdp_orders()) {}

RdpAccountant::RdpAccountant(std::vector<double> orders) : orders_(std::move(orders)) {
  if (orders_.empty()) throw std::invalid_argument("RdpAccountant: no orders");
  for (double a : orders_) check_order("RdpAccountant", a);
}

void RdpAccountant::step(double q, double sigma, long long steps) {
  check_q("RdpAccountant::step", q);
  check_sigma("RdpAccountant::step", sigma);
  if (steps < 0) throw std::invalid_argument("RdpAccountant::step: steps must be >= 0, got " + std::to_string(steps));
  if (steps == 0) return;
  if (!history_.empty() && history_.back().q == q && history_.back().sigma == sigma)
    history_.back().steps += steps;
  else
    history_.push_back({q, sigma, steps});
}

std::vector<double> RdpAccountant::rdp() const {
  std::vector<double> total(orders_.size(), 0.0);
  for (const Entry& e : history_)
    for (std::size_t i = 0; i < orders_.size(); ++i)
      total[i] += static_cast<double>(e.steps) * rdp_sampled_gaussian(e.q, e.sigma, orders_[i]);
  return total;
}

PrivacySpent RdpAccountant::epsilon(double delta) const {
  check_delta("RdpAccountant::epsilon", delta);
  if (history_.empty()) return {0.0, orders_.front()};
  return epsilon_from_rdp(orders_, rdp(), delta);
}

long long RdpAccountant::total_steps() const {
  long long n = 0;
  for (const Entry& e : history_) n += e.steps;
  return n;
}

int max_steps_within(double target_epsilon, double delta, double q, double sigma, int limit) {
  if (!(target_epsilon >= 0.0))
    throw std::invalid_argument("max_steps_within: target_epsilon must be >= 0, got " + number(target_epsilon));
  check_delta("max_steps_within", delta);
  check_q("max_steps_within", q);
  check_sigma("max_steps_within", sigma);
  if (limit < 0) throw std::invalid_argument("max_steps_within: limit must be >= 0, got " + std::to_string(limit));

  const std::vector<double> orders = default_rdp_orders();
  std::vector<double> one(orders.size());
  for (std::size_t i = 0; i < orders.size(); ++i) one[i] = rdp_sampled_gaussian(q, sigma, orders[i]);
  // Same arithmetic as RdpAccountant::rdp for a single entry, so both agree at the boundary.
  auto eps_after = [&](int steps) {
    if (steps == 0) return 0.0;
    std::vector<double> r(one.size());
    for (std::size_t i = 0; i < one.size(); ++i) r[i] = 0.0 + static_cast<double>(steps) * one[i];
    return epsilon_from_rdp(orders, r, delta).epsilon;
  };
  if (eps_after(limit) <= target_epsilon) return limit;
  int lo = 0, hi = limit; // invariant: eps_after(lo) ≤ target < eps_after(hi)
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (eps_after(mid) <= target_epsilon ? lo : hi) = mid;
  }
  return lo;
}

} // namespace fedvlm
