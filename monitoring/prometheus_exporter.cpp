// monitoring/prometheus_exporter.cpp — prometheus-cpp registry, /metrics server and Pushgateway behind RunObserver.
#include "monitoring/metrics_http_server.hpp"
#include "monitoring/prometheus_exporter.hpp"

#include "fl/runtime/interrupt.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gateway.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace fedvlm {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// One place for the names so metric_names() cannot drift from what is registered.
namespace name {
constexpr const char* round = "fedvlm_round";
constexpr const char* rounds = "fedvlm_rounds";
constexpr const char* clients = "fedvlm_clients";
constexpr const char* run_active = "fedvlm_run_active";
constexpr const char* rounds_completed = "fedvlm_rounds_completed_total";
constexpr const char* round_answered = "fedvlm_round_clients_answered";
constexpr const char* round_selected = "fedvlm_round_clients_selected";
constexpr const char* round_failed = "fedvlm_round_clients_failed";
constexpr const char* round_late = "fedvlm_round_clients_late";
constexpr const char* round_aggregation_error = "fedvlm_round_aggregation_error";
constexpr const char* privacy_epsilon = "fedvlm_privacy_epsilon";
constexpr const char* round_staleness = "fedvlm_round_staleness";
constexpr const char* virtual_seconds = "fedvlm_virtual_seconds";
constexpr const char* client_staleness = "fedvlm_client_staleness";
constexpr const char* global_test = "fedvlm_global_test";
constexpr const char* client_drift = "fedvlm_client_drift";
constexpr const char* round_accuracy = "fedvlm_round_accuracy";
constexpr const char* round_sent = "fedvlm_round_sent_bytes";
constexpr const char* round_received = "fedvlm_round_received_bytes";
constexpr const char* round_duration = "fedvlm_round_duration_seconds";
constexpr const char* client_accuracy = "fedvlm_client_accuracy";
constexpr const char* client_precision = "fedvlm_client_precision";
constexpr const char* client_recall = "fedvlm_client_recall";
constexpr const char* client_f1 = "fedvlm_client_f1";
constexpr const char* client_task_metric = "fedvlm_client_task_metric";
constexpr const char* client_loss = "fedvlm_client_loss";
constexpr const char* client_train_loss = "fedvlm_client_train_loss";
constexpr const char* client_samples = "fedvlm_client_samples";
constexpr const char* client_sent = "fedvlm_client_sent_bytes_total";
constexpr const char* client_received = "fedvlm_client_received_bytes_total";
constexpr const char* client_participations = "fedvlm_client_participations_total";
constexpr const char* client_trainings = "fedvlm_client_trainings_total";
constexpr const char* queue_depth = "fedvlm_scheduler_queue_depth";
constexpr const char* busy_seconds = "fedvlm_scheduler_busy_seconds_total";
constexpr const char* job_duration = "fedvlm_scheduler_job_duration_seconds";
constexpr const char* job_wait = "fedvlm_scheduler_job_wait_seconds";
constexpr const char* device_memory = "fedvlm_device_memory_bytes";
constexpr const char* running_jobs = "fedvlm_scheduler_running_jobs";
constexpr const char* process_memory = "fedvlm_process_resident_bytes";
constexpr const char* memory_budget = "fedvlm_scheduler_memory_budget_bytes";
constexpr const char* projected_memory = "fedvlm_scheduler_projected_memory_bytes";
constexpr const char* jobs = "fedvlm_scheduler_jobs_total";
constexpr const char* wire = "fedvlm_round_wire_bytes";
} // namespace name

// Rounds of a small simulated federation take seconds; a real-size one minutes.
const Histogram::BucketBoundaries kRoundBuckets = {0.25, 0.5, 1, 2, 5, 10, 20, 30,
                                                   60,   120, 300, 600, 1200, 3600};
// Jobs range from a millisecond-scale eval batch on a GPU to minutes of CPU training.
const Histogram::BucketBoundaries kJobBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                 1,     2.5,   5,    10,    30,    60,  120, 300};

/// "http://host:port" → {"http://host", "port"}, the split prometheus::Gateway wants.
std::pair<std::string, std::string> split_gateway_url(const std::string& url) {
  const std::string scheme_sep = "://";
  const auto scheme_end = url.find(scheme_sep);
  const std::size_t host_begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  std::string rest = url.substr(host_begin);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  const bool bracketed_v6 = !rest.empty() && rest.back() == ']';
  if (rest.empty() || rest.find('/') != std::string::npos || colon == std::string::npos ||
      bracketed_v6 || colon + 1 == rest.size() ||
      rest.find_first_not_of("0123456789", colon + 1) != std::string::npos)
    throw std::runtime_error("monitoring pushgateway \"" + url +
                             "\": expected http://host:port (no path)");
  const std::string scheme = scheme_end == std::string::npos ? "http" : url.substr(0, scheme_end);
  return {scheme + "://" + rest.substr(0, colon), rest.substr(colon + 1)};
}

/// Host part of a civetweb listen spec ("127.0.0.1:9464", "[::1]:9464", "9464").
std::string listen_host(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return "localhost";
  std::string host = listen.substr(0, colon);
  if (host == "0.0.0.0" || host == "[::]") return "localhost"; // a URL one can actually open
  return host;
}

} // namespace

struct PrometheusExporter::Impl {
  PrometheusSettings settings;
  // Declared before exposer/gateway: they hold weak pointers to it and must go first.
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<MetricsHttpServer> exposer;
  std::unique_ptr<prometheus::Gateway> gateway;
  std::string endpoint;

  Family<Gauge>* round;
  Family<Gauge>* rounds;
  Family<Gauge>* clients;
  Family<Gauge>* run_active;
  Family<Counter>* rounds_completed;
  Family<Gauge>* round_answered;
  Family<Gauge>* round_selected;
  Family<Gauge>* round_failed;
  Family<Gauge>* round_late;
  Family<Gauge>* round_aggregation_error;
  Family<Gauge>* privacy_epsilon;
  Family<Gauge>* round_staleness;
  Family<Gauge>* virtual_seconds;
  Family<Gauge>* client_staleness;
  Family<Gauge>* global_test;
  Family<Gauge>* client_drift;
  Family<Gauge>* round_accuracy;
  Family<Gauge>* round_sent;
  Family<Gauge>* round_received;
  Family<Histogram>* round_duration;
  Family<Gauge>* client_accuracy;
  Family<Gauge>* client_precision;
  Family<Gauge>* client_recall;
  Family<Gauge>* client_f1;
  Family<Gauge>* client_task_metric;
  Family<Gauge>* client_loss;
  Family<Gauge>* client_train_loss;
  Family<Gauge>* client_samples;
  Family<Counter>* client_sent;
  Family<Counter>* client_received;
  Family<Counter>* client_participations;
  Family<Counter>* client_trainings;
  Family<Gauge>* queue_depth;
  Family<Counter>* busy_seconds;
  Family<Histogram>* job_duration;
  Family<Histogram>* job_wait;
  Family<Gauge>* device_memory;
  Family<Gauge>* running_jobs;
  Family<Gauge>* process_memory;
  Family<Gauge>* memory_budget;
  Family<Gauge>* projected_memory;
  Family<Counter>* jobs;
  Family<Gauge>* wire;

  // Bookkeeping the events do not carry themselves; prometheus-cpp is thread-safe on its own.
  std::mutex state_mutex;
  std::map<std::string, std::string> strategy_of_run; // for events that name only the run
  struct RoundBytes {
    int round = -1;
    double up = 0, down = 0;
  };
  std::map<std::string, RoundBytes> latest_round_bytes; // per run
  /// A node's totals as last exported, per (node, kind): counters only go up by the difference.
  std::map<std::pair<int, std::string>, std::pair<int64_t, double>> node_totals;

  // Pushes happen on their own thread: a slow or black-holed gateway must not stall the actor
  // that finished a round. Requests coalesce; only the latest state matters.
  std::mutex push_mutex; // serializes Gateway::Push (worker vs. explicit push())
  std::mutex worker_mutex;
  std::condition_variable worker_cv;
  bool last_push_failed = false; // guarded by push_mutex
  bool push_requested = false;
  bool stopping = false;
  std::thread worker;

  explicit Impl(PrometheusSettings s) : settings(std::move(s)) {
    auto gauge = [&](const char* n, const char* help) {
      return &prometheus::BuildGauge().Name(n).Help(help).Register(*registry);
    };
    auto counter = [&](const char* n, const char* help) {
      return &prometheus::BuildCounter().Name(n).Help(help).Register(*registry);
    };
    auto histogram = [&](const char* n, const char* help) {
      return &prometheus::BuildHistogram().Name(n).Help(help).Register(*registry);
    };
    round = gauge(name::round, "Round in progress (0 = before fine-tuning).");
    rounds = gauge(name::rounds, "Planned number of federated rounds.");
    clients = gauge(name::clients, "Number of simulated clients in the run.");
    run_active = gauge(name::run_active, "1 while the run is going, 0 once it finished.");
    rounds_completed = counter(name::rounds_completed, "Federated rounds finished.");
    round_answered =
        gauge(name::round_answered, "Clients whose update was aggregated in the last round.");
    round_selected = gauge(name::round_selected, "Clients selected for the last round.");
    round_failed = gauge(name::round_failed,
                         "Selected clients that sent no update in the last round (failed, dropped out, crashed, timed out).");
    round_late = gauge(name::round_late, "Clients whose update arrived late (simulated stragglers) in the last round.");
    round_aggregation_error = gauge(
        name::round_aggregation_error,
        "||sum_k p_k B_k A_k - aggregated product||_F / ||sum_k p_k B_k A_k||_F of the last round, per adapted "
        "layer and layer=\"mean\"; NaN where every client keeps its own product (see fedvlm_client_drift).");
    privacy_epsilon = gauge(name::privacy_epsilon, "Differential privacy: epsilon spent so far at privacy.delta (RDP accountant).");
    round_staleness = gauge(name::round_staleness,
                            "Asynchronous mode: staleness (versions the global moved on while computed) of the updates in "
                            "the last aggregation; stat = mean|max.");
    virtual_seconds = gauge(name::virtual_seconds, "Asynchronous mode: the virtual clock at the last aggregation (simulated seconds).");
    global_test = gauge(name::global_test,
                        "evaluation.global_test: the global model on the dataset's official test split after the last "
                        "round; stat = accuracy|loss.");
    client_staleness = gauge(name::client_staleness,
                             "Asynchronous mode: staleness of the client's update(s) in the last aggregation it took part in.");
    client_drift = gauge(name::client_drift,
                         "Personalised strategies: ||B'A' - B_k A_k||_F / ||B_k A_k||_F, what the client's update lost "
                         "to the average in the last round it took part in (mean over layers).");
    round_accuracy = gauge(name::round_accuracy,
                           "Accuracy over clients after the last round; stat = mean|min|max.");
    round_sent = gauge(name::round_sent,
                       "Bytes all clients sent to the aggregator in the latest round.");
    round_received = gauge(name::round_received,
                           "Bytes the aggregator sent to all clients in the latest round.");
    round_duration = histogram(name::round_duration, "Wall time of a federated round.");
    const char* eval_note = " on the client's own test split; phase = before|round.";
    const std::string acc = std::string("Client accuracy") + eval_note;
    const std::string prec = std::string("Client macro precision") + eval_note;
    const std::string rec = std::string("Client macro recall") + eval_note;
    const std::string f1 = std::string("Client macro F1") + eval_note;
    const std::string loss = std::string("Client mean cross-entropy test loss") + eval_note;
    client_accuracy = gauge(name::client_accuracy, acc.c_str());
    client_precision = gauge(name::client_precision, prec.c_str());
    client_recall = gauge(name::client_recall, rec.c_str());
    client_f1 = gauge(name::client_f1, f1.c_str());
    const std::string task = std::string("A task's own metric of the client, by name (metric = exact_match: "
                                         "generated answers equal to the reference, VQA)") + eval_note;
    client_task_metric = gauge(name::client_task_metric, task.c_str());
    client_loss = gauge(name::client_loss, loss.c_str());
    client_train_loss =
        gauge(name::client_train_loss, "Client mean local training loss in the last round.");
    client_samples = gauge(name::client_samples, "Samples in the client's split; split = train|test.");
    client_sent = counter(name::client_sent, "Bytes the client sent to the aggregator.");
    client_received = counter(name::client_received, "Bytes the aggregator sent to the client.");
    client_participations =
        counter(name::client_participations, "Rounds in which the client's update was aggregated.");
    client_trainings = counter(name::client_trainings, "Local training jobs the client finished.");
    queue_depth = gauge(name::queue_depth, "Jobs waiting for the device.");
    busy_seconds = counter(name::busy_seconds,
                           "Seconds jobs spent running on the device; rate() = busy slots.");
    job_duration = histogram(name::job_duration, "Run time of a scheduler job; kind = train|eval.");
    job_wait = histogram(name::job_wait, "Time a scheduler job waited in the queue.");
    device_memory = gauge(name::device_memory,
                          "Memory where the models run; stat = in_use | peak: a GPU's caching allocator (allocated "
                          "bytes and their peak), on the CPU the process's resident set (in_use only).");
    process_memory = gauge(name::process_memory, "Resident memory of the fedvlm-sim process, wherever the models run.");
    running_jobs = gauge(name::running_jobs, "Jobs the scheduler admitted that are running now (scheduler.memory_budget).");
    jobs = counter(name::jobs, "Scheduler jobs finished; kind = train|eval|...; node = a serve node's scheduler.");
    wire = gauge(name::wire, "serve: bytes the server's connections to its nodes carried in the latest round, as the "
                             "kernel counted them (headers, every message, TLS); direction = sent|received.");
    memory_budget = gauge(name::memory_budget, "scheduler.memory_budget: memory for the shared base plus running jobs.");
    projected_memory = gauge(name::projected_memory,
                             "The shared base plus the measured cost of each running job, as admission projects it.");

    if (!settings.listen.empty()) {
      try {
        exposer = std::make_unique<MetricsHttpServer>(settings.listen, [this] {
          return prometheus::TextSerializer().Serialize(registry->Collect());
        });
      } catch (const std::exception& e) {
        throw std::runtime_error("cannot serve Prometheus metrics on \"" + settings.listen +
                                 "\" (expected a free host:port to bind): " + e.what());
      }
      const std::string port = std::to_string(exposer->port());
      endpoint = "http://" + listen_host(settings.listen) + ":" + port + "/metrics";
      spdlog::info("serving Prometheus metrics at {}", endpoint);
    }
    if (!settings.pushgateway.empty()) {
      const auto [host, port] = split_gateway_url(settings.pushgateway);
      gateway = std::make_unique<prometheus::Gateway>(host, port, settings.push_job);
      gateway->RegisterCollectable(registry);
      worker = std::thread([this] { push_loop(); });
      spdlog::info("pushing metrics to {} as job \"{}\" after every round",
                   settings.pushgateway, settings.push_job);
    }
  }

  ~Impl() {
    if (worker.joinable()) {
      {
        std::lock_guard lock(worker_mutex);
        stopping = true;
      }
      worker_cv.notify_all();
      worker.join();
    }
  }

  bool push_now() {
    if (!gateway) return false;
    std::lock_guard lock(push_mutex);
    std::string failure;
    try {
      // prometheus-cpp returns the HTTP status, or a negative/zero value when curl failed.
      const int status = gateway->Push();
      if (status < 200 || status >= 300)
        failure = (status >= 100 ? "HTTP " + std::to_string(status) : "no HTTP response") +
                  " (expected HTTP 2xx from a Pushgateway)";
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (failure.empty()) {
      if (last_push_failed) spdlog::info("pushing metrics to {} works again", settings.pushgateway);
      last_push_failed = false;
      return true;
    }
    const auto level = last_push_failed ? spdlog::level::debug : spdlog::level::warn;
    spdlog::log(level, "pushing metrics to {} failed: {}", settings.pushgateway, failure);
    last_push_failed = true;
    return false;
  }

  void request_push() {
    if (!gateway) return;
    {
      std::lock_guard lock(worker_mutex);
      push_requested = true;
    }
    worker_cv.notify_one();
  }

  void push_loop() {
    std::unique_lock lock(worker_mutex);
    for (;;) {
      worker_cv.wait(lock, [this] { return push_requested || stopping; });
      if (push_requested) {
        push_requested = false;
        lock.unlock();
        push_now();
        lock.lock();
        continue; // drain a request that came in meanwhile before honouring `stopping`
      }
      if (stopping) return;
    }
  }

  std::string strategy_for(const std::string& run) {
    std::lock_guard lock(state_mutex);
    const auto it = strategy_of_run.find(run);
    return it == strategy_of_run.end() ? std::string() : it->second;
  }
};

PrometheusExporter::PrometheusExporter(PrometheusSettings settings)
    : impl_(std::make_unique<Impl>(std::move(settings))) {}

PrometheusExporter::~PrometheusExporter() = default;

std::string PrometheusExporter::endpoint() const { return impl_->endpoint; }

bool PrometheusExporter::push() { return impl_->push_now(); }

std::string PrometheusExporter::metrics_text() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

void PrometheusExporter::linger() {
  const double seconds = impl_->settings.linger_seconds;
  if (seconds <= 0 || !impl_->exposer) return;
  spdlog::info("keeping metrics at {} for {} s (Ctrl-C ends it)", impl_->endpoint, seconds);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!interrupt_requested() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

std::vector<std::string> PrometheusExporter::metric_names() {
  std::vector<std::string> names = {
      name::round,          name::rounds,           name::clients,
      name::run_active,     name::rounds_completed, name::round_answered,
      name::round_selected, name::round_failed,     name::round_late,
      name::round_aggregation_error, name::privacy_epsilon, name::client_drift,
      name::round_staleness, name::virtual_seconds, name::client_staleness, name::global_test,
      name::round_accuracy, name::round_sent,
      name::round_received, name::round_duration,   name::client_accuracy,
      name::client_precision, name::client_recall,  name::client_f1, name::client_task_metric,
      name::client_loss,    name::client_train_loss, name::client_samples,
      name::client_sent,    name::client_received,  name::client_participations,
      name::client_trainings, name::queue_depth,    name::busy_seconds,
      name::job_duration,   name::job_wait,         name::device_memory,
      name::running_jobs,   name::memory_budget,    name::projected_memory, name::process_memory,
      name::jobs,           name::wire};
  std::sort(names.begin(), names.end());
  return names;
}

void PrometheusExporter::run_started(const std::string& run, const std::string& strategy,
                                     int clients, int rounds) {
  {
    std::lock_guard lock(impl_->state_mutex);
    impl_->strategy_of_run[run] = strategy;
  }
  const Labels labels{{"run", run}, {"strategy", strategy}};
  impl_->round->Add(labels).Set(0);
  impl_->rounds->Add(labels).Set(rounds);
  impl_->clients->Add(labels).Set(clients);
  impl_->run_active->Add(labels).Set(1);
  // Touch the counter so rate()/increase() see the zero before the first increment.
  impl_->rounds_completed->Add(labels);
}

void PrometheusExporter::round_started(const std::string& run, int round, int total_rounds) {
  const Labels labels{{"run", run}, {"strategy", impl_->strategy_for(run)}};
  impl_->round->Add(labels).Set(round);
  impl_->rounds->Add(labels).Set(total_rounds);
}

void PrometheusExporter::client_evaluated(const ClientRoundRecord& r) {
  const std::string client = std::to_string(r.client);
  const Labels eval{{"run", r.run}, {"strategy", r.strategy}, {"client", client}, {"phase", r.phase}};
  impl_->client_accuracy->Add(eval).Set(r.accuracy);
  impl_->client_precision->Add(eval).Set(r.precision);
  impl_->client_recall->Add(eval).Set(r.recall);
  impl_->client_f1->Add(eval).Set(r.f1);
  impl_->client_loss->Add(eval).Set(r.loss);
  for (const auto& [metric, value] : r.task_metrics) {
    Labels l = eval;
    l.emplace("metric", metric);
    impl_->client_task_metric->Add(l).Set(value);
  }

  const Labels per_client{{"run", r.run}, {"strategy", r.strategy}, {"client", client}};
  if (r.phase != kPhaseBefore) impl_->client_train_loss->Add(per_client).Set(r.train_loss);
  if (r.participated) impl_->client_drift->Add(per_client).Set(r.drift);
  if (std::isfinite(r.staleness)) impl_->client_staleness->Add(per_client).Set(r.staleness);
  auto split = [&](const char* s) {
    Labels l = per_client;
    l.emplace("split", s);
    return l;
  };
  impl_->client_samples->Add(split("train")).Set(static_cast<double>(r.train_samples));
  impl_->client_samples->Add(split("test")).Set(static_cast<double>(r.test_samples));
  // Add() even with nothing to count, so every client has a series from its first evaluation.
  auto& sent = impl_->client_sent->Add(per_client);
  auto& received = impl_->client_received->Add(per_client);
  auto& participations = impl_->client_participations->Add(per_client);
  if (r.bytes_up > 0) sent.Increment(static_cast<double>(r.bytes_up));
  if (r.bytes_down > 0) received.Increment(static_cast<double>(r.bytes_down));
  if (r.participated) participations.Increment();

  double up = 0, down = 0;
  {
    std::lock_guard lock(impl_->state_mutex);
    auto& latest = impl_->latest_round_bytes[r.run];
    if (r.round < latest.round) return; // a straggler's record for a round already superseded
    if (r.round > latest.round) latest = {r.round, 0, 0};
    latest.up += static_cast<double>(std::max<int64_t>(r.bytes_up, 0));
    latest.down += static_cast<double>(std::max<int64_t>(r.bytes_down, 0));
    up = latest.up;
    down = latest.down;
  }
  const Labels per_run{{"run", r.run}, {"strategy", r.strategy}};
  impl_->round_sent->Add(per_run).Set(up);
  impl_->round_received->Add(per_run).Set(down);
}

void PrometheusExporter::client_finished_training(const std::string& run, int round, int client) {
  impl_->client_trainings
      ->Add({{"run", run}, {"strategy", impl_->strategy_for(run)}, {"client", std::to_string(client)}})
      .Increment();
}

void PrometheusExporter::round_finished(const RoundSummary& s) {
  const Labels labels{{"run", s.run}, {"strategy", s.strategy}};
  impl_->round->Add(labels).Set(s.round);
  if (s.total_rounds > 0) impl_->rounds->Add(labels).Set(s.total_rounds);
  impl_->rounds_completed->Add(labels).Increment();
  impl_->round_answered->Add(labels).Set(s.clients_answered);
  impl_->round_selected->Add(labels).Set(s.clients_selected);
  impl_->round_failed->Add(labels).Set(s.clients_failed);
  impl_->round_late->Add(labels).Set(s.clients_late);
  if (s.wire_bytes_sent > 0 || s.wire_bytes_received > 0)
    for (const auto& [direction, v] : {std::pair<const char*, int64_t>{"sent", s.wire_bytes_sent},
                                       {"received", s.wire_bytes_received}}) {
      Labels l = labels;
      l.emplace("direction", direction);
      impl_->wire->Add(l).Set(static_cast<double>(v));
    }
  if (s.round > 0) {
    auto layer = [&](const std::string& name) {
      Labels l = labels;
      l.emplace("layer", name);
      return l;
    };
    impl_->round_aggregation_error->Add(layer("mean")).Set(s.aggregation_error);
    for (const auto& [name, e] : s.aggregation_error_by_layer) impl_->round_aggregation_error->Add(layer(name)).Set(e);
    if (std::isfinite(s.epsilon)) impl_->privacy_epsilon->Add(labels).Set(s.epsilon);
    if (std::isfinite(s.virtual_seconds)) impl_->virtual_seconds->Add(labels).Set(s.virtual_seconds);
    for (const auto& [which, v] : {std::pair<const char*, double>{"accuracy", s.global_accuracy}, {"loss", s.global_loss}}) {
      if (!std::isfinite(v)) continue;
      Labels l = labels;
      l.emplace("stat", which);
      impl_->global_test->Add(l).Set(v);
    }
    for (const auto& [which, v] : {std::pair<const char*, double>{"mean", s.mean_staleness}, {"max", s.max_staleness}}) {
      if (!std::isfinite(v)) continue;
      Labels l = labels;
      l.emplace("stat", which);
      impl_->round_staleness->Add(l).Set(v);
    }
  }
  auto stat = [&](const char* which) {
    Labels l = labels;
    l.emplace("stat", which);
    return l;
  };
  impl_->round_accuracy->Add(stat("mean")).Set(s.mean_accuracy);
  impl_->round_accuracy->Add(stat("min")).Set(s.min_accuracy);
  impl_->round_accuracy->Add(stat("max")).Set(s.max_accuracy);
  impl_->round_duration->Add(labels, kRoundBuckets).Observe(s.seconds);
  impl_->request_push();
}

void PrometheusExporter::run_finished(const std::string& run) {
  impl_->run_active->Add({{"run", run}, {"strategy", impl_->strategy_for(run)}}).Set(0);
  impl_->request_push();
}

void PrometheusExporter::scheduler_queue(int depth) { impl_->queue_depth->Add({}).Set(depth); }

void PrometheusExporter::scheduler_job(const std::string& kind, double queued_seconds,
                                       double run_seconds) {
  const Labels labels{{"kind", kind}};
  impl_->job_wait->Add(labels, kJobBuckets).Observe(queued_seconds);
  impl_->job_duration->Add(labels, kJobBuckets).Observe(run_seconds);
  impl_->jobs->Add(labels).Increment();
  if (run_seconds > 0) impl_->busy_seconds->Add(labels).Increment(run_seconds);
  else impl_->busy_seconds->Add(labels);
}

void PrometheusExporter::device_memory(int64_t bytes_in_use, int64_t peak_bytes) {
  impl_->device_memory->Add({{"stat", "in_use"}}).Set(static_cast<double>(bytes_in_use));
  if (peak_bytes >= 0) impl_->device_memory->Add({{"stat", "peak"}}).Set(static_cast<double>(peak_bytes));
}

void PrometheusExporter::process_memory(int64_t resident_bytes) {
  impl_->process_memory->Add({}).Set(static_cast<double>(resident_bytes));
}

void PrometheusExporter::node_scheduler(const NodeSchedulerStats& n) {
  const std::string node = std::to_string(n.node);
  impl_->queue_depth->Add({{"node", node}}).Set(n.queue_depth);
  impl_->running_jobs->Add({{"node", node}}).Set(n.running_jobs);
  impl_->process_memory->Add({{"node", node}}).Set(static_cast<double>(n.resident_bytes));
  impl_->device_memory->Add({{"node", node}, {"stat", "in_use"}}).Set(static_cast<double>(n.device_bytes_in_use));
  if (n.device_peak_bytes >= 0)
    impl_->device_memory->Add({{"node", node}, {"stat", "peak"}}).Set(static_cast<double>(n.device_peak_bytes));
  std::lock_guard lock(impl_->state_mutex);
  for (const auto& [kind, count] : n.jobs) {
    const auto it = n.busy_seconds.find(kind);
    const double busy = it == n.busy_seconds.end() ? 0 : it->second;
    auto& [count_before, busy_before] = impl_->node_totals[{n.node, kind}];
    const Labels labels{{"node", node}, {"kind", kind}};
    // A node that took over a lost one starts from zero: count its figures from there.
    if (count < count_before) count_before = 0, busy_before = 0;
    impl_->jobs->Add(labels).Increment(static_cast<double>(count - count_before));
    impl_->busy_seconds->Add(labels).Increment(std::max(0.0, busy - busy_before));
    count_before = count;
    busy_before = busy;
  }
}

void PrometheusExporter::scheduler_memory(int running_jobs, int64_t budget_bytes, int64_t projected_bytes) {
  impl_->running_jobs->Add({}).Set(running_jobs);
  impl_->memory_budget->Add({}).Set(static_cast<double>(budget_bytes));
  impl_->projected_memory->Add({}).Set(static_cast<double>(projected_bytes));
}

} // namespace fedvlm
