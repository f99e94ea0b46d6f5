// monitoring/metric_families.cpp — the table of Prometheus families, checked against the enum at compile time.
#include "monitoring/metric_families.hpp"

namespace fedvlm {

namespace {

constexpr const char* kRun = "run, strategy";
constexpr const char* kClient = "run, strategy, client";
constexpr const char* kEval = "run, strategy, client, phase";

using K = MetricKind;
using M = Metric;

constexpr std::array<MetricFamily, kMetricCount> kFamilies = {{
    {M::round, "fedvlm_round", K::gauge, "Round in progress (0 = before fine-tuning).", kRun},
    {M::rounds, "fedvlm_rounds", K::gauge, "Planned number of federated rounds.", kRun},
    {M::clients, "fedvlm_clients", K::gauge, "Number of simulated clients in the run.", kRun},
    {M::run_active, "fedvlm_run_active", K::gauge, "1 while the run is going, 0 once it finished.", kRun},
    {M::rounds_completed, "fedvlm_rounds_completed_total", K::counter, "Federated rounds finished.", kRun},
    {M::round_answered, "fedvlm_round_clients_answered", K::gauge,
     "Clients whose update was aggregated in the last round.", kRun},
    {M::round_selected, "fedvlm_round_clients_selected", K::gauge, "Clients selected for the last round.", kRun},
    {M::round_failed, "fedvlm_round_clients_failed", K::gauge,
     "Selected clients that sent no update in the last round (failed, dropped out, crashed, timed out).", kRun},
    {M::round_late, "fedvlm_round_clients_late", K::gauge,
     "Clients whose update arrived late (simulated stragglers) in the last round.", kRun},
    {M::round_aggregation_error, "fedvlm_round_aggregation_error", K::gauge,
     "||sum_k p_k B_k A_k - aggregated product||_F / ||sum_k p_k B_k A_k||_F of the last round, per adapted "
     "layer and layer=\"mean\"; NaN where every client keeps its own product (see fedvlm_client_drift).",
     "run, strategy, layer"},
    {M::privacy_epsilon, "fedvlm_privacy_epsilon", K::gauge,
     "Differential privacy: epsilon spent so far at privacy.delta (RDP accountant).", kRun},
    {M::round_staleness, "fedvlm_round_staleness", K::gauge,
     "Asynchronous mode: staleness (versions the global moved on while computed) of the updates in the last "
     "aggregation; stat = mean|max.",
     "run, strategy, stat"},
    {M::virtual_seconds, "fedvlm_virtual_seconds", K::gauge,
     "The virtual clock after the last round or aggregation (simulated seconds; sync rounds too).", kRun},
    {M::global_test, "fedvlm_global_test", K::gauge,
     "evaluation.global_test: the global model on the dataset's official test split after the last round; "
     "stat = accuracy|loss.",
     "run, strategy, stat"},
    {M::holdout_accuracy, "fedvlm_holdout_accuracy", K::gauge,
     "evaluation.holdout_clients: mean accuracy of the new clients (never trained) on their own test splits with "
     "the global tensors and fresh private ones, after the last round they were scored; phase = received|adapted "
     "(after evaluation.adapt_steps local steps).",
     "run, strategy, phase"},
    {M::rounds_to_target, "fedvlm_rounds_to_target", K::gauge,
     "evaluation.target_accuracy: the (interpolated) round at which the accuracy first reached the target (monotone "
     "curve, linear interpolation); curve = global_test|mean_client; absent until reached.",
     "run, strategy, curve"},
    {M::round_accuracy, "fedvlm_round_accuracy", K::gauge,
     "Accuracy over clients after the last round; stat = mean|min|max|p10 (min: the worst client, p10: the 10th percentile).", "run, strategy, stat"},
    {M::round_sent, "fedvlm_round_sent_bytes", K::gauge, "Bytes all clients sent to the aggregator in the latest round.",
     kRun},
    {M::round_received, "fedvlm_round_received_bytes", K::gauge,
     "Bytes the aggregator sent to all clients in the latest round.", kRun},
    {M::round_duration, "fedvlm_round_duration_seconds", K::histogram, "Wall time of a federated round.", kRun},
    {M::wire, "fedvlm_round_wire_bytes", K::gauge,
     "serve: bytes the server's connections to its nodes carried in the latest round, as the kernel counted them "
     "(headers, every message, TLS); direction = sent|received.",
     "run, strategy, direction"},
    {M::client_accuracy, "fedvlm_client_accuracy", K::gauge,
     "Client accuracy on the client's own test split; phase = before|round.", kEval},
    {M::client_precision, "fedvlm_client_precision", K::gauge,
     "Client macro precision on the client's own test split; phase = before|round.", kEval},
    {M::client_recall, "fedvlm_client_recall", K::gauge,
     "Client macro recall on the client's own test split; phase = before|round.", kEval},
    {M::client_f1, "fedvlm_client_f1", K::gauge, "Client macro F1 on the client's own test split; phase = before|round.",
     kEval},
    {M::client_loss, "fedvlm_client_loss", K::gauge,
     "Client mean cross-entropy test loss on the client's own test split; phase = before|round.", kEval},
    {M::client_task_metric, "fedvlm_client_task_metric", K::gauge,
     "A task's own metric of the client, by name (metric = exact_match: generated answers equal to the reference, "
     "VQA) on the client's own test split; phase = before|round.",
     "run, strategy, client, phase, metric"},
    {M::client_train_loss, "fedvlm_client_train_loss", K::gauge, "Client mean local training loss in the last round.",
     kClient},
    {M::client_drift, "fedvlm_client_drift", K::gauge,
     "Personalised strategies: ||B'A' - B_k A_k||_F / ||B_k A_k||_F, what the client's update lost to the average "
     "in the last round it took part in (mean over layers).",
     kClient},
    {M::client_staleness, "fedvlm_client_staleness", K::gauge,
     "Asynchronous mode: staleness of the client's update(s) in the last aggregation it took part in.", kClient},
    {M::client_samples, "fedvlm_client_samples", K::gauge, "Samples in the client's split; split = train|test.",
     "run, strategy, client, split"},
    {M::client_sent, "fedvlm_client_sent_bytes_total", K::counter, "Bytes the client sent to the aggregator.", kClient},
    {M::client_received, "fedvlm_client_received_bytes_total", K::counter, "Bytes the aggregator sent to the client.",
     kClient},
    {M::client_participations, "fedvlm_client_participations_total", K::counter,
     "Rounds in which the client's update was aggregated.", kClient},
    {M::client_trainings, "fedvlm_client_trainings_total", K::counter, "Local training jobs the client finished.",
     kClient},
    {M::queue_depth, "fedvlm_scheduler_queue_depth", K::gauge,
     "Jobs waiting for the device; node = a serve node's scheduler.", "node"},
    {M::busy_seconds, "fedvlm_scheduler_busy_seconds_total", K::counter,
     "Seconds jobs spent running on the device; rate() = busy slots.", "kind, node"},
    {M::job_duration, "fedvlm_scheduler_job_duration_seconds", K::histogram,
     "Run time of a scheduler job; kind = train|eval.", "kind"},
    {M::job_wait, "fedvlm_scheduler_job_wait_seconds", K::histogram, "Time a scheduler job waited in the queue.",
     "kind"},
    {M::jobs, "fedvlm_scheduler_jobs_total", K::counter,
     "Scheduler jobs finished; kind = train|eval|...; node = a serve node's scheduler.", "kind, node"},
    {M::running_jobs, "fedvlm_scheduler_running_jobs", K::gauge,
     "Jobs the scheduler admitted that are running now (scheduler.memory_budget).", "node"},
    {M::memory_budget, "fedvlm_scheduler_memory_budget_bytes", K::gauge,
     "scheduler.memory_budget: memory for the shared base plus running jobs.", ""},
    {M::projected_memory, "fedvlm_scheduler_projected_memory_bytes", K::gauge,
     "The shared base plus the measured cost of each running job, as admission projects it.", ""},
    {M::device_memory, "fedvlm_device_memory_bytes", K::gauge,
     "Memory where the models run; stat = in_use | peak: a GPU's caching allocator (allocated bytes and their "
     "peak), on the CPU the process's resident set (in_use only).",
     "stat, node"},
    {M::process_memory, "fedvlm_process_resident_bytes", K::gauge,
     "Resident memory of the fedvlm-sim process, wherever the models run.", "node"},
}};

constexpr bool rows_follow_the_enum() {
  for (std::size_t i = 0; i < kFamilies.size(); ++i)
    if (static_cast<std::size_t>(kFamilies[i].id) != i) return false;
  return true;
}
static_assert(rows_follow_the_enum(), "metric_families: one row per Metric, in the enum's order");

} // namespace

const std::array<MetricFamily, kMetricCount>& metric_families() { return kFamilies; }

const MetricFamily& metric_family(Metric metric) { return kFamilies[static_cast<std::size_t>(metric)]; }

const char* to_string(MetricKind kind) {
  switch (kind) {
  case MetricKind::gauge: return "gauge";
  case MetricKind::counter: return "counter";
  case MetricKind::histogram: return "histogram";
  }
  return "?";
}

std::string metric_families_markdown() {
  std::string out = "| family | type | meaning | labels |\n| --- | --- | --- | --- |\n";
  for (const MetricFamily& f : kFamilies) {
    std::string help = f.help;
    for (std::size_t p = help.find('|'); p != std::string::npos; p = help.find('|', p + 2)) help.replace(p, 1, "\\|");
    out += std::string("| `") + f.name + "` | " + to_string(f.kind) + " | " + help + " | " +
           (*f.labels ? f.labels : "—") + " |\n";
  }
  return out;
}

} // namespace fedvlm
