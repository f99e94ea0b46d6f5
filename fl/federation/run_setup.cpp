// fl/federation/run_setup.cpp — a run's set-up by model family, the dataset cache, the thread plan and the dry-run text.
//
// Each family's set-up is its own file (fl/federation/setup_image.cpp, setup_vqa.cpp,
// setup_clip.cpp); what they share is fl/federation/setup_parts.
#include "fl/federation/run_setup.hpp"
#include "fl/federation/setup_families.hpp"
#include "fl/aggregation/compression.hpp"
#include "fl/config/model_family.hpp"
#include "fl/config/strategy.hpp"
#include "support/join.hpp"
#include "support/usable_cores.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

namespace fedvlm {

std::shared_ptr<const ImageDataset> DatasetCache::train_split(const DataSettings& data) { return load(data, DataSplit::train); }

std::shared_ptr<const ImageDataset> DatasetCache::test_split(const DataSettings& data) { return load(data, DataSplit::test); }

std::shared_ptr<const ImageDataset> DatasetCache::load(const DataSettings& data, DataSplit split) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string key = data.dataset + "|" + data.path.string() + (split == DataSplit::train ? "|train" : "|test");
  if (auto it = loaded_.find(key); it != loaded_.end()) return it->second;
  ImageDataset ds;
  try {
    const DatasetRow& row = dataset_row(data.dataset);
    if (row.load == nullptr) throw std::invalid_argument(data.dataset + " holds no labelled images");
    ds = row.load(data.path, split);
  } catch (const std::exception& e) {
    throw std::runtime_error("data.path: " + std::string(e.what()));
  }
  auto shared = std::make_shared<const ImageDataset>(std::move(ds));
  loaded_.emplace(key, shared);
  return shared;
}

ThreadPlan thread_plan_for(const ExperimentConfig& c) {
  return plan_threads(c.threads, c.scheduler.concurrency, usable_cores());
}

RunSetup prepare_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  switch (model_arch(c.model.arch).family) {
  case ModelFamily::florence2: return setup_detail::prepare_vqa_run(c, mode);
  case ModelFamily::clip: return setup_detail::prepare_clip_run(c, datasets, mode);
  case ModelFamily::mobilenet_v3:
  case ModelFamily::classic: break;
  }
  return setup_detail::prepare_image_run(c, datasets, mode);
}

namespace {

/// Training clients the plan lists one by one; the rest get one line (100,000 clients would
/// otherwise print 100,000 lines at every start).
constexpr std::size_t kPlanClients = 20;

/// "... and N more clients: train samples min-max (median M), test samples min-max".
std::string summary_of_rest(const std::vector<LocalSplit>& splits, std::size_t from) {
  std::vector<std::size_t> train, test;
  for (std::size_t k = from; k < splits.size(); ++k) {
    train.push_back(splits[k].train.size());
    test.push_back(splits[k].test.size());
  }
  std::sort(train.begin(), train.end());
  std::sort(test.begin(), test.end());
  std::ostringstream os;
  os << "               ... and " << train.size() << " more clients (ids " << from << "-" << splits.size() - 1
     << "): train samples " << train.front() << "-" << train.back() << " (median " << train[train.size() / 2]
     << "), test samples " << test.front() << "-" << test.back() << "\n";
  return os.str();
}

} // namespace

std::string describe_plan(const ExperimentConfig& c, const RunSetup& s) {
  const StrategySpec& spec = strategy_spec(c.strategy);
  std::ostringstream os;
  os << "run " << c.name << "/" << c.run_label << "\n"
     << "  strategy     " << spec.name << " — " << spec.summary
     << (c.train.prox_mu > 0 ? " + FedProx mu=" + std::to_string(c.train.prox_mu) : "") << "\n"
     << "  model        " << c.model.arch << ", " << s.model_origin << "\n"
     << "  data         " << c.data.dataset << (dataset_row(c.data.dataset).generated ? std::string(" (generated)") : " at " + c.data.path.string()) << ": " << s.pool_samples
     << " federated samples" << (s.public_samples ? ", " + std::to_string(s.public_samples) + " public (pretraining)" : "")
     << "\n"
     << "  partition    " << to_string(c.partition.scheme)
     << (c.partition.scheme == PartitionScheme::sampled
             ? " (" + std::to_string(c.partition.samples_per_client) +
                   " samples per client, drawn independently: clients may share samples)"
             : std::string())
     << " over " << c.federation.clients << " clients, "
     << c.data.test_fraction * 100 << "% local test\n"
     << "  rounds       " << c.federation.rounds << " x " << c.train.local_epochs << " local epochs, "
     << (c.federation.clients_per_round ? std::to_string(c.federation.clients_per_round) : std::string("all"))
     << " clients per round, " << to_string(c.federation.weighting) << " weighting\n"
     << "  threads      " << s.threads.describe() << "\n";
  if (s.threads.oversubscribed()) os << "  warning      " << s.threads.warning() << "\n";
  if (spec.train_base) os << "  trained      every tensor of";
  else if (spec.train_head) os << "  trained      a linear probe on the frozen features";
  else
    os << "  LoRA         r="
       << (c.lora_client_ranks.empty() ? std::to_string(c.lora.rank) : "per client [" + join(c.lora_client_ranks) + "]")
       << " alpha=" << c.lora.alpha << " dropout=" << c.lora.dropout << " on";
  if (!spec.train_head)
    for (const auto& [name, shape] : s.targets) os << " " << name << " (" << shape.out_features << "x" << shape.in_features << ")";
  const StrategySpec first = spec_in_round(spec, 1);
  os << "\n  travels      " << s.bytes_up_per_client << " B up per client, " << s.bytes_down_per_client
     << " B down per client, per " << (spec.alternating ? "odd round; even rounds send the A factors instead" : "round")
     << " (adapter " << s.adapter_bytes << " B):";
  for (const auto& [name, shape] : s.targets) {
    if (first.share_a) os << " " << name << ".lora_A";
    if (first.share_b) os << " " << name << ".lora_B";
  }
  if (spec.rule == AggregationRule::fedex) os << "; down also each layer's dense residual (out x in)";
  if (spec.rule == AggregationRule::stack) os << "; down the stacked factors of every client of the round, at most";
  if (spec.rule == AggregationRule::flexlora || spec.rule == AggregationRule::hetlora)
    os << "; down each client's own factors at its rank (largest shown)";
  if (first.share_base && !s.full_tensors.empty())
    for (const auto& name : s.full_tensors) os << " " << name;
  else
    for (const auto& [name, shape] : s.targets)
      if (first.share_base) os << " " << name << ".weight/.bias";
  if (first.share_head) os << " probe.weight probe.bias (a linear classifier on the frozen features)";
  if (!shares_anything(spec)) os << " nothing";
  if (c.compression.up != CompressionKind::none && shares_anything(spec)) {
    std::vector<std::vector<int64_t>> shapes; // what one client sends up, float32
    for (const auto& [name, shape] : s.targets) {
      if (first.share_a) shapes.push_back({max_lora_rank(c), shape.in_features});
      if (first.share_b) shapes.push_back({shape.out_features, max_lora_rank(c)});
    }
    if (shapes.empty()) shapes.push_back({s.bytes_up_per_client / 4}); // base copies or a probe: as one tensor
    os << "\n  compressed   " << to_string(c.compression.up) << " up: " << encoded_bytes(shapes, c.compression)
       << " B per client instead of " << s.bytes_up_per_client << " B";
  }
  os << "\n  clients      id  train  test  " << (c.data.is_vqa() ? "domains" : "labels") << " (count per " << (c.data.is_vqa() ? "domain" : "class") << ")\n";
  for (std::size_t k = 0; k < s.splits.size() + s.holdout_splits.size(); ++k) {
    const bool held = k >= s.splits.size(); // evaluation.holdout_clients: listed last
    if (!held && k == kPlanClients && s.splits.size() > kPlanClients + 1) { // the rest in one line
      os << summary_of_rest(s.splits, kPlanClients);
      k = s.splits.size() - 1;
      continue;
    }
    const LocalSplit& split = held ? s.holdout_splits[k - s.splits.size()] : s.splits[k];
    os << "               " << std::setw(2) << k << " " << std::setw(6) << split.train.size() << " "
       << std::setw(5) << split.test.size() << "  ";
    for (std::size_t cl = 0; k < s.label_counts.size() && cl < s.label_counts[k].size(); ++cl)
      if (s.label_counts[k][cl] > 0) os << cl << ":" << s.label_counts[k][cl] << " ";
    os << (held ? " (holdout: never trains; scored as a new client, holdout_every = " +
                      std::to_string(c.evaluation.holdout_every) + ", adapt_steps = " +
                      std::to_string(c.evaluation.adapt_steps) + ")"
                : std::string())
       << "\n";
  }
  return os.str();
}

} // namespace fedvlm
