// tests/monitoring/prometheus_exporter_test.cpp — the exporter's /metrics content, promtool lint, a real Prometheus scrape, Pushgateway push.
#include "monitoring/prometheus_exporter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "tests/prometheus_harness.hpp"

namespace fedvlm {
namespace {

namespace th = fedvlm::testing;

PrometheusSettings listen_any_port() {
  PrometheusSettings s;
  s.listen = "127.0.0.1:0";
  return s;
}

std::string host_port(const std::string& endpoint) {
  // "http://127.0.0.1:PORT/metrics" → "127.0.0.1:PORT"
  const auto begin = endpoint.find("://") + 3;
  return endpoint.substr(begin, endpoint.find('/', begin) - begin);
}

double value_of(const std::vector<th::Sample>& samples, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  const auto found = th::find_samples(samples, name, labels);
  if (found.size() != 1) {
    ADD_FAILURE() << "expected exactly one " << name << " series with the given labels, found "
                  << found.size();
    return std::nan("");
  }
  return found.front().value;
}

const std::map<std::string, std::string> kRun = {{"run", "t"}, {"strategy", "plora"}};

std::map<std::string, std::string> with(std::map<std::string, std::string> base,
                                        const std::map<std::string, std::string>& more) {
  base.insert(more.begin(), more.end());
  return base;
}

TEST(PrometheusExporter, ServesSyntheticRunOnMetricsEndpoint) {
  PrometheusExporter exporter(listen_any_port());
  ASSERT_EQ(exporter.endpoint().rfind("http://127.0.0.1:", 0), 0u) << exporter.endpoint();
  ASSERT_NE(exporter.endpoint().find("/metrics"), std::string::npos);
  th::feed_synthetic_run(exporter);

  const auto response = th::http_get(exporter.endpoint());
  ASSERT_TRUE(response.ok()) << "curl exit " << response.curl_exit << ", HTTP " << response.status;
  const std::string& text = response.body;
  // The exact wire form (labels sorted, plain decimal) that dashboards and humans grep for.
  EXPECT_NE(text.find("fedvlm_client_accuracy{client=\"2\",phase=\"round\",run=\"t\",strategy=\"plora\"} 0.75\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE fedvlm_client_sent_bytes_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE fedvlm_round_duration_seconds histogram"), std::string::npos);

  // The server's own series (no node label) first; the nodes' are checked after them.
  const auto all_samples = th::parse_exposition(text);
  std::vector<th::Sample> samples;
  for (const auto& s : all_samples)
    if (!s.labels.count("node")) samples.push_back(s);
  for (int c = 0; c < 3; ++c) {
    const std::string client = std::to_string(c);
    const auto round = with(kRun, {{"client", client}, {"phase", "round"}});
    const auto before = with(kRun, {{"client", client}, {"phase", "before"}});
    const auto per_client = with(kRun, {{"client", client}});
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_accuracy", round), 0.5 + 0.125 * c);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_accuracy", before), 0.25 + 0.0625 * c);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_precision", round), 0.5 + 0.125 * c);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_recall", round), (0.5 + 0.125 * c) / 2);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_f1", round), (0.5 + 0.125 * c) / 4);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_loss", round), 2 - (0.5 + 0.125 * c));
    // The task metric travels by name, as a label (the harness sets exact_match = accuracy / 8).
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_task_metric", with(round, {{"metric", "exact_match"}})),
                     (0.5 + 0.125 * c) / 8);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_train_loss", per_client), 0.5);
    // Counters add up over both rounds; "before" carries no traffic.
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_sent_bytes_total", per_client), 2000.0 * (c + 1));
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_received_bytes_total", per_client), 8000);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_participations_total", per_client), 2);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_trainings_total", per_client), 2);
    EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_samples", with(per_client, {{"split", "test"}})), 20);
  }
  EXPECT_EQ(th::find_samples(samples, "fedvlm_client_accuracy", {{"phase", "round"}}).size(), 3u);

  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round", kRun), 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_rounds", kRun), 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_clients", kRun), 3);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_run_active", kRun), 0);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_rounds_completed_total", kRun), 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_clients_answered", kRun), 3);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_accuracy", with(kRun, {{"stat", "max"}})), 0.75);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_accuracy", with(kRun, {{"stat", "mean"}})), 0.625);
  // Latest round only: 1000 + 2000 + 3000 up, 3 × 4000 down.
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_sent_bytes", kRun), 6000);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_received_bytes", kRun), 12000);
  // Rounds of 1.5 s and 2.5 s.
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_duration_seconds_count", kRun), 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_duration_seconds_sum", kRun), 4.0);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_duration_seconds_bucket", with(kRun, {{"le", "2"}})), 1);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_duration_seconds_bucket", with(kRun, {{"le", "5"}})), 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_duration_seconds_bucket", with(kRun, {{"le", "+Inf"}})), 2);

  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_queue_depth", {}), 0);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_busy_seconds_total", {{"kind", "train"}}), 3.0);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_busy_seconds_total", {{"kind", "eval"}}), 0.75);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_job_duration_seconds_count", {{"kind", "train"}}), 6);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_job_wait_seconds_sum", {{"kind", "train"}}), 1.5);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_device_memory_bytes", {{"stat", "in_use"}}), 3.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_device_memory_bytes", {{"stat", "peak"}}), 6.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_process_resident_bytes", {}), 9.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_running_jobs", {}), 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_memory_budget_bytes", {}), 64.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_projected_memory_bytes", {}), 10.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_jobs_total", {{"kind", "train"}}), 6); // 3 clients × 2 rounds
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_jobs_total", {{"kind", "eval"}}), 6);
  // Latest round's bytes on the wire.
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_wire_bytes", with(kRun, {{"direction", "sent"}})), 20000);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_wire_bytes", with(kRun, {{"direction", "received"}})), 10000);
  // Each node's scheduler, labelled: the latest gauges, and counters that add the differences of
  // the totals the nodes report (2 then 4 jobs: 4, not 6).
  for (int k = 0; k < 2; ++k) {
    const std::map<std::string, std::string> node{{"node", std::to_string(k)}};
    EXPECT_DOUBLE_EQ(value_of(all_samples, "fedvlm_scheduler_queue_depth", node), k);
    EXPECT_DOUBLE_EQ(value_of(all_samples, "fedvlm_scheduler_running_jobs", node), 1);
    EXPECT_DOUBLE_EQ(value_of(all_samples, "fedvlm_scheduler_jobs_total", with(node, {{"kind", "train"}})), 4);
    EXPECT_DOUBLE_EQ(value_of(all_samples, "fedvlm_scheduler_busy_seconds_total", with(node, {{"kind", "train"}})),
                     1.5 * (k + 1));
    EXPECT_DOUBLE_EQ(value_of(all_samples, "fedvlm_process_resident_bytes", node), 7.0 * (1 << 20) * (k + 1));
    EXPECT_DOUBLE_EQ(value_of(all_samples, "fedvlm_device_memory_bytes", with(node, {{"stat", "in_use"}})),
                     4.0 * (1 << 20));
    EXPECT_TRUE(th::find_samples(all_samples, "fedvlm_device_memory_bytes", with(node, {{"stat", "peak"}})).empty());
  }

  // Every registered family shows up, and nothing unlisted does.
  std::set<std::string> typed;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("# TYPE fedvlm_", 0) == 0) typed.insert(line.substr(7, line.find(' ', 7) - 7));
  const auto names = PrometheusExporter::metric_names();
  EXPECT_EQ(typed, std::set<std::string>(names.begin(), names.end()));

  // metrics_text() is the same serialization /metrics serves.
  const std::string snapshot = exporter.metrics_text();
  EXPECT_NE(snapshot.find("fedvlm_client_accuracy{client=\"2\",phase=\"round\",run=\"t\",strategy=\"plora\"} 0.75\n"),
            std::string::npos);
  EXPECT_EQ(snapshot.find("exposer_"), std::string::npos);

  if (!th::executable_exists(th::kPromtoolBinary)) GTEST_SKIP() << th::kPromtoolBinary << " not installed";
  th::TempDir dir;
  th::write_text_file(dir.path() / "metrics.txt", text);
  const std::string cmd = std::string(th::kPromtoolBinary) + " check metrics < " +
                          th::shell_quote((dir.path() / "metrics.txt").string()) + " > " +
                          th::shell_quote((dir.path() / "lint.txt").string()) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "promtool check metrics found problems:\n"
                   << th::read_text_file(dir.path() / "lint.txt");
}

TEST(PrometheusExporter, CountsEventsFromManyThreadsExactly) {
  PrometheusExporter exporter(PrometheusSettings{}); // metrics_text() needs no HTTP server
  constexpr int kThreads = 8, kEvents = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEvents; ++i) {
        ClientRoundRecord r;
        r.run = "mt";
        r.strategy = "flora";
        r.client = t % 2;
        r.round = 1;
        r.bytes_up = 3;
        r.bytes_down = 1;
        exporter.client_evaluated(r);
        exporter.scheduler_job("train", 0.0, 0.5);
      }
    });
  for (auto& t : threads) t.join();
  const auto samples = th::parse_exposition(exporter.metrics_text());
  const std::map<std::string, std::string> run = {{"run", "mt"}, {"strategy", "flora"}};
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_sent_bytes_total", with(run, {{"client", "0"}})),
                   3.0 * kEvents * kThreads / 2);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_sent_bytes", run), 3.0 * kEvents * kThreads);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_received_bytes", run), 1.0 * kEvents * kThreads);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_busy_seconds_total", {{"kind", "train"}}),
                   0.5 * kEvents * kThreads);
}

TEST(PrometheusExporter, RoundBytesGaugeFollowsTheLatestRound) {
  PrometheusExporter exporter(PrometheusSettings{});
  auto rec = [](int round, int64_t up) {
    ClientRoundRecord r;
    r.run = "b";
    r.strategy = "plora";
    r.round = round;
    r.bytes_up = up;
    return r;
  };
  exporter.client_evaluated(rec(1, 10));
  exporter.client_evaluated(rec(1, 20));
  exporter.client_evaluated(rec(2, 5));
  exporter.client_evaluated(rec(1, 1000)); // late record of a superseded round: counted, not shown
  const auto samples = th::parse_exposition(exporter.metrics_text());
  const std::map<std::string, std::string> run = {{"run", "b"}, {"strategy", "plora"}};
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_round_sent_bytes", run), 5);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_sent_bytes_total", with(run, {{"client", "0"}})), 1035);
}

TEST(PrometheusExporter, BindFailureNamesTheAddress) {
  PrometheusExporter first(listen_any_port());
  const std::string taken = host_port(first.endpoint());
  PrometheusSettings s;
  s.listen = taken;
  try {
    PrometheusExporter second(s);
    FAIL() << "expected std::runtime_error binding " << taken << " twice";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(taken), std::string::npos) << e.what();
  }
}

TEST(PrometheusExporter, RejectsMalformedPushgatewayUrl) {
  for (const std::string bad : {"http://host", "http://host:port", "http://host:9091/metrics", "http://"}) {
    PrometheusSettings s;
    s.pushgateway = bad;
    EXPECT_THROW(PrometheusExporter{s}, std::runtime_error) << bad;
  }
}

TEST(PrometheusExporter, WithoutListenServesNothingAndLingerReturnsAtOnce) {
  PrometheusSettings s;
  s.linger_seconds = 30;
  PrometheusExporter exporter(s);
  EXPECT_EQ(exporter.endpoint(), "");
  EXPECT_FALSE(exporter.push()); // no gateway configured
  const auto start = std::chrono::steady_clock::now();
  exporter.linger();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(PrometheusExporter, LingerKeepsMetricsReachable) {
  auto s = listen_any_port();
  s.linger_seconds = 1.0;
  PrometheusExporter exporter(s);
  th::feed_synthetic_run(exporter);
  std::atomic<bool> served{false};
  std::thread scraper([&] { served = th::http_get(exporter.endpoint(), 2).ok(); });
  const auto start = std::chrono::steady_clock::now();
  exporter.linger();
  const auto waited = std::chrono::steady_clock::now() - start;
  scraper.join();
  EXPECT_GE(waited, std::chrono::milliseconds(950));
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_TRUE(served);
}

TEST(PrometheusExporter, ScrapedByRealPrometheus) {
  if (!th::PrometheusServer::available()) GTEST_SKIP() << th::kPrometheusBinary << " not installed";
  PrometheusExporter exporter(listen_any_port());
  th::feed_synthetic_run(exporter);
  th::PrometheusServer prometheus({host_port(exporter.endpoint())}, 1.0);

  nlohmann::json result;
  auto round_series = [&] {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& series : result)
      if (series["metric"].value("phase", "") == "round") out.push_back(series);
    return out;
  };
  const bool got = th::wait_until(
      [&] {
        result = prometheus.query_vector("fedvlm_client_accuracy");
        return round_series().size() >= 3;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(500));
  ASSERT_TRUE(got) << "Prometheus at " << prometheus.url() << " never returned 3 phase=round "
                   << "series of fedvlm_client_accuracy; last result: " << result.dump()
                   << "\nPrometheus log:\n" << prometheus.log_tail();

  const auto series = round_series();
  ASSERT_EQ(series.size(), 3u) << result.dump();
  std::map<std::string, double> by_client;
  for (const auto& s : series) {
    EXPECT_EQ(s["metric"].value("run", ""), "t");
    EXPECT_EQ(s["metric"].value("strategy", ""), "plora");
    EXPECT_EQ(s["metric"].value("job", ""), "fedvlm"); // scraped, not pushed
    by_client[s["metric"].value("client", "")] = std::stod(s["value"][1].get<std::string>());
  }
  EXPECT_EQ(by_client, (std::map<std::string, double>{{"0", 0.5}, {"1", 0.625}, {"2", 0.75}}));
  // The histogram survives the trip: Prometheus can compute a quantile from it.
  const auto p50 = prometheus.query_vector(
      "histogram_quantile(0.5, sum by (le) (fedvlm_round_duration_seconds_bucket{run=\"t\"}))");
  ASSERT_EQ(p50.size(), 1u) << p50.dump();
  const double median = std::stod(p50[0]["value"][1].get<std::string>());
  EXPECT_GT(median, 1.0);
  EXPECT_LE(median, 2.0);
}

TEST(PrometheusExporter, PushesToPushgatewayEachRound) {
  if (!th::PushgatewayServer::available())
    GTEST_SKIP() << th::kPushgatewayBinary << " not installed (apt-get install prometheus-pushgateway)";
  th::PushgatewayServer gateway;
  PrometheusSettings s;
  s.pushgateway = gateway.url();
  s.push_job = "fedvlm_test";
  PrometheusExporter exporter(s);

  // round_finished pushes by itself, off the caller's thread.
  th::feed_synthetic_run(exporter);
  std::vector<th::Sample> samples;
  const bool arrived = th::wait_until(
      [&] {
        const auto r = th::http_get(gateway.url() + "/metrics", 2);
        if (!r.ok()) return false;
        samples = th::parse_exposition(r.body);
        return !th::find_samples(samples, "fedvlm_rounds_completed_total",
                                 {{"job", "fedvlm_test"}, {"run", "t"}}).empty();
      },
      std::chrono::seconds(10));
  ASSERT_TRUE(arrived) << "nothing pushed; gateway log:\n" << gateway.log_tail();
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_client_accuracy",
                            with(kRun, {{"job", "fedvlm_test"}, {"client", "2"}, {"phase", "round"}})),
                   0.75);

  // An explicit push reflects later changes.
  exporter.scheduler_memory(1, 12345, 0);
  ASSERT_TRUE(exporter.push()) << gateway.log_tail();
  samples = th::parse_exposition(th::http_get(gateway.url() + "/metrics").body);
  EXPECT_DOUBLE_EQ(value_of(samples, "fedvlm_scheduler_memory_budget_bytes", {{"job", "fedvlm_test"}}), 12345);
}

TEST(PrometheusExporter, UnreachablePushgatewayIsNotFatal) {
  PrometheusSettings s;
  s.pushgateway = "http://127.0.0.1:" + std::to_string(th::free_port()); // nothing listens
  PrometheusExporter exporter(s);
  EXPECT_NO_THROW(th::feed_synthetic_run(exporter)); // pushes in the background, fails, logs
  EXPECT_FALSE(exporter.push());
}

} // namespace
} // namespace fedvlm
