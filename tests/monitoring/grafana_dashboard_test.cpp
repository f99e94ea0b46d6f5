// tests/monitoring/grafana_dashboard_test.cpp — the Grafana dashboard only queries metrics the exporter really serves.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "monitoring/prometheus_exporter.hpp"
#include "tests/prometheus_harness.hpp"

namespace fedvlm {
namespace {

namespace th = fedvlm::testing;
using nlohmann::json;

const std::filesystem::path kMonitoring = std::filesystem::path(FEDVLM_SOURCE_DIR) / "monitoring";

json load_dashboard() {
  const auto path = kMonitoring / "grafana/dashboards/fedvlm.json";
  const std::string text = th::read_text_file(path);
  if (text.empty()) throw std::runtime_error("expected a dashboard at " + path.string());
  return json::parse(text);
}

/// Panels, rows' nested panels included.
void collect_panels(const json& container, std::vector<json>& out) {
  if (!container.contains("panels")) return;
  for (const auto& p : container["panels"]) {
    out.push_back(p);
    collect_panels(p, out);
  }
}

std::vector<json> all_panels(const json& dashboard) {
  std::vector<json> panels;
  collect_panels(dashboard, panels);
  return panels;
}

/// Every PromQL text in the dashboard: panel target exprs and templating variable queries.
std::vector<std::string> all_queries(const json& dashboard) {
  std::vector<std::string> queries;
  for (const auto& p : all_panels(dashboard))
    for (const auto& t : p.value("targets", json::array()))
      if (t.contains("expr")) queries.push_back(t["expr"].get<std::string>());
  for (const auto& v : dashboard["templating"].value("list", json::array())) {
    if (v.value("type", "") != "query") continue;
    const auto& q = v["query"];
    queries.push_back(q.is_string() ? q.get<std::string>() : q.value("query", ""));
  }
  return queries;
}

/// Blanks out the contents of "..." so label values (e.g. job="fedvlm_x") are not read as names.
std::string without_string_literals(const std::string& q) {
  static const std::regex literal(R"re("(?:[^"\\]|\\.)*")re");
  return std::regex_replace(q, literal, "\"\"");
}

/// Series names (identifiers starting with fedvlm_) a query reads.
std::set<std::string> series_in(const std::string& query) {
  static const std::regex ident(R"((^|[^A-Za-z0-9_:])(fedvlm_[A-Za-z0-9_:]*))");
  std::set<std::string> out;
  const std::string q = without_string_literals(query);
  for (std::sregex_iterator it(q.begin(), q.end(), ident), end; it != end; ++it)
    out.insert((*it)[2].str());
  return out;
}

/// Histograms are queried as F_bucket / F_sum / F_count: back to F if F is a histogram family.
/// Empty if `series` belongs to no family.
std::string family_of(const std::string& series, const std::set<std::string>& families,
                      const std::set<std::string>& histograms) {
  if (families.count(series)) return series;
  for (const std::string suffix : {"_bucket", "_sum", "_count"})
    if (series.size() > suffix.size() &&
        series.compare(series.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = series.substr(0, series.size() - suffix.size());
      if (families.count(base) && histograms.count(base)) return base;
    }
  return "";
}

struct Matcher {
  std::string series, label, op, value;
};

/// Label matchers inside selectors: fedvlm_x{a="1",b=~"$run"}.
std::vector<Matcher> matchers_in(const std::string& query) {
  static const std::regex selector(R"((fedvlm_[A-Za-z0-9_:]*)\{([^}]*)\})");
  static const std::regex matcher(R"re(([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)")re");
  std::vector<Matcher> out;
  for (std::sregex_iterator s(query.begin(), query.end(), selector), end; s != end; ++s) {
    const std::string body = (*s)[2].str();
    for (std::sregex_iterator m(body.begin(), body.end(), matcher); m != end; ++m)
      out.push_back({(*s)[1].str(), (*m)[1].str(), (*m)[2].str(), (*m)[3].str()});
  }
  return out;
}

/// Label names in by(...), without(...), on(...), ignoring(...), group_left/right(...).
std::set<std::string> grouping_labels_in(const std::string& query) {
  static const std::regex clause(R"(\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\))");
  static const std::regex name(R"([A-Za-z_][A-Za-z0-9_]*)");
  std::set<std::string> out;
  const std::string q = without_string_literals(query);
  for (std::sregex_iterator c(q.begin(), q.end(), clause), end; c != end; ++c) {
    const std::string list = (*c)[2].str();
    for (std::sregex_iterator n(list.begin(), list.end(), name); n != end; ++n) out.insert(n->str());
  }
  return out;
}

std::string yaml_value(const std::string& yaml, const std::string& key) {
  const std::regex line("(^|\\n)\\s*-?\\s*" + key + ":\\s*([^\\s#]+)");
  std::smatch m;
  return std::regex_search(yaml, m, line) ? m[2].str() : "";
}

struct Scrape {
  std::vector<th::Sample> samples;
  std::set<std::string> histograms; ///< families declared `# TYPE F histogram`
};

/// A live exporter after a synthetic run: what a scrape over HTTP actually returns.
Scrape live_scrape() {
  PrometheusSettings s;
  s.listen = "127.0.0.1:0";
  PrometheusExporter exporter(s);
  th::feed_synthetic_run(exporter);
  const auto r = th::http_get(exporter.endpoint());
  if (!r.ok()) throw std::runtime_error("expected a scrape of " + exporter.endpoint() + " to succeed");
  Scrape scrape{th::parse_exposition(r.body), {}};
  static const std::regex histogram_type(R"re(# TYPE (\S+) histogram)re");
  for (std::sregex_iterator it(r.body.begin(), r.body.end(), histogram_type), end; it != end; ++it)
    scrape.histograms.insert((*it)[1].str());
  return scrape;
}

/// PromQL with the dashboard's variables replaced as Grafana would for "All".
std::string with_variables_expanded(std::string q) {
  const std::pair<std::string, std::string> vars[] = {
      {"$__rate_interval", "1m"}, {"$run", ".*"}, {"$strategy", ".*"}};
  for (const auto& [from, to] : vars)
    for (std::size_t at; (at = q.find(from)) != std::string::npos;) q.replace(at, from.size(), to);
  return q;
}

TEST(GrafanaDashboard, QueriesOnlyMetricsTheExporterServes) {
  const json dashboard = load_dashboard();
  const auto names = PrometheusExporter::metric_names();
  const std::set<std::string> families(names.begin(), names.end());
  const Scrape scrape = live_scrape();
  const auto& samples = scrape.samples;

  std::map<std::string, std::set<std::string>> labels_of; // series name → label names seen
  for (const auto& s : samples) {
    auto& labels = labels_of[s.name]; // present even for a series without labels
    for (const auto& [k, v] : s.labels) labels.insert(k);
  }

  const auto queries = all_queries(dashboard);
  ASSERT_GE(queries.size(), 15u) << "expected a full dashboard";
  std::set<std::string> used_families;
  for (const auto& q : queries) {
    const auto series = series_in(q);
    EXPECT_FALSE(series.empty()) << "query reads no fedvlm_ metric: " << q;
    std::set<std::string> labels_here = {"le", "__name__"};
    for (const auto& name : series) {
      const std::string family = family_of(name, families, scrape.histograms);
      EXPECT_FALSE(family.empty())
          << name << " (in " << q << ") is not in PrometheusExporter::metric_names()";
      used_families.insert(family);
      EXPECT_TRUE(labels_of.count(name))
          << name << " (in " << q << ") does not appear in a live scrape of the exporter";
      labels_here.insert(labels_of[name].begin(), labels_of[name].end());
    }
    for (const auto& m : matchers_in(q)) {
      EXPECT_TRUE(labels_of[m.series].count(m.label))
          << m.series << " has no label \"" << m.label << "\" (matched in " << q << ")";
      if (m.op == "=" && m.value.find('$') == std::string::npos) {
        EXPECT_FALSE(th::find_samples(samples, m.series, {{m.label, m.value}}).empty())
            << "no " << m.series << " series has " << m.label << "=\"" << m.value << "\" (" << q << ")";
      }
    }
    for (const auto& label : grouping_labels_in(q))
      EXPECT_TRUE(labels_here.count(label))
          << "grouping label \"" << label << "\" is on none of the series read by " << q;
    // Per-run metrics must follow the run selector, or picking a run would not narrow the panel
    // (the variable's own label_values() query is what defines $run).
    if (q.rfind("label_values(", 0) == 0) continue;
    for (const auto& name : series) {
      if (labels_of[name].count("run")) {
        EXPECT_NE(q.find("$run"), std::string::npos) << name << " is per run but " << q
                                                      << " does not filter on $run";
      }
    }
  }
  // The headline metrics the dashboard exists for.
  for (const std::string must :
       {"fedvlm_client_accuracy", "fedvlm_client_loss", "fedvlm_client_f1",
        "fedvlm_round_sent_bytes", "fedvlm_round_duration_seconds",
        "fedvlm_scheduler_busy_seconds_total", "fedvlm_scheduler_queue_depth",
        "fedvlm_device_memory_bytes"})
    EXPECT_TRUE(used_families.count(must)) << "no panel shows " << must;
}

TEST(GrafanaDashboard, PanelsAndDatasourceAreConsistentWithProvisioning) {
  const json dashboard = load_dashboard();
  const std::string ds_yaml =
      th::read_text_file(kMonitoring / "grafana/provisioning/datasources/fedvlm.yaml");
  ASSERT_FALSE(ds_yaml.empty()) << "expected monitoring/grafana/provisioning/datasources/fedvlm.yaml";
  const std::string uid = yaml_value(ds_yaml, "uid");
  ASSERT_FALSE(uid.empty()) << "expected a fixed `uid:` in the datasource provisioning file";
  EXPECT_EQ(yaml_value(ds_yaml, "type"), "prometheus");
  EXPECT_EQ(yaml_value(ds_yaml, "url"), "http://127.0.0.1:9090");

  const auto panels = all_panels(dashboard);
  ASSERT_FALSE(panels.empty());
  std::set<int> ids;
  for (const auto& p : panels) {
    const std::string title = p.value("title", "");
    EXPECT_FALSE(title.empty()) << "panel id " << p.value("id", -1) << " has no title";
    EXPECT_TRUE(ids.insert(p.value("id", -1)).second) << "duplicate panel id in " << title;
    ASSERT_TRUE(p.contains("targets") && !p["targets"].empty()) << title << " has no targets";
    EXPECT_EQ(p["datasource"].value("uid", ""), uid) << title;
    for (const auto& t : p["targets"]) {
      EXPECT_FALSE(t.value("expr", "").empty()) << title << " has a target without expr";
      EXPECT_EQ(t["datasource"].value("uid", ""), uid) << title << " target " << t.value("refId", "");
    }
  }
  EXPECT_EQ(dashboard.dump().find("${DS_"), std::string::npos)
      << "the dashboard must use the fixed datasource uid, not an import placeholder";

  bool has_run_variable = false;
  for (const auto& v : dashboard["templating"]["list"]) {
    EXPECT_EQ(v["datasource"].value("uid", ""), uid) << "variable " << v.value("name", "");
    if (v.value("name", "") == "run") {
      has_run_variable = true;
      const auto& q = v["query"];
      EXPECT_EQ(q.is_string() ? q.get<std::string>() : q.value("query", ""),
                "label_values(fedvlm_round, run)");
    }
  }
  EXPECT_TRUE(has_run_variable) << "expected a templating variable named run";

  const std::string dash_yaml =
      th::read_text_file(kMonitoring / "grafana/provisioning/dashboards/fedvlm.yaml");
  EXPECT_EQ(yaml_value(dash_yaml, "type"), "file");
  EXPECT_FALSE(yaml_value(dash_yaml, "path").empty()) << "expected options.path in the provider";
}

TEST(GrafanaDashboard, ExtractsNamesFromPromQL) {
  // The parser above is what keeps the dashboard honest; make sure it sees what it should.
  const std::string q =
      R"(histogram_quantile(0.9, sum by (run, le) (rate(fedvlm_round_duration_seconds_bucket{run=~"$run",job="fedvlm_x"}[5m]))) / fedvlm_round)";
  EXPECT_EQ(series_in(q), (std::set<std::string>{"fedvlm_round_duration_seconds_bucket", "fedvlm_round"}));
  const std::set<std::string> families = {"fedvlm_round_duration_seconds", "fedvlm_round"};
  const std::set<std::string> histograms = {"fedvlm_round_duration_seconds"};
  EXPECT_EQ(family_of("fedvlm_round_duration_seconds_bucket", families, histograms),
            "fedvlm_round_duration_seconds");
  EXPECT_EQ(family_of("fedvlm_round", families, histograms), "fedvlm_round");
  EXPECT_EQ(family_of("fedvlm_round_count", families, histograms), ""); // a gauge has no _count
  EXPECT_EQ(family_of("fedvlm_rounds_typo", families, histograms), "");
  const auto m = matchers_in(q);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1].label, "job");
  EXPECT_EQ(m[1].value, "fedvlm_x");
  EXPECT_EQ(grouping_labels_in(q), (std::set<std::string>{"run", "le"}));
}

TEST(GrafanaDashboard, EveryQueryEvaluatesOnRealPrometheus) {
  if (!th::PrometheusServer::available()) GTEST_SKIP() << th::kPrometheusBinary << " not installed";
  PrometheusSettings s;
  s.listen = "127.0.0.1:0";
  PrometheusExporter exporter(s);
  th::feed_synthetic_run(exporter);
  const std::string ep = exporter.endpoint();
  const auto begin = ep.find("://") + 3;
  th::PrometheusServer prometheus({ep.substr(begin, ep.find('/', begin) - begin)}, 1.0);

  std::vector<std::string> exprs;
  for (const auto& q : all_queries(load_dashboard()))
    if (q.rfind("label_values(", 0) != 0) exprs.push_back(with_variables_expanded(q)); // Grafana-only
  std::vector<std::string> empty;
  // rate() needs two scrapes in its window, so allow a few scrape intervals.
  th::wait_until(
      [&] {
        empty.clear();
        for (const auto& e : exprs)
          if (prometheus.query_vector(e).empty()) empty.push_back(e);
        return empty.empty();
      },
      std::chrono::seconds(30), std::chrono::milliseconds(1000));
  for (const auto& e : empty)
    ADD_FAILURE() << "no result from Prometheus for dashboard query: " << e << "\nresponse: "
                  << prometheus.query(e).dump();
}

} // namespace
} // namespace fedvlm
