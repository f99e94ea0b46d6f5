// fl/partition.hpp — how a dataset is split across simulated clients (IID and non-IID schemes).
//
// Pure functions over label vectors: deterministic in the seed, no LibTorch, no actors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fedvlm {

enum class PartitionScheme { iid, shards, dirichlet, by_label_group };

struct PartitionSpec {
  PartitionScheme scheme = PartitionScheme::iid;
  int clients = 2;
  uint64_t seed = 0;
  int shards = 0;            ///< shards: total shard count (e.g. 80)
  int shards_per_client = 2; ///< shards: shards each client receives (clients × this == shards)
  double beta = 0.5;         ///< dirichlet: concentration; small = more skewed
  /// by_label_group: groups of labels; client c draws from group c % groups.size(), and the
  /// samples of a group are split IID among the clients assigned to it.
  std::vector<std::vector<int64_t>> label_groups;
};

/// Sample indices (into `labels`) per client. Every index appears in exactly one client
/// (iid, shards, by_label_group with all labels grouped: all of them; shards: all but the
/// remainder when the count does not divide evenly, which is spread round-robin).
/// Throws std::invalid_argument with the reason for impossible specs (more shards than
/// samples, clients × shards_per_client != shards, a client left empty, beta <= 0, ...).
[[nodiscard]] std::vector<std::vector<int64_t>> partition_indices(
    const std::vector<int64_t>& labels, int64_t num_classes, const PartitionSpec& spec);

/// A client's local split: its indices shuffled (seeded), the first ⌈(1-test_fraction)·n⌉ train.
struct LocalSplit {
  std::vector<int64_t> train;
  std::vector<int64_t> test;
};
[[nodiscard]] LocalSplit split_train_test(const std::vector<int64_t>& indices,
                                          double test_fraction, uint64_t seed);

[[nodiscard]] std::string to_string(PartitionScheme scheme);
/// Throws std::invalid_argument listing the valid names.
[[nodiscard]] PartitionScheme partition_scheme_from_string(const std::string& name);

} // namespace fedvlm
