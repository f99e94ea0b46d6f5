// monitoring/metric_families.hpp — every Prometheus family fedvlm-sim exports, declared once: name, type, help, labels.
//
// The exporter registers what this table says, metric_names() and `fedvlm-sim --metrics` list
// it, and monitoring/README.md's table is its Markdown rendering (a test keeps them equal). A
// new metric is one enum value and one row.
#pragma once

#include <array>
#include <cstddef>
#include <string>

namespace fedvlm {

enum class Metric {
  round, rounds, clients, run_active, rounds_completed,
  round_answered, round_selected, round_failed, round_late, round_aggregation_error, privacy_epsilon,
  round_staleness, virtual_seconds, global_test, holdout_accuracy, rounds_to_target, round_accuracy, round_sent, round_received, round_duration, wire,
  client_accuracy, client_precision, client_recall, client_f1, client_loss, client_task_metric, client_train_loss,
  client_drift, client_staleness, client_samples, client_sent, client_received, client_participations,
  client_trainings,
  queue_depth, busy_seconds, job_duration, job_wait, jobs, running_jobs, memory_budget, projected_memory,
  device_memory, process_memory,
  count
};

enum class MetricKind { gauge, counter, histogram };

struct MetricFamily {
  Metric id;
  const char* name;
  MetricKind kind;
  const char* help;
  const char* labels; ///< comma-separated; "" when the family has none
};

constexpr std::size_t kMetricCount = static_cast<std::size_t>(Metric::count);

/// Every family, in the enum's order.
[[nodiscard]] const std::array<MetricFamily, kMetricCount>& metric_families();
[[nodiscard]] const MetricFamily& metric_family(Metric metric);
[[nodiscard]] const char* to_string(MetricKind kind);

/// The table as Markdown (| name | type | meaning | labels |), as monitoring/README.md shows it.
[[nodiscard]] std::string metric_families_markdown();

} // namespace fedvlm
