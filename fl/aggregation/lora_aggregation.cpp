// fl/aggregation/lora_aggregation.cpp — LoRA aggregation rules in float64, in ascending client order.
#include "fl/aggregation/lora_aggregation.hpp"

#include "model/lora.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace fedvlm {

namespace {

constexpr double kWeightSumTolerance = 1e-9;

std::string client_name(int client) { return "client " + std::to_string(client); }

std::string number(double x) {
  std::ostringstream s;
  s.precision(17);
  s << x;
  return s.str();
}

/// The validated view of one layer's factors that every rule starts from.
struct Checked {
  std::vector<const LoraFactors*> ordered; ///< ascending client id
  int64_t out = 0;
  int64_t in = 0;
  int64_t max_rank = 0;
  int64_t sum_rank = 0;
  at::ScalarType a_type = at::kFloat;   ///< dtype of the lowest-id client's A
  at::ScalarType b_type = at::kFloat;   ///< ... and of its B
  at::ScalarType ab_type = at::kFloat;  ///< their promotion: the dtype of out × in results
};

void check_matrix(const at::Tensor& t, const std::string& rule, int client, const char* which,
                  const char* expected) {
  if (!t.defined())
    throw std::invalid_argument(rule + ": " + client_name(client) + "'s " + which + " is undefined; expected " +
                                expected);
  if (t.dim() != 2)
    throw std::invalid_argument(rule + ": " + client_name(client) + "'s " + which + " has shape " +
                                tensor_shape_string(t.sizes()) + "; expected a 2-D " + expected + " matrix");
  if (!at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument(rule + ": " + client_name(client) + "'s " + which + " has dtype " +
                                std::string(c10::toString(t.scalar_type())) + "; expected a floating-point tensor");
}

Checked check_factors(const std::vector<LoraFactors>& factors, const std::string& rule, bool equal_ranks) {
  if (factors.empty()) throw std::invalid_argument(rule + ": no clients; expected the factors of at least one");
  Checked c;
  for (const auto& f : factors) c.ordered.push_back(&f);
  std::sort(c.ordered.begin(), c.ordered.end(),
            [](const LoraFactors* a, const LoraFactors* b) { return a->client < b->client; });
  const auto twice = std::adjacent_find(c.ordered.begin(), c.ordered.end(),
                                        [](const LoraFactors* a, const LoraFactors* b) { return a->client == b->client; });
  if (twice != c.ordered.end())
    throw std::invalid_argument(rule + ": " + client_name((*twice)->client) +
                                " appears twice; expected one set of factors per client");

  const LoraFactors& first = *c.ordered.front();
  for (const LoraFactors* f : c.ordered) {
    check_matrix(f->A, rule, f->client, "lora_A", "rank × in");
    check_matrix(f->B, rule, f->client, "lora_B", "out × rank");
    if (f->B.size(1) != f->A.size(0))
      throw std::invalid_argument(rule + ": " + client_name(f->client) + "'s lora_B is " +
                                  tensor_shape_string(f->B.sizes()) + " but its lora_A is " +
                                  tensor_shape_string(f->A.sizes()) +
                                  "; expected B's columns to equal A's rows (the rank)");
    if (f->A.size(0) < 1)
      throw std::invalid_argument(rule + ": " + client_name(f->client) + " has rank 0 (lora_A is " +
                                  tensor_shape_string(f->A.sizes()) + "); expected rank >= 1");
    if (!std::isfinite(f->weight) || f->weight < 0.0)
      throw std::invalid_argument(rule + ": " + client_name(f->client) + " has weight " + number(f->weight) +
                                  "; expected a finite weight >= 0");
    if (f == &first) continue;
    if (f->A.size(1) != first.A.size(1))
      throw std::invalid_argument(rule + ": " + client_name(f->client) + "'s lora_A is " +
                                  tensor_shape_string(f->A.sizes()) + ", in = " + std::to_string(f->A.size(1)) +
                                  "; expected in = " + std::to_string(first.A.size(1)) + " as " +
                                  client_name(first.client) + "'s " + tensor_shape_string(first.A.sizes()));
    if (f->B.size(0) != first.B.size(0))
      throw std::invalid_argument(rule + ": " + client_name(f->client) + "'s lora_B is " +
                                  tensor_shape_string(f->B.sizes()) + ", out = " + std::to_string(f->B.size(0)) +
                                  "; expected out = " + std::to_string(first.B.size(0)) + " as " +
                                  client_name(first.client) + "'s " + tensor_shape_string(first.B.sizes()));
    if (equal_ranks && f->A.size(0) != first.A.size(0))
      throw std::invalid_argument(rule + ": " + client_name(f->client) + " has rank " + std::to_string(f->A.size(0)) +
                                  ", " + client_name(first.client) + " has rank " + std::to_string(first.A.size(0)) +
                                  "; " + rule +
                                  " needs equal ranks (stacking, FlexLoRA and HetLoRA accept heterogeneous ranks)");
  }
  double sum = 0.0;
  for (const LoraFactors* f : c.ordered) sum += f->weight;
  if (std::abs(sum - 1.0) > kWeightSumTolerance)
    throw std::invalid_argument(rule + ": client weights sum to " + number(sum) +
                                ", expected 1 (within 1e-9); normalise them before aggregating "
                                "(p_k = n_k / sum n, or 1/K)");

  c.out = first.B.size(0);
  c.in = first.A.size(1);
  for (const LoraFactors* f : c.ordered) {
    c.max_rank = std::max(c.max_rank, f->A.size(0));
    c.sum_rank += f->A.size(0);
  }
  c.a_type = first.A.scalar_type();
  c.b_type = first.B.scalar_type();
  c.ab_type = at::promote_types(c.a_type, c.b_type);
  return c;
}

at::Tensor f64(const at::Tensor& t) { return t.to(at::kDouble); }

/// Σ p_k B_k A_k in float64, ascending client order.
at::Tensor mean_product(const Checked& c) {
  at::Tensor acc = at::zeros({c.out, c.in}, at::kDouble);
  for (const LoraFactors* f : c.ordered) acc.add_(at::matmul(f64(f->B), f64(f->A)), f->weight);
  return acc;
}

/// {Σ p_k A_k, Σ p_k B_k} in float64 (equal ranks), ascending client order.
std::pair<at::Tensor, at::Tensor> mean_factors(const Checked& c) {
  at::Tensor a = at::zeros({c.max_rank, c.in}, at::kDouble);
  at::Tensor b = at::zeros({c.out, c.max_rank}, at::kDouble);
  for (const LoraFactors* f : c.ordered) {
    a.add_(f64(f->A), f->weight);
    b.add_(f64(f->B), f->weight);
  }
  return {a, b};
}

double frobenius(const at::Tensor& t) { return t.norm().item<double>(); }

/// ‖ref − x‖ / ‖ref‖, with 0/0 = 0 and x/0 = inf.
double relative_error(const at::Tensor& ref, const at::Tensor& x) {
  const double num = frobenius(ref - x);
  const double den = frobenius(ref);
  if (den == 0.0) return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return num / den;
}

/// A result that owns its storage: no view of a shared accumulator, contiguous, in `type`.
at::Tensor owned(const at::Tensor& t, at::ScalarType type) {
  return t.to(type, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

void check_target_count(const std::vector<LoraFactors>& factors, const std::vector<int>& target_ranks,
                        const std::string& rule) {
  if (target_ranks.size() != factors.size())
    throw std::invalid_argument(rule + ": " + std::to_string(target_ranks.size()) + " target ranks for " +
                                std::to_string(factors.size()) +
                                " clients; expected one per client (target_ranks[i] for factors[i])");
}

} // namespace

at::Tensor lora_mean_product(const std::vector<LoraFactors>& factors) {
  return mean_product(check_factors(factors, "lora_mean_product", /*equal_ranks=*/false));
}

LoraPair aggregate_fedit(const std::vector<LoraFactors>& factors) {
  const Checked c = check_factors(factors, "fedit", /*equal_ranks=*/true);
  auto [a, b] = mean_factors(c);
  return {owned(a, c.a_type), owned(b, c.b_type)};
}

FedExResult aggregate_fedex(const std::vector<LoraFactors>& factors) {
  const Checked c = check_factors(factors, "fedex", /*equal_ranks=*/true);
  auto [a, b] = mean_factors(c);
  FedExResult r{owned(a, c.a_type), owned(b, c.b_type), at::Tensor()};
  // The residual is taken against the averages as returned (after the cast), so the rounding of
  // a float32 cast ends up in ΔW too and B̄·Ā + ΔW stays Σ p_k B_k A_k to float64 precision
  // before ΔW itself is cast.
  r.residual = owned(mean_product(c) - at::matmul(f64(r.B), f64(r.A)), c.ab_type);
  return r;
}

LoraPair aggregate_stack(const std::vector<LoraFactors>& factors) {
  const Checked c = check_factors(factors, "stack", /*equal_ranks=*/false);
  std::vector<at::Tensor> as;
  std::vector<at::Tensor> bs;
  for (const LoraFactors* f : c.ordered) {
    as.push_back(f64(f->A));
    bs.push_back(f64(f->B) * f->weight); // the weight rides on B, so A_s stays the clients' own rows
  }
  return {owned(at::cat(as, 0), c.a_type), owned(at::cat(bs, 1), c.b_type)};
}

namespace {

std::vector<LoraRecipient> recipients_of(const std::vector<LoraFactors>& factors, const std::vector<int>& target_ranks,
                                         const std::string& rule) {
  check_target_count(factors, target_ranks, rule);
  std::vector<LoraRecipient> out;
  for (size_t i = 0; i < factors.size(); ++i) out.push_back({factors[i].client, target_ranks[i]});
  return out;
}

} // namespace

std::vector<ClientLora> aggregate_flexlora(const std::vector<LoraFactors>& factors,
                                           const std::vector<int>& target_ranks) {
  return aggregate_flexlora_for(factors, recipients_of(factors, target_ranks, "flexlora"));
}

std::vector<ClientLora> aggregate_hetlora(const std::vector<LoraFactors>& factors,
                                          const std::vector<int>& target_ranks) {
  return aggregate_hetlora_for(factors, recipients_of(factors, target_ranks, "hetlora"));
}

std::vector<ClientLora> aggregate_flexlora_for(const std::vector<LoraFactors>& factors,
                                               const std::vector<LoraRecipient>& recipients) {
  const Checked c = check_factors(factors, "flexlora", /*equal_ranks=*/false);
  const int64_t limit = std::min({c.out, c.in, c.sum_rank});
  int64_t top = 0;
  for (const LoraRecipient& to : recipients) {
    const int r = to.rank;
    if (r < 1)
      throw std::invalid_argument("flexlora: " + client_name(to.client) + "'s target rank is " +
                                  std::to_string(r) + "; expected >= 1");
    if (r > limit)
      throw std::invalid_argument("flexlora: " + client_name(to.client) + "'s target rank " +
                                  std::to_string(r) + " exceeds min(out " + std::to_string(c.out) + ", in " +
                                  std::to_string(c.in) + ", stacked rank " + std::to_string(c.sum_rank) +
                                  ") = " + std::to_string(limit) +
                                  ", the most singular values W = sum p_k B_k A_k can have");
    top = std::max<int64_t>(top, r);
  }
  const at::Tensor w = mean_product(c);
  auto [u, s, vh] = at::linalg_svd(w, /*full_matrices=*/false);
  u = u.slice(1, 0, top);
  vh = vh.slice(0, 0, top);
  // LAPACK fixes singular vectors only up to sign; make the largest-magnitude entry of each left
  // vector positive so the factors (not just their product) are the same on every platform.
  const at::Tensor pivot = u.gather(0, u.abs().argmax(0, /*keepdim=*/true));
  const at::Tensor sign = at::where(pivot < 0, -at::ones_like(pivot), at::ones_like(pivot));
  u = u * sign;
  vh = vh * sign.reshape({top, 1});
  const at::Tensor root = s.slice(0, 0, top).sqrt();

  std::vector<ClientLora> out;
  for (const LoraRecipient& to : recipients) {
    const int64_t r = to.rank;
    const at::Tensor root_r = root.slice(0, 0, r);
    out.push_back({to.client,
                   owned(root_r.unsqueeze(1) * vh.slice(0, 0, r), c.a_type),
                   owned(u.slice(1, 0, r) * root_r.unsqueeze(0), c.b_type)});
  }
  return out;
}

std::vector<ClientLora> aggregate_hetlora_for(const std::vector<LoraFactors>& factors,
                                              const std::vector<LoraRecipient>& recipients) {
  const Checked c = check_factors(factors, "hetlora", /*equal_ranks=*/false);
  for (const LoraRecipient& to : recipients) {
    const int r = to.rank;
    if (r < 1)
      throw std::invalid_argument("hetlora: " + client_name(to.client) + "'s target rank is " +
                                  std::to_string(r) + "; expected >= 1");
    if (r > c.max_rank)
      throw std::invalid_argument("hetlora: " + client_name(to.client) + "'s target rank " +
                                  std::to_string(r) + " exceeds the largest client rank " +
                                  std::to_string(c.max_rank) +
                                  " (the padded rank); HetLoRA truncates on the way down, it cannot grow a rank");
  }
  // Zero padding: client k only adds into the first r_k rows of A and columns of B.
  at::Tensor a = at::zeros({c.max_rank, c.in}, at::kDouble);
  at::Tensor b = at::zeros({c.out, c.max_rank}, at::kDouble);
  for (const LoraFactors* f : c.ordered) {
    const int64_t r = f->A.size(0);
    a.slice(0, 0, r).add_(f64(f->A), f->weight);
    b.slice(1, 0, r).add_(f64(f->B), f->weight);
  }
  std::vector<ClientLora> out;
  for (const LoraRecipient& to : recipients) {
    const int64_t r = to.rank;
    out.push_back({to.client, owned(a.slice(0, 0, r), c.a_type), owned(b.slice(1, 0, r), c.b_type)});
  }
  return out;
}

double aggregation_error(const std::vector<LoraFactors>& factors, const at::Tensor& aggregated_product) {
  const Checked c = check_factors(factors, "aggregation_error", /*equal_ranks=*/false);
  if (!aggregated_product.defined() || aggregated_product.dim() != 2 || aggregated_product.size(0) != c.out ||
      aggregated_product.size(1) != c.in)
    throw std::invalid_argument(
        "aggregation_error: the aggregated product is " +
        (aggregated_product.defined() ? tensor_shape_string(aggregated_product.sizes()) : std::string("undefined")) +
        "; expected [" + std::to_string(c.out) + ", " + std::to_string(c.in) + "] (out x in of the clients' B A)");
  return relative_error(mean_product(c), f64(aggregated_product));
}

double client_drift(const at::Tensor& global_B_times_own_A, const at::Tensor& own_B_times_own_A) {
  for (const auto* t : {&global_B_times_own_A, &own_B_times_own_A})
    if (!t->defined() || t->dim() != 2)
      throw std::invalid_argument(
          std::string("client_drift: ") +
          (t == &global_B_times_own_A ? "the global product B_g A_k" : "the client's own product B_k A_k") +
          " is " + (t->defined() ? tensor_shape_string(t->sizes()) : std::string("undefined")) +
          "; expected a 2-D out x in matrix");
  if (!global_B_times_own_A.sizes().equals(own_B_times_own_A.sizes()))
    throw std::invalid_argument("client_drift: the global product B_g A_k is " +
                                tensor_shape_string(global_B_times_own_A.sizes()) +
                                " but the client's own product B_k A_k is " +
                                tensor_shape_string(own_B_times_own_A.sizes()) + "; expected the same out x in");
  return relative_error(f64(own_B_times_own_A), f64(global_B_times_own_A));
}

std::map<std::string, std::vector<LoraFactors>> lora_factors_by_module(const std::vector<ClientAdapters>& clients) {
  const std::string rule = "lora_factors_by_module";
  if (clients.empty()) throw std::invalid_argument(rule + ": no clients; expected the adapters of at least one");
  std::vector<const ClientAdapters*> ordered;
  for (const auto& c : clients) ordered.push_back(&c);
  std::sort(ordered.begin(), ordered.end(),
            [](const ClientAdapters* a, const ClientAdapters* b) { return a->client < b->client; });
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (ordered[i]->adapters == nullptr)
      throw std::invalid_argument(rule + ": " + client_name(ordered[i]->client) + " sent no adapters");
    if (i > 0 && ordered[i]->client == ordered[i - 1]->client)
      throw std::invalid_argument(rule + ": " + client_name(ordered[i]->client) +
                                  " appears twice; expected one adapter map per client");
  }

  // Module name → {A, B} of one client; a lone half is an error.
  auto modules_of = [&](const ClientAdapters& c) {
    std::map<std::string, std::pair<at::Tensor, at::Tensor>> m;
    for (const auto& [name, t] : *c.adapters) {
      if (ends_with(name, kLoraA) && name.size() > kLoraA.size())
        m[name.substr(0, name.size() - kLoraA.size())].first = t;
      else if (ends_with(name, kLoraB) && name.size() > kLoraB.size())
        m[name.substr(0, name.size() - kLoraB.size())].second = t;
    }
    for (const auto& [module, ab] : m) {
      if (!ab.first.defined())
        throw std::invalid_argument(rule + ": " + client_name(c.client) + " has '" + module + kLoraB +
                                    "' but no '" + module + kLoraA + "'; expected both halves of the adapter");
      if (!ab.second.defined())
        throw std::invalid_argument(rule + ": " + client_name(c.client) + " has '" + module + kLoraA +
                                    "' but no '" + module + kLoraB + "'; expected both halves of the adapter");
    }
    return m;
  };

  const ClientAdapters& first = *ordered.front();
  const auto first_modules = modules_of(first);
  std::map<std::string, std::vector<LoraFactors>> out;
  for (const ClientAdapters* c : ordered) {
    const auto modules = c == &first ? first_modules : modules_of(*c);
    for (const auto& [module, ab] : first_modules)
      if (modules.count(module) == 0)
        throw std::invalid_argument(rule + ": " + client_name(c->client) + " has no adapter for module '" +
                                    module + "', which " + client_name(first.client) +
                                    " has; expected the same modules from every client");
    for (const auto& [module, ab] : modules) {
      if (first_modules.count(module) == 0)
        throw std::invalid_argument(rule + ": " + client_name(c->client) + " has an adapter for module '" +
                                    module + "', which " + client_name(first.client) +
                                    " lacks; expected the same modules from every client");
      out[module].push_back({c->client, c->weight, ab.first, ab.second});
    }
  }
  return out;
}

std::map<std::string, double> fedit_error_per_module(const std::vector<ClientAdapters>& clients) {
  std::map<std::string, double> out;
  for (const auto& [module, factors] : lora_factors_by_module(clients)) {
    try {
      // FedIT's product in float64: a float32 cast of the averages would add ~1e-7 of rounding
      // to the metric, and FFA-LoRA's exact case would not read 0.
      const Checked c = check_factors(factors, "fedit", /*equal_ranks=*/true);
      auto [a, b] = mean_factors(c);
      out.emplace(module, relative_error(mean_product(c), at::matmul(b, a)));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("module '" + module + "': " + e.what());
    }
  }
  return out;
}

} // namespace fedvlm
