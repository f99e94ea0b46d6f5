// fl/results/run_records.hpp — what a run reports: per-client evaluations, round summaries, job timings.
//
// These plain structs are the one vocabulary shared by the results writer, the Prometheus
// exporter and the terminal progress display; none of them needs LibTorch.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>

namespace fedvlm {

/// What identifies a run in a sweep; stored in run.json (its fields: run_info_field_list()).
struct RunInfo {
  std::string experiment;
  std::string run; ///< run id
  std::string strategy;
  std::map<std::string, std::string> sweep; ///< swept key → value as text ("federation.clients" → "4")
  int clients = 0;
  int rounds = 0;
  uint64_t seed = 0;
  int resumed_from_round = 0; ///< > 0: this process continued the run after that round
};

/// Phase of an evaluation: "before" is the pre-fine-tuning baseline (round 0), "round" the rest.
inline const std::string kPhaseBefore = "before";
inline const std::string kPhaseRound = "round";

/// One client's metrics on its own test split, after round `round` (0 = before fine-tuning).
struct ClientRoundRecord {
  std::string run;      ///< run id, e.g. "quickstart/clients=4,strategy=plora,seed=0"
  std::string strategy; ///< "plora", "flora", ...
  int client = 0;
  int round = 0;
  std::string phase = kPhaseRound;
  double accuracy = 0, precision = 0, recall = 0, f1 = 0, loss = 0;
  double train_loss = 0;     ///< mean local training loss this round (0 for "before")
  int64_t test_samples = 0;  ///< size of the client's test split
  int64_t train_samples = 0; ///< size of the client's train split
  int64_t bytes_up = 0;      ///< bytes this client sent to the aggregator this round
  int64_t bytes_down = 0;    ///< bytes the aggregator sent to this client this round
  bool participated = false; ///< trained and was aggregated this round
  double round_seconds = 0;  ///< wall time of the whole round
  /// Personalised strategies (pLoRA, FedSA-LoRA): ‖B'A' − B_k A_k‖_F / ‖B_k A_k‖_F, what this
  /// client's update lost to the average this round, mean over adapted layers
  /// (fl/aggregation/aggregation_error.hpp); NaN where it does not apply.
  double drift = std::numeric_limits<double>::quiet_NaN();
  /// Asynchronous mode: versions the global moved on while this client's update was computed
  /// (mean over its updates in this aggregation); NaN when it sent none or in sync mode.
  double staleness = std::numeric_limits<double>::quiet_NaN();
  /// What the task measures beyond classification, by name (e.g. VQA's "exact_match": the share
  /// of generated answers equal to the reference); written after the fields above, as extra
  /// JSON keys and CSV columns (fl/results/record_fields.hpp). Empty for plain classification.
  std::map<std::string, double> task_metrics;
};

/// One finished round, over all clients.
struct RoundSummary {
  std::string run;
  std::string strategy;
  int round = 0;
  int total_rounds = 0;
  int clients_answered = 0;
  int clients_selected = 0;
  int clients_failed = 0; ///< selected but no update: failing, dropped out, crashed or timed out
  int clients_late = 0;   ///< answered, but late (simulated stragglers)
  double mean_accuracy = 0, min_accuracy = 0, max_accuracy = 0;
  /// The 10th percentile of the clients' accuracies (linear between order statistics, as
  /// numpy's default): what the worst-off tenth of the clients get; min_accuracy is the worst.
  double p10_accuracy = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;
  /// Strategies whose clients all hold one product (FLoRA/FedIT, FFA-LoRA):
  /// ‖Σ p_k B_k A_k − aggregated product‖_F / ‖Σ p_k B_k A_k‖_F, mean over adapted layers, and
  /// per layer; NaN / empty where it does not apply (fl/aggregation/aggregation_error.hpp).
  double aggregation_error = std::numeric_limits<double>::quiet_NaN();
  std::map<std::string, double> aggregation_error_by_layer;
  /// Differential privacy: ε spent after this round at privacy.delta; NaN without DP.
  double epsilon = std::numeric_limits<double>::quiet_NaN();
  /// Asynchronous mode: the virtual clock at this aggregation, and the staleness of the
  /// buffered updates (mean and largest); NaN in sync mode.
  double virtual_seconds = std::numeric_limits<double>::quiet_NaN();
  double mean_staleness = std::numeric_limits<double>::quiet_NaN();
  double max_staleness = std::numeric_limits<double>::quiet_NaN();
  /// The virtual clock (fl/federation/virtual_clock.hpp): this round's simulated seconds (sync:
  /// until its last kept answer or its deadline; async: since the previous aggregation), and
  /// the bytes up and down of every client since the run started; NaN / 0 before round 0.
  double round_virtual_seconds = std::numeric_limits<double>::quiet_NaN();
  int64_t cumulative_bytes = 0;
  /// evaluation.global_test: the global model on the dataset's official test split; NaN when off.
  double global_accuracy = std::numeric_limits<double>::quiet_NaN();
  double global_loss = std::numeric_limits<double>::quiet_NaN();
  /// evaluation.holdout_clients: the mean accuracy of the new clients (that never trained) on
  /// their own test splits with what they received, and after evaluation.adapt_steps local
  /// steps (fl/federation/holdout.hpp); NaN when off or not scored this round.
  double holdout_accuracy = std::numeric_limits<double>::quiet_NaN();
  double holdout_adapted_accuracy = std::numeric_limits<double>::quiet_NaN();
  /// evaluation.target_accuracy (NaN when off), and the fractional round at which the global
  /// test / mean client accuracy first reached it (fl/results/rounds_to_target.hpp); NaN until then.
  double target_accuracy = std::numeric_limits<double>::quiet_NaN();
  double global_rounds_to_target = std::numeric_limits<double>::quiet_NaN();
  double mean_rounds_to_target = std::numeric_limits<double>::quiet_NaN();
  /// The watched curve's crossing (global test where on, else mean client) on the virtual clock:
  /// the simulated seconds and the cumulative bytes at that fractional round, each linearly
  /// interpolated between the rounds around it; NaN until reached.
  double virtual_seconds_to_target = std::numeric_limits<double>::quiet_NaN();
  double bytes_to_target = std::numeric_limits<double>::quiet_NaN();
  /// Clients on other processes (serve): the bytes the server's connections to its nodes carried
  /// since the previous round's summary, as the kernel counted them (CAF's headers, every
  /// message of the round, TLS records included); 0 in one process, where nothing crosses a network.
  int64_t wire_bytes_sent = 0;
  int64_t wire_bytes_received = 0;
};

/// A node's scheduler (fedvlm-sim node), as the server hears it twice a second: the same
/// figures as the scheduler events below, totalled on the node.
struct NodeSchedulerStats {
  int node = 0;
  int queue_depth = 0;
  int running_jobs = 0;                       ///< with scheduler.memory_budget; 0 otherwise
  std::map<std::string, int64_t> jobs;        ///< finished jobs per kind ("train", "eval", ...)
  std::map<std::string, double> busy_seconds; ///< their run time per kind, since the node started
  int64_t resident_bytes = 0;                 ///< the node process's resident set
  int64_t device_bytes_in_use = 0;            ///< as device_memory(): a GPU's allocator, or the RSS
  int64_t device_peak_bytes = -1;             ///< -1: not tracked (CPU)
};

/// Receives a run's events as they happen. Implementations must be thread-safe: actors call
/// them from their own threads. Every event is pure virtual: ObserverList (which must forward all) and a test's
/// counting observer fail to compile when an event is added without them. Sinks that take
/// only some events derive from RunObserverBase.
class RunObserver {
public:
  virtual ~RunObserver() = default;
  virtual void run_started(const std::string& run, const std::string& strategy, int clients,
                           int rounds) = 0;
  virtual void round_started(const std::string& run, int round, int total_rounds) = 0;
  virtual void client_evaluated(const ClientRoundRecord& record) = 0;
  virtual void client_finished_training(const std::string& run, int round, int client) = 0;
  virtual void round_finished(const RoundSummary& summary) = 0;
  virtual void run_finished(const std::string& run) = 0;
  /// Scheduler: jobs waiting, and one finished job ("train" / "eval") with its durations.
  virtual void scheduler_queue(int depth) = 0;
  virtual void scheduler_job(const std::string& kind, double queued_seconds,
                             double run_seconds) = 0;
  /// Memory where the models run: a GPU's caching allocator (in use, and its peak), or on the
  /// CPU the process's resident set (peak -1: not tracked there).
  virtual void device_memory(int64_t bytes_in_use, int64_t peak_bytes) = 0;
  /// The process's resident set, wherever the models run.
  virtual void process_memory(int64_t resident_bytes) = 0;
  /// scheduler.memory_budget: jobs running now, the budget, and the projected memory of the
  /// shared part plus the running jobs (fl/runtime/memory_admission.hpp).
  virtual void scheduler_memory(int running_jobs, int64_t budget_bytes, int64_t projected_bytes) = 0;
  /// serve: the latest figures of a node's scheduler (the events above are this process's own).
  virtual void node_scheduler(const NodeSchedulerStats& stats) = 0;
};

/// A RunObserver that ignores every event: sinks override what they need.
class RunObserverBase : public RunObserver {
public:
  void run_started(const std::string& run, const std::string& strategy, int clients, int rounds) override {}
  void round_started(const std::string& run, int round, int total_rounds) override {}
  void client_evaluated(const ClientRoundRecord& record) override {}
  void client_finished_training(const std::string& run, int round, int client) override {}
  void round_finished(const RoundSummary& summary) override {}
  void run_finished(const std::string& run) override {}
  void scheduler_queue(int depth) override {}
  void scheduler_job(const std::string& kind, double queued_seconds, double run_seconds) override {}
  void device_memory(int64_t bytes_in_use, int64_t peak_bytes) override {}
  void process_memory(int64_t resident_bytes) override {}
  void scheduler_memory(int running_jobs, int64_t budget_bytes, int64_t projected_bytes) override {}
  void node_scheduler(const NodeSchedulerStats& stats) override {}
};

} // namespace fedvlm
