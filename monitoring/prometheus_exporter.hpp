// monitoring/prometheus_exporter.hpp — a RunObserver that serves a run's events as Prometheus metrics.
//
// Pull: a MetricsHttpServer on `listen` serves /metrics. Push: optionally, the same registry is
// pushed to a Pushgateway after every round (for runs too short or too firewalled to scrape).
// The header stays free of prometheus-cpp and LibTorch types so every translation unit that
// wires up observers does not pay for them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fl/results/run_records.hpp"

namespace fedvlm {

struct PrometheusSettings {
  std::string listen;      ///< "127.0.0.1:9464" ("host:0" picks a free port); empty = no /metrics
  std::string pushgateway; ///< "http://host:port"; empty = no pushing
  std::string push_job = "fedvlm"; ///< Pushgateway grouping key `job`
  double linger_seconds = 0;       ///< linger() keeps /metrics up this long after the run
};

/// Metric families (all prefixed `fedvlm_`, base units):
///   per run     {run,strategy}:            fedvlm_round, fedvlm_rounds, fedvlm_clients,
///               fedvlm_run_active, fedvlm_rounds_completed_total, fedvlm_round_clients_answered,
///               fedvlm_round_clients_selected, fedvlm_round_accuracy{stat=mean|min|max},
///               fedvlm_round_sent_bytes, fedvlm_round_received_bytes,
///               fedvlm_round_duration_seconds (histogram)
///   per client  {run,strategy,client,phase}: fedvlm_client_accuracy, _precision, _recall, _f1,
///               _loss; {run,strategy,client}: fedvlm_client_train_loss,
///               fedvlm_client_sent_bytes_total, fedvlm_client_received_bytes_total,
///               fedvlm_client_participations_total, fedvlm_client_trainings_total;
///               {run,strategy,client,split=train|test}: fedvlm_client_samples
///   process     fedvlm_scheduler_queue_depth, fedvlm_scheduler_busy_seconds_total{kind},
///               fedvlm_scheduler_job_duration_seconds{kind}, fedvlm_scheduler_job_wait_seconds{kind}
///               (histograms), fedvlm_device_memory_bytes{stat=in_use|peak} (peak: a GPU's
///               allocator only), fedvlm_process_resident_bytes; with scheduler.memory_budget:
///               fedvlm_scheduler_running_jobs, fedvlm_scheduler_memory_budget_bytes,
///               fedvlm_scheduler_projected_memory_bytes, fedvlm_scheduler_jobs_total{kind}
///   serve       the scheduler families above with a `node` label, from each node's scheduler
///               (queue depth, running jobs, jobs and busy seconds per kind, memory; no job
///               histograms); {run,strategy,direction=sent|received}: fedvlm_round_wire_bytes
/// "sent"/"received" are from the client's side: sent = uploaded to the aggregator.
/// All methods are thread-safe.
class PrometheusExporter : public RunObserverBase {
public:
  /// Starts serving /metrics on settings.listen (if set). Throws std::runtime_error naming the
  /// address if it cannot be bound, or naming the URL if settings.pushgateway is malformed.
  explicit PrometheusExporter(PrometheusSettings settings);
  ~PrometheusExporter() override; ///< finishes any push still requested, then stops serving
  PrometheusExporter(const PrometheusExporter&) = delete;
  PrometheusExporter& operator=(const PrometheusExporter&) = delete;

  /// "http://127.0.0.1:9464/metrics" with the port actually bound; empty when not listening.
  [[nodiscard]] std::string endpoint() const;
  /// Pushes the current state to the Pushgateway now, blocking. Failures are logged (the first
  /// of a streak at warn, repeats at debug, so a dead gateway does not flood the log), not thrown;
  /// returns whether the gateway accepted it (false also when no gateway is configured).
  bool push();
  /// The current state in the text exposition format, exactly as /metrics serves it (without the
  /// server; works without `listen`, e.g. to save a final snapshot.
  [[nodiscard]] std::string metrics_text() const;
  /// Blocks for linger_seconds (if > 0 and /metrics is served) so a short run can still be
  /// scraped after it ends; a stop signal (fl/runtime/interrupt.hpp) ends it early.
  void linger();

  /// Every metric family name this exporter registers, sorted.
  [[nodiscard]] static std::vector<std::string> metric_names();

  void run_started(const std::string& run, const std::string& strategy, int clients,
                   int rounds) override;
  void round_started(const std::string& run, int round, int total_rounds) override;
  void client_evaluated(const ClientRoundRecord& record) override;
  void client_finished_training(const std::string& run, int round, int client) override;
  void round_finished(const RoundSummary& summary) override;
  void run_finished(const std::string& run) override;
  void scheduler_queue(int depth) override;
  void scheduler_job(const std::string& kind, double queued_seconds,
                     double run_seconds) override;
  void device_memory(int64_t bytes_in_use, int64_t peak_bytes) override;
  void process_memory(int64_t resident_bytes) override;
  void scheduler_memory(int running_jobs, int64_t budget_bytes, int64_t projected_bytes) override;
  void node_scheduler(const NodeSchedulerStats& stats) override;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace fedvlm
