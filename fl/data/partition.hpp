// fl/data/partition.hpp — how a dataset is split across simulated clients (IID and non-IID schemes,
// and independent samples per client for populations larger than the dataset).
//
// Pure functions over label vectors: deterministic in the seed, no LibTorch, no actors.
#pragma once

#include "support/enum_names.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace fedvlm {

enum class PartitionScheme { iid, shards, dirichlet, by_label_group, by_domain, sampled };

struct PartitionSpec {
  PartitionScheme scheme = PartitionScheme::iid;
  int clients = 2;
  uint64_t seed = 0;
  int shards = 0;            ///< shards: total shard count (e.g. 80)
  int shards_per_client = 2; ///< shards: shards each client receives (clients × this == shards)
  double beta = 0.5;         ///< dirichlet: concentration; small = more skewed
  /// sampled: samples each client draws from the whole pool (0 = not set; the scheme needs >= 1)
  int samples_per_client = 0;
  /// by_label_group: groups of labels; client c draws from group c % groups.size(), and the
  /// samples of a group are split IID among the clients assigned to it.
  std::vector<std::vector<int64_t>> label_groups;
  // by_domain: labels are domain ids (e.g. RLAIF-V's origin_dataset). With at least as many
  // clients as domains, client c draws from domain c % domains (a domain's samples split IID
  // among its clients); with fewer, client c holds every domain d with d % clients == c.
};

/// Sample indices (into `labels`) per client, each client's list sorted ascending. Except for
/// sampled, every index appears in at most one client, and in exactly one for iid, shards and
/// dirichlet; for by_label_group, samples whose label is in no group are not used by any client.
/// shards: indices are stably sorted by label and cut into contiguous shards of n / shards
/// samples, the last n % shards shards holding one extra sample each.
/// sampled (the one scheme where indices repeat across clients): each client independently
/// draws samples_per_client distinct indices uniformly from all n (Floyd's algorithm), so there
/// may be more clients than samples and a sample may be held by several clients; labels play no
/// part. O(n + clients × samples_per_client) time and memory.
/// Throws std::invalid_argument with the reason for impossible specs (more shards than
/// samples, clients × shards_per_client != shards, a client left empty, beta <= 0, a label
/// outside [0, num_classes), samples_per_client < 1 or > n for sampled, ...).
[[nodiscard]] std::vector<std::vector<int64_t>> partition_indices(
    const std::vector<int64_t>& labels, int64_t num_classes, const PartitionSpec& spec);

/// A client's local split: its indices shuffled (seeded), the first ⌈(1-test_fraction)·n⌉ train,
/// the rest test, both sorted ascending. With n >= 2 and test_fraction > 0 each side gets at
/// least one sample. Throws std::invalid_argument unless 0 <= test_fraction < 1.
struct LocalSplit {
  std::vector<int64_t> train;
  std::vector<int64_t> test;
};
[[nodiscard]] LocalSplit split_train_test(const std::vector<int64_t>& indices,
                                          double test_fraction, uint64_t seed);

/// The schemes' names: to_string, parsing and the `partition.scheme` help text read it.
[[nodiscard]] const EnumNames<PartitionScheme>& enum_names(PartitionScheme);
/// Throws std::invalid_argument listing the valid names.
[[nodiscard]] PartitionScheme partition_scheme_from_string(const std::string& name);

} // namespace fedvlm
