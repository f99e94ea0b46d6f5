// tests/fl/data/partition_test.cpp — coverage, disjointness, determinism, skew and errors of partitions
// (and, for the sampled scheme, independent uniform draws per client).
#include "fl/data/partition.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

using Parts = std::vector<std::vector<int64_t>>;

// Labels 0..classes-1 interleaved (i % classes) so that any scheme relying on label order must
// actually sort rather than get a pre-sorted vector for free.
std::vector<int64_t> balanced_labels(int64_t n, int64_t classes) {
  std::vector<int64_t> y(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = i % classes;
  return y;
}

// Each client non-empty and sorted, clients pairwise disjoint, union exactly `expected`.
void expect_valid_partition(const Parts& parts, int clients, const std::vector<int64_t>& expected) {
  ASSERT_EQ(parts.size(), static_cast<std::size_t>(clients));
  std::vector<int64_t> all;
  for (std::size_t c = 0; c < parts.size(); ++c) {
    EXPECT_FALSE(parts[c].empty()) << "client " << c;
    EXPECT_TRUE(std::is_sorted(parts[c].begin(), parts[c].end())) << "client " << c;
    all.insert(all.end(), parts[c].begin(), parts[c].end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "an index is duplicated";
  EXPECT_EQ(all, expected);
}

std::vector<int64_t> all_indices(std::size_t n) {
  std::vector<int64_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

std::set<int64_t> labels_of(const std::vector<int64_t>& idx, const std::vector<int64_t>& y) {
  std::set<int64_t> s;
  for (const auto i : idx) s.insert(y[static_cast<std::size_t>(i)]);
  return s;
}

// Mean over clients of the fraction of a client's samples carrying its most common label:
// 1/classes-ish when IID, approaching 1 when each client sees one class.
double mean_max_label_fraction(const Parts& parts, const std::vector<int64_t>& y) {
  double sum = 0;
  for (const auto& p : parts) {
    std::map<int64_t, int64_t> counts;
    for (const auto i : p) ++counts[y[static_cast<std::size_t>(i)]];
    int64_t top = 0;
    for (const auto& [label, n] : counts) top = std::max(top, n);
    sum += static_cast<double>(top) / static_cast<double>(p.size());
  }
  return sum / static_cast<double>(parts.size());
}

// Runs `f`, requiring std::invalid_argument whose message contains `needle`.
template <typename F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected std::invalid_argument mentioning \"" << needle << "\"";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
  }
}

PartitionSpec spec_of(PartitionScheme scheme, int clients, uint64_t seed) {
  PartitionSpec s;
  s.scheme = scheme;
  s.clients = clients;
  s.seed = seed;
  return s;
}

// ---- iid -----------------------------------------------------------------------------------

TEST(PartitionIid, CoversAllIndicesDisjointAndNearlyEqualSizes) {
  const auto y = balanced_labels(103, 10);
  const auto parts = partition_indices(y, 10, spec_of(PartitionScheme::iid, 7, 1));
  expect_valid_partition(parts, 7, all_indices(103));
  for (const auto& p : parts) {
    EXPECT_GE(p.size(), 14u); // 103 / 7 = 14.7
    EXPECT_LE(p.size(), 15u);
  }
}

TEST(PartitionIid, ReproducibleForSameSeedAndDifferentForAnother) {
  const auto y = balanced_labels(500, 10);
  const auto a = partition_indices(y, 10, spec_of(PartitionScheme::iid, 5, 42));
  const auto b = partition_indices(y, 10, spec_of(PartitionScheme::iid, 5, 42));
  const auto c = partition_indices(y, 10, spec_of(PartitionScheme::iid, 5, 43));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(PartitionIid, ActuallyShufflesRatherThanSlicing) {
  const auto y = balanced_labels(100, 10);
  const auto parts = partition_indices(y, 10, spec_of(PartitionScheme::iid, 2, 3));
  // Contiguous slicing would give client 0 exactly 0..49.
  EXPECT_NE(parts[0], std::vector<int64_t>(all_indices(50)));
}

TEST(PartitionIid, SingleClientTakesEverything) {
  const auto y = balanced_labels(17, 3);
  const auto parts = partition_indices(y, 3, spec_of(PartitionScheme::iid, 1, 9));
  expect_valid_partition(parts, 1, all_indices(17));
}

TEST(PartitionIid, MoreClientsThanSamplesNamesTheEmptyClient) {
  const auto y = balanced_labels(3, 3);
  // Floor boundaries 0, 0, 1, 1, 2, 3: clients 0 and 3 are empty; the first is reported.
  expect_invalid([&] { (void)partition_indices(y, 3, spec_of(PartitionScheme::iid, 5, 0)); },
                 "client 0 received no samples");
}

// ---- shards --------------------------------------------------------------------------------

PartitionSpec shard_spec(int clients, int shards, int per_client, uint64_t seed) {
  auto s = spec_of(PartitionScheme::shards, clients, seed);
  s.shards = shards;
  s.shards_per_client = per_client;
  return s;
}

TEST(PartitionShards, FedVlmSetupGivesEachClientAtMostTwoLabels) {
  // 4,000 samples, 10 balanced classes (400 each), 80 shards of 50: 8 single-label shards per
  // class, so a client holding 2 shards can see at most 2 labels.
  const auto y = balanced_labels(4000, 10);
  const auto parts = partition_indices(y, 10, shard_spec(40, 80, 2, 7));
  expect_valid_partition(parts, 40, all_indices(4000));
  int two_label_clients = 0;
  for (std::size_t c = 0; c < parts.size(); ++c) {
    EXPECT_EQ(parts[c].size(), 100u) << "client " << c;
    const auto labels = labels_of(parts[c], y);
    EXPECT_LE(labels.size(), 2u) << "client " << c;
    two_label_clients += labels.size() == 2 ? 1 : 0;
  }
  // Shard ids are shuffled, so most clients pair shards of different classes.
  EXPECT_GT(two_label_clients, 20);
}

TEST(PartitionShards, ReproducibleForSameSeedAndDifferentForAnother) {
  const auto y = balanced_labels(4000, 10);
  const auto a = partition_indices(y, 10, shard_spec(40, 80, 2, 11));
  const auto b = partition_indices(y, 10, shard_spec(40, 80, 2, 11));
  const auto c = partition_indices(y, 10, shard_spec(40, 80, 2, 12));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(PartitionShards, UnevenCountStillCoversEveryIndex) {
  // 103 samples in 10 shards: seven of 10 and the last three of 11.
  const auto y = balanced_labels(103, 4);
  const auto parts = partition_indices(y, 4, shard_spec(5, 10, 2, 5));
  expect_valid_partition(parts, 5, all_indices(103));
  for (const auto& p : parts) {
    EXPECT_GE(p.size(), 20u);
    EXPECT_LE(p.size(), 22u);
  }
}

TEST(PartitionShards, ShardsAreContiguousInLabelOrder) {
  // With 2 classes of 50 and 10 shards of 10, every shard is single-label, and a client's two
  // shards can hold at most 2 labels, each label's count a multiple of 10.
  const auto y = balanced_labels(100, 2);
  const auto parts = partition_indices(y, 2, shard_spec(5, 10, 2, 8));
  for (const auto& p : parts) {
    std::map<int64_t, int64_t> counts;
    for (const auto i : p) ++counts[y[static_cast<std::size_t>(i)]];
    for (const auto& [label, n] : counts) EXPECT_EQ(n % 10, 0) << "label " << label;
  }
}

TEST(PartitionShards, ShardCountMustEqualClientsTimesPerClient) {
  const auto y = balanced_labels(4000, 10);
  expect_invalid([&] { (void)partition_indices(y, 10, shard_spec(30, 80, 2, 0)); },
                 "partition.shards (80) must equal clients (30)");
}

TEST(PartitionShards, MoreShardsThanSamplesThrows) {
  const auto y = balanced_labels(50, 10);
  expect_invalid([&] { (void)partition_indices(y, 10, shard_spec(40, 80, 2, 0)); },
                 "partition.shards (80) exceeds");
}

TEST(PartitionShards, ShardsPerClientMustBePositive) {
  const auto y = balanced_labels(50, 10);
  expect_invalid([&] { (void)partition_indices(y, 10, shard_spec(5, 0, 0, 0)); },
                 "partition.shards_per_client");
}

// ---- dirichlet -----------------------------------------------------------------------------

PartitionSpec dirichlet_spec(int clients, double beta, uint64_t seed) {
  auto s = spec_of(PartitionScheme::dirichlet, clients, seed);
  s.beta = beta;
  return s;
}

TEST(PartitionDirichlet, CoversAllIndicesAndIsReproducible) {
  const auto y = balanced_labels(2000, 10);
  const auto a = partition_indices(y, 10, dirichlet_spec(10, 0.5, 21));
  const auto b = partition_indices(y, 10, dirichlet_spec(10, 0.5, 21));
  const auto c = partition_indices(y, 10, dirichlet_spec(10, 0.5, 22));
  expect_valid_partition(a, 10, all_indices(2000));
  expect_valid_partition(c, 10, all_indices(2000));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(PartitionDirichlet, SmallBetaIsMoreSkewedThanLargeBeta) {
  const auto y = balanced_labels(2000, 10);
  const double skewed = mean_max_label_fraction(
      partition_indices(y, 10, dirichlet_spec(10, 0.1, 3)), y);
  const double flat = mean_max_label_fraction(
      partition_indices(y, 10, dirichlet_spec(10, 100.0, 3)), y);
  // IID would give about 0.1 plus sampling noise; beta = 0.1 concentrates most clients on one
  // or two classes.
  EXPECT_LT(flat, 0.25);
  EXPECT_GT(skewed, 0.5);
  EXPECT_GT(skewed, flat + 0.3);
}

TEST(PartitionDirichlet, TinyBetaStillWorksNumerically) {
  // beta = 0.05 with plenty of data per client: the log-space gamma sampler must not produce
  // NaN proportions (which would lose or duplicate indices).
  const auto y = balanced_labels(3000, 30);
  const auto parts = partition_indices(y, 30, dirichlet_spec(3, 0.05, 4));
  expect_valid_partition(parts, 3, all_indices(3000));
}

TEST(PartitionDirichlet, ExtremeBetaForTheDataThrows) {
  // Two classes, 20 clients, beta = 1e-3: each class lands almost whole on one client, so most
  // clients stay empty on every retry.
  const auto y = balanced_labels(200, 2);
  expect_invalid([&] { (void)partition_indices(y, 2, dirichlet_spec(20, 1e-3, 0)); },
                 "too extreme");
  expect_invalid([&] { (void)partition_indices(y, 2, dirichlet_spec(20, 1e-3, 0)); },
                 "partition.beta");
}

TEST(PartitionDirichlet, NonPositiveOrNonFiniteBetaThrows) {
  const auto y = balanced_labels(100, 10);
  for (const double beta : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                            std::numeric_limits<double>::infinity()}) {
    expect_invalid([&] { (void)partition_indices(y, 10, dirichlet_spec(4, beta, 0)); },
                   "partition.beta");
  }
}

TEST(PartitionDirichlet, MoreClientsThanSamplesThrows) {
  const auto y = balanced_labels(5, 5);
  expect_invalid([&] { (void)partition_indices(y, 5, dirichlet_spec(6, 1.0, 0)); },
                 "partition.clients (6)");
}

// ---- by_label_group ------------------------------------------------------------------------

PartitionSpec group_spec(int clients, std::vector<std::vector<int64_t>> groups, uint64_t seed) {
  auto s = spec_of(PartitionScheme::by_label_group, clients, seed);
  s.label_groups = std::move(groups);
  return s;
}

TEST(PartitionByLabelGroup, ClientsSeeOnlyTheirGroupAndUngroupedLabelsAreUnused) {
  const auto y = balanced_labels(500, 5); // label 4 is in no group
  const auto parts = partition_indices(y, 5, group_spec(5, {{0, 1}, {2, 3}}, 13));
  std::vector<int64_t> grouped;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (y[i] != 4) grouped.push_back(static_cast<int64_t>(i));
  }
  expect_valid_partition(parts, 5, grouped);
  for (std::size_t c = 0; c < parts.size(); ++c) {
    const auto labels = labels_of(parts[c], y);
    const std::set<int64_t> allowed = c % 2 == 0 ? std::set<int64_t>{0, 1} : std::set<int64_t>{2, 3};
    EXPECT_TRUE(std::includes(allowed.begin(), allowed.end(), labels.begin(), labels.end()))
        << "client " << c;
  }
  // Group 0 (200 samples) goes to clients 0, 2, 4; group 1 (200 samples) to clients 1, 3.
  for (const int c : {0, 2, 4}) {
    EXPECT_GE(parts[static_cast<std::size_t>(c)].size(), 66u);
    EXPECT_LE(parts[static_cast<std::size_t>(c)].size(), 67u);
  }
  EXPECT_EQ(parts[1].size(), 100u);
  EXPECT_EQ(parts[3].size(), 100u);
}

TEST(PartitionByLabelGroup, ReproducibleForSameSeedAndDifferentForAnother) {
  const auto y = balanced_labels(400, 4);
  const auto a = partition_indices(y, 4, group_spec(4, {{0, 1}, {2, 3}}, 1));
  const auto b = partition_indices(y, 4, group_spec(4, {{0, 1}, {2, 3}}, 1));
  const auto c = partition_indices(y, 4, group_spec(4, {{0, 1}, {2, 3}}, 2));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(PartitionByLabelGroup, InvalidGroupsThrow) {
  const auto y = balanced_labels(100, 5);
  expect_invalid([&] { (void)partition_indices(y, 5, group_spec(3, {}, 0)); },
                 "partition.label_groups must be non-empty");
  expect_invalid([&] { (void)partition_indices(y, 5, group_spec(3, {{0}, {7}}, 0)); },
                 "partition.label_groups[1]");
  expect_invalid([&] { (void)partition_indices(y, 5, group_spec(3, {{0, 1}, {1, 2}}, 0)); },
                 "label 1 appears in group 0 and group 1");
  expect_invalid([&] { (void)partition_indices(y, 5, group_spec(2, {{0}, {1}, {2}}, 0)); },
                 "partition.clients (2)");
}

TEST(PartitionByLabelGroup, GroupWithoutSamplesThrows) {
  const std::vector<int64_t> y = {0, 0, 1, 1}; // num_classes 3, label 2 absent
  expect_invalid([&] { (void)partition_indices(y, 3, group_spec(2, {{0, 1}, {2}}, 0)); },
                 "partition.label_groups[1] has no samples");
}

TEST(PartitionByLabelGroup, GroupWithFewerSamplesThanClientsNamesTheEmptyClient) {
  const std::vector<int64_t> y = {0, 1, 1, 1, 1};
  // Group 0 ({0}: one sample) is dealt to clients 0 and 2 with floor boundaries
  // (0, 0, 1), so client 0 gets nothing.
  expect_invalid([&] { (void)partition_indices(y, 2, group_spec(4, {{0}, {1}}, 0)); },
                 "client 0 received no samples");
}

// ---- sampled -------------------------------------------------------------------------------

PartitionSpec sampled_spec(int clients, int per_client, uint64_t seed) {
  auto s = spec_of(PartitionScheme::sampled, clients, seed);
  s.samples_per_client = per_client;
  return s;
}

// Each client: exactly `per_client` indices, strictly ascending (so distinct), inside [0, n).
void expect_valid_samples(const Parts& parts, int clients, int per_client, int64_t n) {
  ASSERT_EQ(parts.size(), static_cast<std::size_t>(clients));
  for (std::size_t c = 0; c < parts.size(); ++c) {
    const auto& p = parts[c];
    ASSERT_EQ(p.size(), static_cast<std::size_t>(per_client)) << "client " << c;
    EXPECT_EQ(std::adjacent_find(p.begin(), p.end(), std::greater_equal<>()), p.end())
        << "client " << c << ": not strictly ascending (unsorted or a repeated index)";
    EXPECT_GE(p.front(), 0) << "client " << c;
    EXPECT_LT(p.back(), n) << "client " << c;
  }
}

TEST(PartitionSampled, MoreClientsThanSamplesEachGetsDistinctSortedInRangeIndices) {
  const auto y = balanced_labels(50, 5);
  const auto parts = partition_indices(y, 5, sampled_spec(1000, 3, 11));
  expect_valid_samples(parts, 1000, 3, 50);
  // 3000 draws over 50 samples: samples are shared, and (with 1000 clients) every one is used.
  std::set<int64_t> used;
  for (const auto& p : parts) used.insert(p.begin(), p.end());
  EXPECT_EQ(used.size(), 50u);
  // Clients are not copies of one another: 1000 clients over C(50, 3) = 19600 subsets.
  EXPECT_GT(std::set<std::vector<int64_t>>(parts.begin(), parts.end()).size(), 900u);
}

TEST(PartitionSampled, EveryClientCanHoldTheWholePool) {
  const auto y = balanced_labels(7, 7);
  const auto parts = partition_indices(y, 7, sampled_spec(4, 7, 2));
  for (const auto& p : parts) EXPECT_EQ(p, all_indices(7));
}

TEST(PartitionSampled, DeterministicInTheSeed) {
  const auto y = balanced_labels(200, 10);
  const auto a = partition_indices(y, 10, sampled_spec(300, 8, 42));
  const auto b = partition_indices(y, 10, sampled_spec(300, 8, 42));
  const auto c = partition_indices(y, 10, sampled_spec(300, 8, 43));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Clients draw one after another from one stream: client 0's draw does not depend on how
  // many clients follow it.
  EXPECT_EQ(partition_indices(y, 10, sampled_spec(1, 8, 42)).front(), a.front());
}

// The pool's labels come in contiguous, unequal blocks (label 0 on indices 0..499, 1 on
// 500..799, 2 on 800..949, 3 on 950..999), so a draw that favours low or high indices shows up
// as a label share away from the pool's: 50 %, 30 %, 15 %, 5 %.
TEST(PartitionSampled, LabelSharesAndIndexUseOverAPopulationMatchThePool) {
  constexpr int64_t n = 1000;
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = i < 500 ? 0 : i < 800 ? 1 : i < 950 ? 2 : 3;
  constexpr int clients = 20000, per_client = 5;
  const auto parts = partition_indices(y, 4, sampled_spec(clients, per_client, 7));
  std::vector<double> label_count(4, 0);
  std::vector<int64_t> index_count(n, 0);
  for (const auto& p : parts)
    for (const int64_t i : p) {
      ++label_count[static_cast<std::size_t>(y[static_cast<std::size_t>(i)])];
      ++index_count[static_cast<std::size_t>(i)];
    }
  // Each draw is uniform over the pool, so a label's share of the N = 100000 draws has mean p
  // and a standard deviation of at most sqrt(p (1 - p) / N) <= 0.0016 (draws within one client
  // are without replacement, which only lowers the variance): 0.01 is over 6 deviations.
  const double draws = static_cast<double>(clients) * per_client;
  const std::vector<double> pool_share = {0.50, 0.30, 0.15, 0.05};
  for (std::size_t l = 0; l < 4; ++l)
    EXPECT_NEAR(label_count[l] / draws, pool_share[l], 0.01) << "label " << l;
  // Each index is held by a Binomial(20000, 5 / 1000) number of clients: mean 100, standard
  // deviation ~10. [50, 150] is 5 deviations either side (about 6e-7 per index, 6e-4 for all
  // 1000 at once), and catches an index drawn never or twice as often as the rest.
  const auto [lo, hi] = std::minmax_element(index_count.begin(), index_count.end());
  EXPECT_GE(*lo, 50) << "index " << (lo - index_count.begin());
  EXPECT_LE(*hi, 150) << "index " << (hi - index_count.begin());
}

TEST(PartitionSampled, MoreSamplesPerClientThanThePoolThrows) {
  const auto y = balanced_labels(10, 2);
  expect_invalid([&] { (void)partition_indices(y, 2, sampled_spec(3, 11, 0)); },
                 "partition.samples_per_client (11) exceeds the number of samples (10)");
}

TEST(PartitionSampled, MissingSamplesPerClientThrowsNamingTheKey) {
  const auto y = balanced_labels(10, 2);
  // spec_of leaves samples_per_client at its default: not set.
  expect_invalid([&] { (void)partition_indices(y, 2, spec_of(PartitionScheme::sampled, 3, 0)); },
                 "partition.samples_per_client (0) must be >= 1");
  expect_invalid([&] { (void)partition_indices(y, 2, sampled_spec(3, -2, 0)); },
                 "partition.samples_per_client (-2) must be >= 1");
}

// ---- common validation ---------------------------------------------------------------------

TEST(PartitionValidation, ClientsMustBePositive) {
  const auto y = balanced_labels(10, 2);
  for (const auto scheme : {PartitionScheme::iid, PartitionScheme::shards, PartitionScheme::dirichlet,
                            PartitionScheme::by_label_group, PartitionScheme::sampled}) {
    expect_invalid([&] { (void)partition_indices(y, 2, spec_of(scheme, 0, 0)); },
                   "partition.clients (0)");
  }
}

TEST(PartitionValidation, LabelOutsideNumClassesThrows) {
  const std::vector<int64_t> y = {0, 1, 5};
  expect_invalid([&] { (void)partition_indices(y, 3, spec_of(PartitionScheme::iid, 1, 0)); },
                 "labels[2]");
}

// ---- split_train_test ----------------------------------------------------------------------

TEST(SplitTrainTest, SizesFollowCeilOfTrainFraction) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < 10; ++i) idx.push_back(i * 3 + 1);
  const auto s = split_train_test(idx, 0.2, 5);
  EXPECT_EQ(s.train.size(), 8u);
  EXPECT_EQ(s.test.size(), 2u);
  // (1 - 0.7) * 10 is 3.0000000000000004 in doubles: still 3 train, not 4.
  const auto t = split_train_test(idx, 0.7, 5);
  EXPECT_EQ(t.train.size(), 3u);
  EXPECT_EQ(t.test.size(), 7u);
  // ceil((1 - 0.25) * 10) = ceil(7.5) = 8.
  EXPECT_EQ(split_train_test(idx, 0.25, 5).train.size(), 8u);
}

TEST(SplitTrainTest, DisjointCoveringSortedAndSeeded) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < 40; ++i) idx.push_back(i * 2);
  const auto a = split_train_test(idx, 0.3, 17);
  EXPECT_TRUE(std::is_sorted(a.train.begin(), a.train.end()));
  EXPECT_TRUE(std::is_sorted(a.test.begin(), a.test.end()));
  std::vector<int64_t> all = a.train;
  all.insert(all.end(), a.test.begin(), a.test.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, idx);
  const auto b = split_train_test(idx, 0.3, 17);
  const auto c = split_train_test(idx, 0.3, 18);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.test, c.test);
  // A shuffled split, not the tail of the input.
  EXPECT_NE(a.test, std::vector<int64_t>(idx.end() - static_cast<std::ptrdiff_t>(a.test.size()),
                                         idx.end()));
}

TEST(SplitTrainTest, SmallClientsKeepOneOnEachSide) {
  const auto two = split_train_test({4, 9}, 0.01, 0); // ceil(1.98) = 2 would leave test empty
  EXPECT_EQ(two.train.size(), 1u);
  EXPECT_EQ(two.test.size(), 1u);
  const auto many = split_train_test({1, 2, 3, 4, 5}, 0.95, 0); // ceil(0.25) = 1 train
  EXPECT_EQ(many.train.size(), 1u);
  EXPECT_EQ(many.test.size(), 4u);
  const auto one = split_train_test({7}, 0.5, 0);
  EXPECT_EQ(one.train, std::vector<int64_t>{7});
  EXPECT_TRUE(one.test.empty());
  const auto none = split_train_test({}, 0.5, 0);
  EXPECT_TRUE(none.train.empty());
  EXPECT_TRUE(none.test.empty());
}

TEST(SplitTrainTest, ZeroFractionPutsEverythingInTrain) {
  const auto s = split_train_test({5, 3, 1}, 0.0, 2);
  EXPECT_EQ(s.train, (std::vector<int64_t>{1, 3, 5}));
  EXPECT_TRUE(s.test.empty());
}

TEST(SplitTrainTest, FractionOutsideRangeThrows) {
  for (const double f : {-0.1, 1.0, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    expect_invalid([&] { (void)split_train_test({1, 2, 3}, f, 0); }, "test_fraction");
  }
}

// ---- names ---------------------------------------------------------------------------------

TEST(PartitionSchemeNames, RoundTrip) {
  for (const auto s : {PartitionScheme::iid, PartitionScheme::shards, PartitionScheme::dirichlet,
                       PartitionScheme::by_label_group, PartitionScheme::by_domain, PartitionScheme::sampled}) {
    EXPECT_EQ(partition_scheme_from_string(to_string(s)), s);
  }
  EXPECT_EQ(to_string(PartitionScheme::sampled), "sampled");
  EXPECT_EQ(to_string(PartitionScheme::by_label_group), "by_label_group");
  EXPECT_EQ(partition_scheme_from_string("dirichlet"), PartitionScheme::dirichlet);
}

TEST(PartitionSchemeNames, UnknownNameListsValidNames) {
  expect_invalid([] { (void)partition_scheme_from_string("IID"); }, "iid, shards, dirichlet, by_label_group");
  expect_invalid([] { (void)partition_scheme_from_string("pathological"); }, "'pathological'");
}

} // namespace
} // namespace fedvlm
