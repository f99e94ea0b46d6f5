// fl/federation/run_setup.hpp — everything a run needs before its actors start: data, partitions, base model.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/tasks/frozen_base.hpp"
#include "fl/data/image_dataset.hpp"
#include "fl/config/output_paths.hpp" // check_output_paths: what prepare_run's callers check first
#include "fl/data/partition.hpp"
#include "fl/runtime/thread_plan.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fedvlm {

/// Loaded training splits by (dataset, path), so a sweep reads its files once.
class DatasetCache {
public:
  [[nodiscard]] std::shared_ptr<const ImageDataset> train_split(const DataSettings& data);
  /// The dataset's official test split (10,000 images for Fashion-MNIST and CIFAR-10).
  [[nodiscard]] std::shared_ptr<const ImageDataset> test_split(const DataSettings& data);

private:
  std::shared_ptr<const ImageDataset> load(const DataSettings& data, DataSplit split);
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const ImageDataset>> loaded_;
};

enum class SetupMode {
  plan,    ///< validate and size everything; no pretraining, no feature cache (--dry-run)
  execute, ///< also pretrain (or load the cached checkpoint) and build the frozen base
};

struct RunSetup {
  std::vector<LocalSplit> splits;               ///< per training client, pool indices
  /// evaluation.holdout_clients: the partition's last clients (ids training_clients(config)
  /// onwards), which never train (fl/federation/holdout.hpp).
  std::vector<LocalSplit> holdout_splits;
  std::vector<std::vector<int64_t>> label_counts; ///< per client of the partition (holdout ones last), samples per class
  std::vector<std::string> class_names;
  int64_t public_samples = 0;
  int64_t pool_samples = 0;
  std::map<std::string, AdaptableLayer> targets;
  /// Full fine-tuning: the base tensors each client trains and sends (full_tensor_names), when
  /// the base's tensor names are known at set-up.
  std::vector<std::string> full_tensors;
  int64_t adapter_bytes = 0;         ///< one client's whole adapter
  int64_t bytes_up_per_client = 0;   ///< what one client sends per round
  int64_t bytes_down_per_client = 0; ///< what the aggregator sends each client per round
  std::string model_origin;          ///< "random init", "weights FILE", "pretrained (cached FILE)", ...
  std::shared_ptr<const FederatedTask> task; ///< execute mode only
  std::vector<int64_t> global_test; ///< pool indices of the official test split (evaluation.global_test)
  ThreadPlan threads;               ///< the run's LibTorch threads (thread_plan_for)
  double pretrain_seconds = 0;      ///< execute mode: pretraining (or loading its cached result) took
};

/// The threads of `config`'s run on the cores this process may use (fl/runtime/thread_plan.hpp).
[[nodiscard]] ThreadPlan thread_plan_for(const ExperimentConfig& config);

/// Builds the setup of one run. Throws std::runtime_error / std::invalid_argument whose message
/// names the key or file at fault.
[[nodiscard]] RunSetup prepare_run(const ExperimentConfig& config, DatasetCache& datasets, SetupMode mode);

/// Text for --dry-run (and the log at a run's start): clients, partition sizes and labels per
/// client (the first 20 training clients one by one, the rest in one line of sizes; holdout
/// clients always listed), rounds, strategy, what travels per round.
[[nodiscard]] std::string describe_plan(const ExperimentConfig& config, const RunSetup& setup);

} // namespace fedvlm
