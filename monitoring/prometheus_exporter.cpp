// monitoring/prometheus_exporter.cpp — prometheus-cpp registry, /metrics server and Pushgateway behind RunObserver.
#include "monitoring/metrics_http_server.hpp"
#include "monitoring/prometheus_exporter.hpp"
#include "monitoring/metric_families.hpp"

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
#include <array>
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

  // One registered family per row of metric_families(), by Metric; only the kind's slot is set.
  std::array<Family<Gauge>*, kMetricCount> gauges{};
  std::array<Family<Counter>*, kMetricCount> counters{};
  std::array<Family<Histogram>*, kMetricCount> histograms{};

  template <class T>
  static T& family(const std::array<T*, kMetricCount>& slots, Metric m) {
    T* f = slots[static_cast<std::size_t>(m)];
    if (f == nullptr) throw std::logic_error(std::string("metric ") + metric_family(m).name + " is not of this type");
    return *f;
  }
  Family<Gauge>& gauge(Metric m) { return family(gauges, m); }
  Family<Counter>& counter(Metric m) { return family(counters, m); }
  Family<Histogram>& histogram(Metric m) { return family(histograms, m); }


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
    for (const MetricFamily& f : metric_families()) {
      const auto slot = static_cast<std::size_t>(f.id);
      switch (f.kind) {
      case MetricKind::gauge: gauges[slot] = &prometheus::BuildGauge().Name(f.name).Help(f.help).Register(*registry); break;
      case MetricKind::counter:
        counters[slot] = &prometheus::BuildCounter().Name(f.name).Help(f.help).Register(*registry);
        break;
      case MetricKind::histogram:
        histograms[slot] = &prometheus::BuildHistogram().Name(f.name).Help(f.help).Register(*registry);
        break;
      }
    }

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
  std::vector<std::string> names;
  for (const MetricFamily& f : metric_families()) names.emplace_back(f.name);
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
  impl_->gauge(Metric::round).Add(labels).Set(0);
  impl_->gauge(Metric::rounds).Add(labels).Set(rounds);
  impl_->gauge(Metric::clients).Add(labels).Set(clients);
  impl_->gauge(Metric::run_active).Add(labels).Set(1);
  // Touch the counter so rate()/increase() see the zero before the first increment.
  impl_->counter(Metric::rounds_completed).Add(labels);
}

void PrometheusExporter::round_started(const std::string& run, int round, int total_rounds) {
  const Labels labels{{"run", run}, {"strategy", impl_->strategy_for(run)}};
  impl_->gauge(Metric::round).Add(labels).Set(round);
  impl_->gauge(Metric::rounds).Add(labels).Set(total_rounds);
}

void PrometheusExporter::client_evaluated(const ClientRoundRecord& r) {
  const std::string client = std::to_string(r.client);
  const Labels eval{{"run", r.run}, {"strategy", r.strategy}, {"client", client}, {"phase", r.phase}};
  impl_->gauge(Metric::client_accuracy).Add(eval).Set(r.accuracy);
  impl_->gauge(Metric::client_precision).Add(eval).Set(r.precision);
  impl_->gauge(Metric::client_recall).Add(eval).Set(r.recall);
  impl_->gauge(Metric::client_f1).Add(eval).Set(r.f1);
  impl_->gauge(Metric::client_loss).Add(eval).Set(r.loss);
  for (const auto& [metric, value] : r.task_metrics) {
    Labels l = eval;
    l.emplace("metric", metric);
    impl_->gauge(Metric::client_task_metric).Add(l).Set(value);
  }

  const Labels per_client{{"run", r.run}, {"strategy", r.strategy}, {"client", client}};
  if (r.phase != kPhaseBefore) impl_->gauge(Metric::client_train_loss).Add(per_client).Set(r.train_loss);
  if (r.participated) impl_->gauge(Metric::client_drift).Add(per_client).Set(r.drift);
  if (std::isfinite(r.staleness)) impl_->gauge(Metric::client_staleness).Add(per_client).Set(r.staleness);
  auto split = [&](const char* s) {
    Labels l = per_client;
    l.emplace("split", s);
    return l;
  };
  impl_->gauge(Metric::client_samples).Add(split("train")).Set(static_cast<double>(r.train_samples));
  impl_->gauge(Metric::client_samples).Add(split("test")).Set(static_cast<double>(r.test_samples));
  // Add() even with nothing to count, so every client has a series from its first evaluation.
  auto& sent = impl_->counter(Metric::client_sent).Add(per_client);
  auto& received = impl_->counter(Metric::client_received).Add(per_client);
  auto& participations = impl_->counter(Metric::client_participations).Add(per_client);
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
  impl_->gauge(Metric::round_sent).Add(per_run).Set(up);
  impl_->gauge(Metric::round_received).Add(per_run).Set(down);
}

void PrometheusExporter::client_finished_training(const std::string& run, int round, int client) {
  impl_->counter(Metric::client_trainings).Add({{"run", run}, {"strategy", impl_->strategy_for(run)}, {"client", std::to_string(client)}})
      .Increment();
}

void PrometheusExporter::round_finished(const RoundSummary& s) {
  const Labels labels{{"run", s.run}, {"strategy", s.strategy}};
  impl_->gauge(Metric::round).Add(labels).Set(s.round);
  if (s.total_rounds > 0) impl_->gauge(Metric::rounds).Add(labels).Set(s.total_rounds);
  impl_->counter(Metric::rounds_completed).Add(labels).Increment();
  impl_->gauge(Metric::round_answered).Add(labels).Set(s.clients_answered);
  impl_->gauge(Metric::round_selected).Add(labels).Set(s.clients_selected);
  impl_->gauge(Metric::round_failed).Add(labels).Set(s.clients_failed);
  impl_->gauge(Metric::round_late).Add(labels).Set(s.clients_late);
  if (s.wire_bytes_sent > 0 || s.wire_bytes_received > 0)
    for (const auto& [direction, v] : {std::pair<const char*, int64_t>{"sent", s.wire_bytes_sent},
                                       {"received", s.wire_bytes_received}}) {
      Labels l = labels;
      l.emplace("direction", direction);
      impl_->gauge(Metric::wire).Add(l).Set(static_cast<double>(v));
    }
  if (s.round > 0) {
    auto layer = [&](const std::string& name) {
      Labels l = labels;
      l.emplace("layer", name);
      return l;
    };
    impl_->gauge(Metric::round_aggregation_error).Add(layer("mean")).Set(s.aggregation_error);
    for (const auto& [name, e] : s.aggregation_error_by_layer) impl_->gauge(Metric::round_aggregation_error).Add(layer(name)).Set(e);
    if (std::isfinite(s.epsilon)) impl_->gauge(Metric::privacy_epsilon).Add(labels).Set(s.epsilon);
    if (std::isfinite(s.virtual_seconds)) impl_->gauge(Metric::virtual_seconds).Add(labels).Set(s.virtual_seconds);
    for (const auto& [which, v] : {std::pair<const char*, double>{"accuracy", s.global_accuracy}, {"loss", s.global_loss}}) {
      if (!std::isfinite(v)) continue;
      Labels l = labels;
      l.emplace("stat", which);
      impl_->gauge(Metric::global_test).Add(l).Set(v);
    }
    for (const auto& [phase, v] : {std::pair<const char*, double>{"received", s.holdout_accuracy},
                                   {"adapted", s.holdout_adapted_accuracy}}) {
      if (!std::isfinite(v)) continue;
      Labels l = labels;
      l.emplace("phase", phase);
      impl_->gauge(Metric::holdout_accuracy).Add(l).Set(v);
    }
    for (const auto& [curve, v] : {std::pair<const char*, double>{"global_test", s.global_rounds_to_target},
                                   {"mean_client", s.mean_rounds_to_target}}) {
      if (!std::isfinite(v)) continue;
      Labels l = labels;
      l.emplace("curve", curve);
      impl_->gauge(Metric::rounds_to_target).Add(l).Set(v);
    }
    for (const auto& [which, v] : {std::pair<const char*, double>{"mean", s.mean_staleness}, {"max", s.max_staleness}}) {
      if (!std::isfinite(v)) continue;
      Labels l = labels;
      l.emplace("stat", which);
      impl_->gauge(Metric::round_staleness).Add(l).Set(v);
    }
  }
  auto stat = [&](const char* which) {
    Labels l = labels;
    l.emplace("stat", which);
    return l;
  };
  impl_->gauge(Metric::round_accuracy).Add(stat("mean")).Set(s.mean_accuracy);
  impl_->gauge(Metric::round_accuracy).Add(stat("min")).Set(s.min_accuracy);
  impl_->gauge(Metric::round_accuracy).Add(stat("max")).Set(s.max_accuracy);
  if (std::isfinite(s.p10_accuracy)) impl_->gauge(Metric::round_accuracy).Add(stat("p10")).Set(s.p10_accuracy);
  impl_->histogram(Metric::round_duration).Add(labels, kRoundBuckets).Observe(s.seconds);
  impl_->request_push();
}

void PrometheusExporter::run_finished(const std::string& run) {
  impl_->gauge(Metric::run_active).Add({{"run", run}, {"strategy", impl_->strategy_for(run)}}).Set(0);
  impl_->request_push();
}

void PrometheusExporter::scheduler_queue(int depth) { impl_->gauge(Metric::queue_depth).Add({}).Set(depth); }

void PrometheusExporter::scheduler_job(const std::string& kind, double queued_seconds,
                                       double run_seconds) {
  const Labels labels{{"kind", kind}};
  impl_->histogram(Metric::job_wait).Add(labels, kJobBuckets).Observe(queued_seconds);
  impl_->histogram(Metric::job_duration).Add(labels, kJobBuckets).Observe(run_seconds);
  impl_->counter(Metric::jobs).Add(labels).Increment();
  if (run_seconds > 0) impl_->counter(Metric::busy_seconds).Add(labels).Increment(run_seconds);
  else impl_->counter(Metric::busy_seconds).Add(labels);
}

void PrometheusExporter::device_memory(int64_t bytes_in_use, int64_t peak_bytes) {
  impl_->gauge(Metric::device_memory).Add({{"stat", "in_use"}}).Set(static_cast<double>(bytes_in_use));
  if (peak_bytes >= 0) impl_->gauge(Metric::device_memory).Add({{"stat", "peak"}}).Set(static_cast<double>(peak_bytes));
}

void PrometheusExporter::process_memory(int64_t resident_bytes) {
  impl_->gauge(Metric::process_memory).Add({}).Set(static_cast<double>(resident_bytes));
}

void PrometheusExporter::node_scheduler(const NodeSchedulerStats& n) {
  const std::string node = std::to_string(n.node);
  impl_->gauge(Metric::queue_depth).Add({{"node", node}}).Set(n.queue_depth);
  impl_->gauge(Metric::running_jobs).Add({{"node", node}}).Set(n.running_jobs);
  impl_->gauge(Metric::process_memory).Add({{"node", node}}).Set(static_cast<double>(n.resident_bytes));
  impl_->gauge(Metric::device_memory).Add({{"node", node}, {"stat", "in_use"}}).Set(static_cast<double>(n.device_bytes_in_use));
  if (n.device_peak_bytes >= 0)
    impl_->gauge(Metric::device_memory).Add({{"node", node}, {"stat", "peak"}}).Set(static_cast<double>(n.device_peak_bytes));
  std::lock_guard lock(impl_->state_mutex);
  for (const auto& [kind, count] : n.jobs) {
    const auto it = n.busy_seconds.find(kind);
    const double busy = it == n.busy_seconds.end() ? 0 : it->second;
    auto& [count_before, busy_before] = impl_->node_totals[{n.node, kind}];
    const Labels labels{{"node", node}, {"kind", kind}};
    // A node that took over a lost one starts from zero: count its figures from there.
    if (count < count_before) count_before = 0, busy_before = 0;
    impl_->counter(Metric::jobs).Add(labels).Increment(static_cast<double>(count - count_before));
    impl_->counter(Metric::busy_seconds).Add(labels).Increment(std::max(0.0, busy - busy_before));
    count_before = count;
    busy_before = busy;
  }
}

void PrometheusExporter::scheduler_memory(int running_jobs, int64_t budget_bytes, int64_t projected_bytes) {
  impl_->gauge(Metric::running_jobs).Add({}).Set(running_jobs);
  impl_->gauge(Metric::memory_budget).Add({}).Set(static_cast<double>(budget_bytes));
  impl_->gauge(Metric::projected_memory).Add({}).Set(static_cast<double>(projected_bytes));
}

} // namespace fedvlm
