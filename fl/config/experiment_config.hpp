// fl/config/experiment_config.hpp — a validated experiment: typed settings the engine runs from.
//
// The TOML file is read once, at the edge (fl/config/experiment_toml.cpp); everything past this point
// works with these structs and never sees TOML.
#pragma once

#include "fl/data/dataset_table.hpp"
#include "fl/data/partition.hpp"
#include "fl/config/strategy.hpp"
#include "model/lora.hpp"
#include "support/enum_names.hpp"

#include <algorithm>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {

enum class OptimizerKind { sgd, adamw, adam };
enum class Weighting { samples, uniform };

struct ModelSettings {
  /// mobilenet_v3_small | mobilenet_v3_large | florence2_tiny | florence2_base | florence2_large
  std::string arch = "mobilenet_v3_small";
  std::filesystem::path weights;   ///< optional checkpoint (torchvision / Hugging Face names)
  std::filesystem::path tokenizer; ///< Florence-2: tokenizer.json or its folder (default: beside weights)
  double dropout = 0.2;                    ///< classifier dropout
  std::string precision = "float32";       ///< Florence-2: float32 | bfloat16 (weights, activations)
};

struct DataSettings {
  std::string dataset = "fashion_mnist"; ///< a row of fl/data/dataset_table
  std::filesystem::path path = "/usr/share/datasets/fashion-mnist"; ///< unless set, the dataset row's default path
  int64_t max_samples = 0; ///< cap on the federated pool (0 = every training sample left)
  double test_fraction = 0.2;
  // -- VQA (Florence-2) ---------------------------------------------------------
  std::string domain_field = "origin_dataset"; ///< metadata.jsonl field naming a sample's domain
  std::string prompt_prefix = "<VQA>";         ///< prepended to every question
  int64_t max_answer_tokens = 32;
  int64_t max_new_tokens = 16;          ///< generation for exact match
  int64_t num_beams = 1;                ///< 1 = greedy; Florence-2's generate() default is 3
  int64_t no_repeat_ngram_size = 0;     ///< Florence-2's default is 3
  int synthetic_domains = 4;            ///< synthetic_vqa: domains generated
  int synthetic_per_domain = 40;        ///< synthetic_vqa: samples per domain
  // -- CLIP ------------------------------------------------------------------------
  std::vector<std::string> class_names; ///< the classes' names in label order (empty: the dataset's)

  [[nodiscard]] bool is_vqa() const {
    const DatasetRow* row = find_dataset(dataset);
    return row != nullptr && row->vqa;
  }
};

struct PretrainSettings {
  bool enabled = false;
  int64_t public_samples = 6000; ///< disjoint public split taken before partitioning
  int epochs = 2;
  double lr = 0.05;
  int64_t batch_size = 64;
  std::filesystem::path cache_dir = ".cache"; ///< relative to output_dir unless absolute
};

/// sync: rounds of selected clients; async: FedBuff on a virtual clock (fl/federation/async_federation.hpp).
enum class FederationMode { sync, async };
/// How much a stale update counts in FedBuff: 1/sqrt(1+s), 1, or 1/(1+s)^a.
enum class StalenessRule { inverse_sqrt, constant, polynomial };

struct FederationSettings {
  int clients = 4;
  int rounds = 5;            ///< sync: rounds; async: server aggregations (model versions)
  int clients_per_round = 0; ///< sync: clients sampled per round; async: clients training at once (0: all)
  Weighting weighting = Weighting::samples;
  double quorum = 1.0;          ///< fraction of selected clients needed when the timeout hits
  double round_timeout_s = 3600;
  // -- asynchronous mode ------------------------------------------------------
  FederationMode mode = FederationMode::sync;
  int buffer_size = 0;          ///< updates per aggregation (0: half the clients, at least 1)
  StalenessRule staleness = StalenessRule::inverse_sqrt;
  double staleness_exponent = 0.5; ///< polynomial: weight 1/(1+s)^a
  double server_lr = 1.0;       ///< FedBuff's server learning rate on the buffered mean update
  double client_seconds = 1.0;  ///< virtual seconds of one local epoch on a client of mean data size
  double speed_sigma = 0.0;     ///< clients' lasting speed factors: lognormal, mean 1, this log-space std (0: equal)
  // -- the virtual clock of synchronous rounds (fl/federation/virtual_clock.hpp) --
  double round_deadline_s = 0;  ///< simulated seconds; clients that would finish later are dropped (0: no deadline)
  double overcommit = 1.0;      ///< select ceil(clients_per_round × this), keep the first clients_per_round to finish
};

/// How a client's shared update is encoded on its way up (fl/aggregation/compression.hpp).
enum class CompressionKind { none, float16, int8, int8_row, topk };

struct CompressionSettings {
  CompressionKind up = CompressionKind::none;
  double topk_fraction = 0.1; ///< topk: the share of each tensor's entries sent
  bool error_feedback = true; ///< topk: what was not sent is kept on the client and added next round
};

/// One device of a trace file (fl/config/device_trace.hpp): its compute and its link.
struct DeviceProfile {
  double speed_factor = 1; ///< multiplies its compute time (2: takes twice as long as the mean device)
  double down_mbps = 0;    ///< download bandwidth in Mbit/s (0: unlimited)
  double up_mbps = 0;      ///< upload bandwidth in Mbit/s (0: unlimited)
  double latency_s = 0;    ///< one-way latency of each transfer
  /// Availability windows [start, end) in simulated seconds, ascending; empty: always available.
  std::vector<std::pair<double, double>> windows;
};

/// Clients' links (and, from a trace, their devices and availability) on the virtual clock.
struct NetworkSettings {
  double down_mbps = 0;       ///< mean download bandwidth, Mbit/s (0: unlimited, transfers take no time)
  double up_mbps = 0;         ///< mean upload bandwidth, Mbit/s (0: unlimited)
  double latency_s = 0;       ///< one-way latency per transfer
  double bandwidth_sigma = 0; ///< clients' lasting bandwidth factors: lognormal, mean 1, this log-space std
  std::filesystem::path trace; ///< CSV of devices (replaces the above and federation.speed_sigma); empty: none
  double trace_period_s = 0;  ///< availability windows repeat with this period (0: they do not)
  std::vector<DeviceProfile> devices; ///< the trace's rows (read at validation); client k is row k mod rows
};


struct TrainSettings {
  int local_epochs = 1;
  int64_t batch_size = 32; ///< 0: the client's whole local set in one batch (FedSGD's B = ∞)
  double lr = 0.01;
  OptimizerKind optimizer = OptimizerKind::sgd;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double prox_mu = 0.0; ///< FedProx proximal term weight (0 = off); from [strategy] mu
  double adam_eps = 1e-8;       ///< Adam / AdamW epsilon (FLoRA: 1e-6)
  bool fresh_optimizer = false; ///< drop the optimizer state at the start of every local training (FedAvg's setting)
  int64_t eval_batch_size = 256;
};

struct SchedulerSettings {
  int concurrency = 1; ///< jobs run at once on the device
  int64_t memory_budget = 0; ///< bytes for the shared base plus running jobs; 0 = no limit
  int batch_clients = 1; ///< clients trained in one pass (LoRA strategies); 1 = one at a time
};

struct MonitoringSettings {
  std::string prometheus;  ///< "127.0.0.1:9464"; empty = off
  std::string pushgateway; ///< "http://127.0.0.1:9091"; empty = off
  double linger_seconds = 0;
};

enum class DelayDistribution { fixed, exponential, lognormal };

/// Simulated failures, for studying stragglers and drop-outs (and for testing the quorum).
/// Every random draw comes from the client's own fault stream (fl/federation/client_faults.hpp).
struct FaultSettings {
  std::vector<int> failing_clients; ///< these clients report an error instead of an update
  std::vector<int> slow_clients;    ///< these clients are slow every round
  double slow_fraction = 0;         ///< each selected client is slow in a round with this probability
  double slow_seconds = 0;          ///< mean delay of a slow client's answer
  DelayDistribution slow_distribution = DelayDistribution::fixed;
  double slow_sigma = 0.5;          ///< lognormal: standard deviation of log(delay)
  double dropout_probability = 0;   ///< each selected client drops out of a round with this probability
  std::vector<int> crash_clients;   ///< these clients' actors crash (throw) in crash_rounds ...
  std::vector<int> crash_rounds;    ///< ... and are respawned from their last finished round
};

enum class PrivacyMode { central, local };

/// Differential privacy (DP-FedAvg): each client's shared update (the change from the global
/// tensors it received) is clipped to `clip_norm`; Gaussian noise of std noise_multiplier ·
/// clip_norm is added once to the average (central, std σC/K) or to every update (local). A
/// Rényi-DP accountant for the sampled Gaussian mechanism (fl/privacy/privacy_accountant.hpp) reports ε
/// at `delta` after every round; `target_epsilon` stops the run before it is exceeded.
struct PrivacySettings {
  double clip_norm = 0;        ///< 0 = no clipping (and no DP)
  double noise_multiplier = 0; ///< σ; 0 = no noise (clipping only, no ε)
  PrivacyMode mode = PrivacyMode::central;
  double delta = 1e-5;
  double target_epsilon = 0; ///< 0 = no budget

  [[nodiscard]] bool enabled() const { return clip_norm > 0; }
  [[nodiscard]] bool accounted() const { return clip_norm > 0 && noise_multiplier > 0; }
};

/// Checkpoints for `fedvlm-sim resume`.
struct CheckpointSettings {
  int every = 1; ///< write one after every N-th finished round (and after the last); 0 = never
  int keep = 2;  ///< newest checkpoints kept; older ones are deleted
  /// Every N-th checkpoint is full; the ones between hold only what changed since (1 = all full).
  int full_every = 10;
};

/// CLIP's zero-shot classifier: the prompts each class name is put into.
struct ClipSettings {
  std::vector<std::string> templates = {"a photo of a {}."};
  /// The captions of pretraining (clip_tiny with [pretrain]); empty: the templates.
  std::vector<std::string> pretrain_templates;
};

/// Evaluation beyond each client's own test split.
struct EvaluationSettings {
  /// Each round, the global model is also scored on the dataset's official test split
  /// (Fashion-MNIST's and CIFAR-10's 10,000), as FedAvg papers report.
  bool global_test = false;
  /// Rounds to reach this accuracy (McMahan et al.: monotone curve, linear interpolation), for
  /// the global test and the mean client accuracy (fl/results/rounds_to_target.hpp); 0 = off.
  double target_accuracy = 0;
  /// End the run once reached: by the global test where it is on, else the mean client accuracy.
  bool stop_at_target = false;
  /// New clients (fl/federation/holdout.hpp): the last `holdout_clients` clients of the
  /// partition never train nor are selected; after every `holdout_every`-th round (and round 0
  /// and the last) each gets the global shared tensors and fresh private factors, and is scored
  /// on its own test split before and after `adapt_steps` local steps on its own training split.
  int holdout_clients = 0;
  int holdout_every = 1;
  int adapt_steps = 5;
  /// Each round, the clients that trained plus this many of the others, drawn from the run's
  /// seeded stream (fl/federation/round.hpp: clients_to_evaluate), are evaluated; the rest get
  /// the round's download but no metrics row that round. 0 = every client, every round.
  int clients_sample = 0;
};

struct ExperimentConfig;
/// The LoRA rank of `client` (-1: the centralized trainer, lora.rank).
[[nodiscard]] int client_lora_rank(const ExperimentConfig& c, int client);
/// The largest rank any client has.
[[nodiscard]] int max_lora_rank(const ExperimentConfig& c);
/// The clients that train (ids 0 .. n-1): federation.clients less evaluation.holdout_clients.
[[nodiscard]] int training_clients(const ExperimentConfig& c);

struct ExperimentConfig {
  std::string name = "experiment";
  std::filesystem::path source_file;
  std::filesystem::path output_dir = "results";
  uint64_t seed = 0;
  std::string device = "cpu";
  int threads = 0; ///< LibTorch intra-op threads per worker; 0 = "auto" (fl/runtime/thread_plan.hpp)

  ModelSettings model;
  DataSettings data;
  PretrainSettings pretrain;
  PartitionSpec partition;      ///< clients and seed are filled from federation / seed
  FederationSettings federation;
  NetworkSettings network;
  CompressionSettings compression;
  StrategyKind strategy = StrategyKind::plora;
  LoraSettings lora;
  std::vector<std::string> lora_targets = {"classifier.0", "classifier.3"};
  /// Heterogeneous ranks: client k's rank is lora_client_ranks[k % size]; empty: lora.rank for all.
  std::vector<int> lora_client_ranks;
  /// Full fine-tuning: the modules trained and averaged (copied into lora_targets when set).
  std::vector<std::string> strategy_trainable;
  TrainSettings train;
  SchedulerSettings scheduler;
  MonitoringSettings monitoring;
  FaultSettings faults;
  CheckpointSettings checkpoint;
  PrivacySettings privacy;
  EvaluationSettings evaluation;
  ClipSettings clip;
  /// Top-level `strict` (or --strict): a key that has no effect in this configuration is an
  /// error instead of a warning.
  bool strict = false;

  /// Values this run takes from a sweep axis, key → value as written ("federation.clients" → "4").
  std::map<std::string, std::string> sweep;
  /// Short unique name within the experiment, e.g. "clients=4,strategy=plora" or "run".
  std::string run_label = "run";
  /// The resolved configuration as TOML text (every key, defaults included), for the run dir.
  std::string resolved_toml;
};

/// Each enum's names (and meanings, for help texts), written once: fl/config/config_enums.cpp.
[[nodiscard]] const EnumNames<OptimizerKind>& enum_names(OptimizerKind);
[[nodiscard]] const EnumNames<Weighting>& enum_names(Weighting);
[[nodiscard]] const EnumNames<CompressionKind>& enum_names(CompressionKind);
[[nodiscard]] const EnumNames<DelayDistribution>& enum_names(DelayDistribution);
[[nodiscard]] const EnumNames<FederationMode>& enum_names(FederationMode);
[[nodiscard]] const EnumNames<StalenessRule>& enum_names(StalenessRule);
[[nodiscard]] const EnumNames<PrivacyMode>& enum_names(PrivacyMode);

inline int client_lora_rank(const ExperimentConfig& c, int client) {
  if (client < 0 || c.lora_client_ranks.empty()) return static_cast<int>(c.lora.rank);
  return c.lora_client_ranks[static_cast<std::size_t>(client) % c.lora_client_ranks.size()];
}

inline int training_clients(const ExperimentConfig& c) { return c.federation.clients - c.evaluation.holdout_clients; }

inline int max_lora_rank(const ExperimentConfig& c) {
  int r = static_cast<int>(c.lora.rank);
  if (!c.lora_client_ranks.empty()) {
    r = 0;
    for (int k : c.lora_client_ranks) r = std::max(r, k);
  }
  return r;
}

} // namespace fedvlm
