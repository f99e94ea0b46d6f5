// fl/data/partition.cpp — IID, shard, Dirichlet and label-group splits of a dataset across clients,
// and independent per-client samples of it.
#include "fl/data/partition.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {

namespace {

using Rng = std::mt19937_64;
using Clients = std::vector<std::vector<int64_t>>;

// All sampling below is hand-written on top of mt19937_64 (whose output sequence the standard
// fixes) so a seed gives the same partition with any standard library, unlike std::shuffle and
// std::*_distribution.

// Uniform in the open interval (0, 1): the logs in the samplers below must never see 0.
double uniform_open01(Rng& rng) {
  return (static_cast<double>(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); // 2^-53
}

// Unbiased integer in [0, bound) by rejection; a plain modulo would favour small values.
uint64_t uniform_below(Rng& rng, uint64_t bound) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % bound;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % bound;
}

template <typename T>
void fisher_yates(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(uniform_below(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

double standard_normal(Rng& rng) { // Box–Muller; the second variate is dropped for simplicity
  const double u1 = uniform_open01(rng);
  const double u2 = uniform_open01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// log of a Gamma(alpha, 1) draw. Working in logs keeps tiny alphas usable: for alpha ~ 1e-3 the
// draw itself underflows to 0 for nearly every client, which would make the Dirichlet
// normalisation divide 0 by 0.
double log_gamma_draw(double alpha, Rng& rng) {
  if (alpha < 1.0) {
    // Gamma(a) = Gamma(a+1) · U^(1/a)  (Marsaglia–Tsang boost for a < 1).
    return log_gamma_draw(alpha + 1.0, rng) + std::log(uniform_open01(rng)) / alpha;
  }
  const double d = alpha - 1.0 / 3.0; // Marsaglia–Tsang (2000)
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = standard_normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = uniform_open01(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x ||
        std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) {
      return std::log(d) + std::log(v);
    }
  }
}

std::vector<double> dirichlet_draw(double beta, std::size_t k, Rng& rng) {
  std::vector<double> logs(k);
  for (auto& l : logs) l = log_gamma_draw(beta, rng);
  const double top = *std::max_element(logs.begin(), logs.end());
  std::vector<double> p(k);
  double sum = 0;
  for (std::size_t i = 0; i < k; ++i) sum += (p[i] = std::exp(logs[i] - top));
  for (auto& x : p) x /= sum;
  return p;
}

// Deals `items` into `parts` contiguous chunks with floor boundaries, so sizes differ by <= 1.
void deal_evenly(const std::vector<int64_t>& items, const std::vector<int>& targets,
                 Clients& out) {
  const std::size_t n = items.size();
  const std::size_t parts = targets.size();
  for (std::size_t c = 0; c < parts; ++c) {
    const std::size_t lo = c * n / parts;
    const std::size_t hi = (c + 1) * n / parts;
    auto& dst = out[static_cast<std::size_t>(targets[c])];
    dst.insert(dst.end(), items.begin() + static_cast<std::ptrdiff_t>(lo),
               items.begin() + static_cast<std::ptrdiff_t>(hi));
  }
}

std::vector<int64_t> iota_indices(std::size_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

Clients partition_iid(std::size_t n, const PartitionSpec& spec, Rng& rng) {
  auto idx = iota_indices(n);
  fisher_yates(idx, rng);
  Clients out(static_cast<std::size_t>(spec.clients));
  std::vector<int> all(static_cast<std::size_t>(spec.clients));
  std::iota(all.begin(), all.end(), 0);
  deal_evenly(idx, all, out);
  return out;
}

// Shard s covers the sorted range [start(s), start(s+1)) where the first `shards - rem` shards
// hold n / shards samples and the last `rem = n % shards` shards hold one more, so every index
// lands in exactly one shard. Putting the extras at the end (rather than round-robin) keeps the
// shards of the low labels exactly aligned with class boundaries in the balanced case.
Clients partition_shards(const std::vector<int64_t>& labels, const PartitionSpec& spec,
                         Rng& rng) {
  const int64_t n = static_cast<int64_t>(labels.size());
  if (spec.shards_per_client < 1) {
    fail("partition.shards_per_client (" + std::to_string(spec.shards_per_client) +
         ") must be >= 1");
  }
  const int64_t wanted = int64_t{spec.clients} * spec.shards_per_client;
  if (spec.shards != wanted) {
    fail("partition.shards (" + std::to_string(spec.shards) + ") must equal clients (" +
         std::to_string(spec.clients) + ") × shards_per_client (" +
         std::to_string(spec.shards_per_client) + ") = " + std::to_string(wanted));
  }
  if (spec.shards > n) {
    fail("partition.shards (" + std::to_string(spec.shards) + ") exceeds the number of samples (" +
         std::to_string(n) + ")");
  }
  auto sorted = iota_indices(labels.size());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int64_t a, int64_t b) { return labels[a] < labels[b]; });

  const int64_t shards = spec.shards;
  const int64_t base = n / shards;
  const int64_t rem = n % shards;
  auto shard_start = [&](int64_t s) { return s * base + std::max<int64_t>(0, s - (shards - rem)); };

  std::vector<int64_t> perm = iota_indices(static_cast<std::size_t>(shards));
  fisher_yates(perm, rng);

  Clients out(static_cast<std::size_t>(spec.clients));
  for (int64_t c = 0; c < spec.clients; ++c) {
    for (int64_t j = 0; j < spec.shards_per_client; ++j) {
      const int64_t s = perm[static_cast<std::size_t>(c * spec.shards_per_client + j)];
      auto& dst = out[static_cast<std::size_t>(c)];
      dst.insert(dst.end(), sorted.begin() + shard_start(s), sorted.begin() + shard_start(s + 1));
    }
  }
  return out;
}

Clients partition_dirichlet(const std::vector<int64_t>& labels, int64_t num_classes,
                            const PartitionSpec& spec, Rng& rng) {
  if (!(spec.beta > 0.0) || !std::isfinite(spec.beta)) {
    fail("partition.beta (" + std::to_string(spec.beta) + ") must be a finite value > 0");
  }
  const std::size_t clients = static_cast<std::size_t>(spec.clients);
  if (labels.size() < clients) {
    fail("partition.clients (" + std::to_string(spec.clients) +
         ") exceeds the number of samples (" + std::to_string(labels.size()) +
         "): some client would be empty");
  }
  std::vector<std::vector<int64_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  }

  std::vector<std::size_t> order(clients);
  std::iota(order.begin(), order.end(), std::size_t{0});
  constexpr int kMaxTries = 100;
  for (int attempt = 0; attempt < kMaxTries; ++attempt) {
    Clients out(clients);
    for (auto& members : by_class) {
      if (members.empty()) continue; // no draw: an absent class cannot help any client
      fisher_yates(members, rng);
      const auto p = dirichlet_draw(spec.beta, clients, rng);
      // The cumulative floor rule always leaves the last segment >= 1 sample while the first
      // needs p * m >= 1, so with a fixed order high-numbered clients would survive the
      // all-non-empty retry more often; walking clients in a fresh random order per class
      // removes that positional bias without changing the Dirichlet law (it is exchangeable).
      fisher_yates(order, rng);
      const double m = static_cast<double>(members.size());
      double cum = 0;
      std::size_t lo = 0;
      for (std::size_t j = 0; j < clients; ++j) {
        const std::size_t c = order[j];
        cum += p[c];
        // The last boundary is pinned to m: the rounded cumulative sum may fall just short of 1.
        std::size_t hi = j + 1 == clients ? members.size()
                                          : static_cast<std::size_t>(std::floor(m * cum));
        hi = std::clamp(hi, lo, members.size());
        out[c].insert(out[c].end(), members.begin() + static_cast<std::ptrdiff_t>(lo),
                      members.begin() + static_cast<std::ptrdiff_t>(hi));
        lo = hi;
      }
    }
    const bool all_filled =
        std::none_of(out.begin(), out.end(), [](const auto& v) { return v.empty(); });
    if (all_filled) return out;
  }
  std::ostringstream msg;
  msg << "partition.beta (" << spec.beta << ") with partition.clients (" << spec.clients
      << ") is too extreme for the data (" << labels.size() << " samples): after " << kMaxTries
      << " Dirichlet draws some client still had no samples; raise beta or lower clients";
  fail(msg.str());
}

// Labels outside every group are left out on purpose: the scheme models clients that only ever
// see their group's classes, so ungrouped classes belong to nobody.
Clients partition_by_label_group(const std::vector<int64_t>& labels, int64_t num_classes,
                                 const PartitionSpec& spec, Rng& rng) {
  const auto& groups = spec.label_groups;
  if (groups.empty()) fail("partition.label_groups must be non-empty for by_label_group");
  const std::size_t g_count = groups.size();
  if (static_cast<std::size_t>(spec.clients) < g_count) {
    fail("partition.clients (" + std::to_string(spec.clients) + ") is fewer than the " +
         std::to_string(g_count) + " partition.label_groups: group " +
         std::to_string(spec.clients) + " would have no clients");
  }
  std::vector<int64_t> group_of(static_cast<std::size_t>(num_classes), -1);
  for (std::size_t g = 0; g < g_count; ++g) {
    for (const int64_t label : groups[g]) {
      if (label < 0 || label >= num_classes) {
        fail("partition.label_groups[" + std::to_string(g) + "] holds label " +
             std::to_string(label) + " outside [0, " + std::to_string(num_classes) + ")");
      }
      auto& slot = group_of[static_cast<std::size_t>(label)];
      if (slot != -1) {
        fail("partition.label_groups: label " + std::to_string(label) + " appears in group " +
             std::to_string(slot) + " and group " + std::to_string(g) +
             " (each label may be in at most one group)");
      }
      slot = static_cast<int64_t>(g);
    }
  }
  std::vector<std::vector<int64_t>> members(g_count);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int64_t g = group_of[static_cast<std::size_t>(labels[i])];
    if (g >= 0) members[static_cast<std::size_t>(g)].push_back(static_cast<int64_t>(i));
  }
  Clients out(static_cast<std::size_t>(spec.clients));
  for (std::size_t g = 0; g < g_count; ++g) {
    if (members[g].empty()) {
      fail("partition.label_groups[" + std::to_string(g) + "] has no samples in the data");
    }
    std::vector<int> targets;
    for (int c = static_cast<int>(g); c < spec.clients; c += static_cast<int>(g_count)) {
      targets.push_back(c);
    }
    fisher_yates(members[g], rng);
    deal_evenly(members[g], targets, out);
  }
  return out;
}

// Each client draws samples_per_client distinct indices of [0, n) with Floyd's algorithm: for
// j = n - s .. n - 1 take t uniform in [0, j], or j itself when t is already drawn. Every
// s-subset is equally likely, and the cost is O(s) per client, not O(n). `drawn_by` marks an
// index with the last client (plus one) that drew it, so one O(n) array serves every client
// without clearing.
Clients partition_sampled(std::size_t n, const PartitionSpec& spec, Rng& rng) {
  const int64_t s = spec.samples_per_client;
  if (s < 1) {
    fail("partition.samples_per_client (" + std::to_string(s) +
         ") must be >= 1 for partition.scheme = \"sampled\": the number of samples each client "
         "draws from the pool");
  }
  if (static_cast<uint64_t>(s) > n) {
    fail("partition.samples_per_client (" + std::to_string(s) + ") exceeds the number of samples (" +
         std::to_string(n) + "): a client draws its samples without replacement");
  }
  std::vector<uint32_t> drawn_by(n, 0);
  Clients out(static_cast<std::size_t>(spec.clients));
  for (std::size_t c = 0; c < out.size(); ++c) {
    const auto mark = static_cast<uint32_t>(c + 1);
    auto& mine = out[c];
    mine.reserve(static_cast<std::size_t>(s));
    for (uint64_t j = n - static_cast<uint64_t>(s); j < n; ++j) {
      uint64_t t = uniform_below(rng, j + 1);
      if (drawn_by[t] == mark) t = j; // j is above every earlier draw of this client: never drawn
      drawn_by[t] = mark;
      mine.push_back(static_cast<int64_t>(t));
    }
  }
  return out;
}

} // namespace

std::vector<std::vector<int64_t>> partition_indices(const std::vector<int64_t>& labels,
                                                    int64_t num_classes,
                                                    const PartitionSpec& spec) {
  if (spec.clients < 1) {
    fail("partition.clients (" + std::to_string(spec.clients) + ") must be >= 1");
  }
  if (num_classes < 1) {
    fail("partition num_classes (" + std::to_string(num_classes) + ") must be >= 1");
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      fail("partition labels[" + std::to_string(i) + "] = " + std::to_string(labels[i]) +
           " is outside [0, num_classes = " + std::to_string(num_classes) + ")");
    }
  }
  Rng rng(spec.seed);
  Clients out;
  switch (spec.scheme) {
  case PartitionScheme::iid: out = partition_iid(labels.size(), spec, rng); break;
  case PartitionScheme::shards: out = partition_shards(labels, spec, rng); break;
  case PartitionScheme::dirichlet: out = partition_dirichlet(labels, num_classes, spec, rng); break;
  case PartitionScheme::by_label_group:
    out = partition_by_label_group(labels, num_classes, spec, rng);
    break;
  case PartitionScheme::by_domain: {
    PartitionSpec grouped = spec;
    grouped.label_groups.clear();
    const int64_t groups = std::min<int64_t>(num_classes, spec.clients);
    grouped.label_groups.resize(static_cast<std::size_t>(groups));
    for (int64_t d = 0; d < num_classes; ++d) grouped.label_groups[static_cast<std::size_t>(d % groups)].push_back(d);
    out = partition_by_label_group(labels, num_classes, grouped, rng);
    break;
  }
  case PartitionScheme::sampled: out = partition_sampled(labels.size(), spec, rng); break;
  default: fail("partition.scheme has an unknown value");
  }
  for (std::size_t c = 0; c < out.size(); ++c) {
    if (out[c].empty()) {
      fail("partition (" + to_string(spec.scheme) + "): client " + std::to_string(c) +
           " received no samples (" + std::to_string(labels.size()) + " samples, " +
           std::to_string(spec.clients) + " partition.clients)");
    }
    std::sort(out[c].begin(), out[c].end());
  }
  return out;
}

LocalSplit split_train_test(const std::vector<int64_t>& indices, double test_fraction,
                            uint64_t seed) {
  if (!(test_fraction >= 0.0 && test_fraction < 1.0)) {
    fail("split test_fraction (" + std::to_string(test_fraction) + ") must be in [0, 1)");
  }
  std::vector<int64_t> shuffled = indices;
  Rng rng(seed);
  fisher_yates(shuffled, rng);
  const std::size_t n = shuffled.size();
  // The epsilon absorbs representation error: (1 - 0.7) * 10 is 3.0000000000000004 in doubles,
  // and a bare ceil would move a sample from test to train.
  std::size_t n_train = static_cast<std::size_t>(
      std::ceil((1.0 - test_fraction) * static_cast<double>(n) - 1e-9));
  n_train = std::min(n_train, n);
  if (n >= 2 && test_fraction > 0.0) n_train = std::clamp<std::size_t>(n_train, 1, n - 1);
  LocalSplit split;
  split.train.assign(shuffled.begin(), shuffled.begin() + static_cast<std::ptrdiff_t>(n_train));
  split.test.assign(shuffled.begin() + static_cast<std::ptrdiff_t>(n_train), shuffled.end());
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.test.begin(), split.test.end());
  return split;
}

const EnumNames<PartitionScheme>& enum_names(PartitionScheme) {
  static const EnumNames<PartitionScheme> names = {
      {PartitionScheme::iid, "iid"},
      {PartitionScheme::shards, "shards"},
      {PartitionScheme::dirichlet, "dirichlet"},
      {PartitionScheme::by_label_group, "by_label_group"},
      {PartitionScheme::by_domain, "by_domain", "VQA"},
      {PartitionScheme::sampled, "sampled", "each client draws partition.samples_per_client; clients may share samples"},
  };
  return names;
}

PartitionScheme partition_scheme_from_string(const std::string& name) {
  return parse_name(enum_names(PartitionScheme{}), name, "partition scheme");
}

} // namespace fedvlm
