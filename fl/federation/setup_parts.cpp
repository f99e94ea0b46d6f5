// fl/federation/setup_parts.cpp — what every model family's set-up shares: client splits, bytes per round, the device, image pools.
#include "fl/federation/setup_parts.hpp"
#include "fl/config/output_paths.hpp"
#include "fl/config/strategy.hpp"
#include "fl/runtime/compute_device.hpp"
#include "fl/tasks/evaluation_pass.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <iomanip>
#include <sstream>

namespace fedvlm::setup_detail {
namespace {

std::string hex16(uint64_t v) {
  std::ostringstream os;
  os << std::hex << std::setw(16) << std::setfill('0') << v;
  return os.str();
}

/// The keys that give each client more samples: with scheme "sampled" the count each client
/// draws, otherwise a larger pool shared by fewer clients.
std::string more_data_keys(const ExperimentConfig& c) {
  return c.partition.scheme == PartitionScheme::sampled ? "partition.samples_per_client"
                                                        : "data.max_samples, fewer federation.clients";
}

} // namespace

void fill_clients(RunSetup& setup, const ExperimentConfig& c, const std::vector<int64_t>& labels, int64_t classes) {
  PartitionSpec spec = c.partition;
  spec.clients = c.federation.clients;
  spec.seed = c.seed;
  const auto parts = partition_indices(labels, classes, spec);
  // A split whose share of a client's samples is under half a sample rounds to nothing: the
  // split code keeps one sample there so that nothing is empty, but that one sample is not the
  // fraction asked for (test_fraction = 0.0001 would score each client on one image, 0.999
  // would train it on one). With test_fraction = 0 the global test alone scores the model.
  if (c.data.test_fraction > 0) {
    for (const bool test_side : {true, false}) {
      const double share = test_side ? c.data.test_fraction : 1 - c.data.test_fraction;
      std::vector<std::size_t> tiny;
      for (std::size_t k = 0; k < parts.size(); ++k)
        if (share * static_cast<double>(parts[k].size()) < 0.5) tiny.push_back(k);
      if (tiny.empty()) continue;
      std::ostringstream os;
      os << "data.test_fraction = " << c.data.test_fraction << " leaves " << (test_side ? "the test" : "the training")
         << " split of " << tiny.size() << " of " << parts.size() << " clients with no sample of its own (under half a "
         << "sample each): ";
      for (std::size_t i = 0; i < tiny.size() && i < 8; ++i)
        os << (i ? ", " : "") << "client " << tiny[i] << " has " << parts[tiny[i]].size() << " samples -> "
           << share * static_cast<double>(parts[tiny[i]].size());
      if (tiny.size() > 8) os << ", ...";
      os << (test_side ? "; raise data.test_fraction (or give the clients more data: " + more_data_keys(c) +
                             "), or set data.test_fraction = 0 with evaluation.global_test = true to score on the "
                             "global test only"
                       : "; lower data.test_fraction, or give the clients more data (" + more_data_keys(c) + ")");
      throw std::invalid_argument(os.str());
    }
  }
  for (std::size_t k = 0; k < parts.size(); ++k) {
    LocalSplit split = split_train_test(parts[k], c.data.test_fraction, c.seed + 7919 * (k + 1));
    if (split.train.empty() || (split.test.empty() && c.data.test_fraction > 0))
      throw std::invalid_argument("client " + std::to_string(k) + " has " + std::to_string(parts[k].size()) +
                                  " samples: too few for a train and a test split (see " + more_data_keys(c) +
                                  ", data.test_fraction)");
    std::vector<int64_t> counts(static_cast<std::size_t>(classes), 0);
    for (int64_t i : parts[k]) ++counts[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
    setup.label_counts.push_back(std::move(counts));
    (static_cast<int>(k) < training_clients(c) ? setup.splits : setup.holdout_splits).push_back(std::move(split));
  }
}

void fill_bytes(RunSetup& setup, const ExperimentConfig& c, const TensorShapes* base) {
  if (strategy_spec(c.strategy).train_base) {
    int64_t bytes = 0;
    if (base == nullptr) {
      for (const auto& [module, shape] : setup.targets) bytes += shape.out_features * shape.in_features * 4;
    } else {
      setup.full_tensors = full_tensor_names(setup.targets, *base);
      for (const auto& name : setup.full_tensors) {
        int64_t numel = 1;
        for (int64_t d : base->at(name)) numel *= d;
        bytes += numel * 4;
      }
    }
    setup.adapter_bytes = setup.bytes_up_per_client = setup.bytes_down_per_client = bytes;
    return;
  }
  LoraSettings largest = c.lora;
  largest.rank = max_lora_rank(c);
  const TensorMap probe = lora_init(setup.targets, largest, c.seed); // rank vs dims is checked here
  setup.adapter_bytes = static_cast<int64_t>(tensor_map_bytes(probe));
  // An alternating strategy sends B in round 1; its A rounds send the A bytes instead.
  const StrategySpec sspec = spec_in_round(strategy_spec(c.strategy), 1);
  const int64_t shared = static_cast<int64_t>(tensor_map_bytes(shared_part(sspec, probe)));
  setup.bytes_up_per_client = sspec.centralized ? 0 : shared;
  setup.bytes_down_per_client = shared;
  constexpr int64_t kFloat = 4;
  if (sspec.rule == AggregationRule::fedex) // plus the dense residual of every adapted layer
    for (const auto& [name, shape] : setup.targets) setup.bytes_down_per_client += shape.out_features * shape.in_features * kFloat;
  if (sspec.rule == AggregationRule::stack) {
    // The stacked factors of every client of the round: at most the largest ranks of a full round.
    std::vector<int> ranks;
    for (int k = 0; k < training_clients(c); ++k) ranks.push_back(client_lora_rank(c, k));
    std::sort(ranks.rbegin(), ranks.rend());
    const int per_round = c.federation.clients_per_round > 0 ? c.federation.clients_per_round : training_clients(c);
    int64_t stacked = 0;
    for (int i = 0; i < per_round; ++i) stacked += ranks[static_cast<std::size_t>(i)];
    setup.bytes_down_per_client = 0;
    for (const auto& [name, shape] : setup.targets)
      setup.bytes_down_per_client += stacked * (shape.out_features + shape.in_features) * kFloat;
  }
}

c10::Device run_device(const ExperimentConfig& c) {
  const DeviceChoice where = resolve_device(c.device);
  if (!where.fallback.empty()) spdlog::warn("device = \"{}\": {}; running on the CPU", c.device, where.fallback);
  return where.device;
}

void fill_probe_bytes(RunSetup& setup, const ExperimentConfig& c, std::pair<int64_t, int64_t> probe_shape) {
  if (!strategy_spec(c.strategy).train_head) return;
  const auto [classes, features] = probe_shape;
  setup.adapter_bytes = setup.bytes_up_per_client = setup.bytes_down_per_client = (classes * features + classes) * 4;
}

std::filesystem::path pretrain_cache_file(const ExperimentConfig& c, const std::string& key) {
  return resolved_cache_dir(c) / ("pretrain-" + c.model.arch + "-" + hex16(std::hash<std::string>{}(key)) + ".safetensors");
}

ImagePools image_pools(RunSetup& setup, const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  ImagePools out;
  out.full = datasets.train_split(c.data);
  const auto& full = out.full;
  setup.class_names = full->class_names;

  // The public split and the federated pool are disjoint: one seeded permutation, cut in two.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  const std::vector<int64_t> order = tensor_to_ids(at::randperm(full->size(), gen, at::kLong));
  const int64_t public_n = c.pretrain.enabled ? c.pretrain.public_samples : 0;
  if (public_n >= full->size())
    throw std::invalid_argument("pretrain.public_samples (" + std::to_string(public_n) +
                                ") must be smaller than the dataset (" + std::to_string(full->size()) + ")");
  int64_t pool_n = full->size() - public_n;
  if (c.data.max_samples > 0) pool_n = std::min(pool_n, c.data.max_samples);
  out.public_idx.assign(order.begin(), order.begin() + public_n);
  std::vector<int64_t> pool_idx(order.begin() + public_n, order.begin() + public_n + pool_n);
  setup.public_samples = public_n;
  setup.pool_samples = pool_n;

  out.pool = full->subset(pool_idx);
  fill_clients(setup, c, out.pool.label_vector(), out.pool.num_classes());
  if (c.evaluation.global_test) {
    // The official test images join the pool after the clients' samples: the task (and its
    // feature cache) serves them like any others, and no client's split holds them.
    const auto test = datasets.test_split(c.data);
    for (int64_t i = 0; i < test->size(); ++i) setup.global_test.push_back(out.pool.size() + i);
    if (mode == SetupMode::execute) {
      out.pool.images = at::cat({out.pool.images, test->images}, 0);
      out.pool.labels = at::cat({out.pool.labels, test->labels}, 0);
    }
  }
  return out;
}

} // namespace fedvlm::setup_detail
