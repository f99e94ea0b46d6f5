// tests/monitoring/rounds_to_target_outputs_test.cpp — rounds to target where users read it: rounds.jsonl, run.json, compare, Prometheus, plot.
#include "fl/results/results_reader.hpp"
#include "fl/results/results_writer.hpp"
#include "monitoring/compare_table.hpp"
#include "monitoring/plots.hpp"
#include "monitoring/prometheus_exporter.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A finished run of 4 rounds whose global test accuracy 0.5, 0.7, 0.8, 0.95, 0.9 reaches the
// target 0.9 between rounds 2 and 3 (at 2 + 0.1/0.15), or never when `reached` is false.
fs::path write_run(const fs::path& root, const std::string& seed, bool reached) {
  RunInfo info;
  info.experiment = "t";
  info.run = "t/seed=" + seed;
  info.strategy = "full";
  info.sweep = {{"seed", seed}};
  info.clients = 1;
  info.rounds = 4;
  const fs::path dir = root / ("seed=" + seed);
  ResultsWriter w(dir, info);
  const double acc[] = {0.5, 0.7, 0.8, 0.95, 0.9};
  for (int round = 0; round <= 4; ++round) {
    ClientRoundRecord r;
    r.run = info.run;
    r.strategy = "full";
    r.round = round;
    r.phase = round == 0 ? kPhaseBefore : kPhaseRound;
    r.accuracy = 0.5;
    r.test_samples = 10;
    w.client_evaluated(r);
    RoundSummary s;
    s.run = info.run;
    s.strategy = "full";
    s.round = round;
    s.total_rounds = 4;
    s.global_accuracy = reached ? acc[round] : 0.5;
    s.target_accuracy = 0.9;
    if (reached && round >= 3) s.global_rounds_to_target = 2 + 0.1 / 0.15;
    s.virtual_seconds = 3600.0 * round;
    s.cumulative_bytes = int64_t{1000} * round;
    if (reached && round >= 3) {
      s.virtual_seconds_to_target = 3600.0 * (2 + 0.1 / 0.15);
      s.bytes_to_target = 1000.0 * (2 + 0.1 / 0.15);
    }
    w.round_finished(s);
  }
  w.finish(kStatusCompleted);
  return dir;
}

TEST(RoundsToTargetOutputs, RunJsonRoundsJsonlAndCompare) {
  fedvlm::testing::TempDir tmp("fedvlm-rtt-out");
  const fs::path reached = write_run(tmp.path(), "0", true);
  write_run(tmp.path(), "1", false);

  const json run = json::parse(fedvlm::testing::read_text_file(reached / "run.json"));
  EXPECT_DOUBLE_EQ(run.at("target_accuracy").get<double>(), 0.9);
  EXPECT_NEAR(run.at("rounds_to_target").at("global_test").get<double>(), 2 + 0.1 / 0.15, 1e-12);
  EXPECT_TRUE(run.at("rounds_to_target").at("mean_client").is_null());
  EXPECT_NEAR(run.at("virtual_seconds_to_target").get<double>(), 3600.0 * (2 + 0.1 / 0.15), 1e-6);
  EXPECT_NEAR(run.at("bytes_to_target").get<double>(), 1000.0 * (2 + 0.1 / 0.15), 1e-9);

  // rounds.jsonl: null until the round that reached it, then the round, read back exactly.
  const RunResults back = load_run(reached);
  ASSERT_EQ(back.rounds.size(), 5u);
  EXPECT_TRUE(std::isnan(back.rounds[2].global_rounds_to_target));
  EXPECT_EQ(back.rounds[3].global_rounds_to_target, 2 + 0.1 / 0.15);
  EXPECT_EQ(back.rounds[4].target_accuracy, 0.9);
  EXPECT_TRUE(std::isnan(back.rounds[4].mean_rounds_to_target));

  // compare: one group over both seeds; one run reached it (2.67), one did not.
  const auto runs = load_results({tmp.path()});
  ASSERT_EQ(runs.size(), 2u);
  const auto rows = compare_runs(runs);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].rounds_to_target.n, 1u);
  EXPECT_NEAR(rows[0].rounds_to_target.mean, 2 + 0.1 / 0.15, 1e-12);
  EXPECT_EQ(rows[0].target_not_reached, 1);
  const std::string table = format_comparison(runs);
  EXPECT_NE(table.find("rounds to target"), std::string::npos) << table;
  EXPECT_NE(table.find("2.67 ± 0.00 (1 not reached)"), std::string::npos) << table;
  EXPECT_NEAR(rows[0].seconds_to_target.mean, 3600.0 * (2 + 0.1 / 0.15), 1e-6);
  EXPECT_NEAR(rows[0].bytes_to_target.mean, 1000.0 * (2 + 0.1 / 0.15), 1e-9);
  EXPECT_NE(table.find("sim. hours to target"), std::string::npos) << table;
  EXPECT_NE(table.find("2.667 ± 0.000"), std::string::npos) << table; // hours
  EXPECT_EQ(back.rounds[4].cumulative_bytes, 4000);
  EXPECT_EQ(back.rounds[4].virtual_seconds, 4 * 3600.0);
  // Runs without a target get no such column.
  RunResults plain = runs[0];
  for (auto& s : plain.rounds) s.target_accuracy = NAN;
  EXPECT_EQ(format_comparison({plain}).find("rounds to target"), std::string::npos);
}

TEST(RoundsToTargetOutputs, PrometheusGaugeOnceReached) {
  PrometheusExporter exporter(PrometheusSettings{});
  RoundSummary s;
  s.run = "t";
  s.strategy = "full";
  s.round = 2;
  s.total_rounds = 4;
  s.target_accuracy = 0.9;
  exporter.round_finished(s);
  EXPECT_EQ(exporter.metrics_text().find("fedvlm_rounds_to_target{"), std::string::npos); // not yet reached
  s.round = 3;
  s.global_rounds_to_target = 2.5;
  exporter.round_finished(s);
  const std::string text = exporter.metrics_text();
  EXPECT_NE(text.find("fedvlm_rounds_to_target{curve=\"global_test\",run=\"t\",strategy=\"full\"} 2.5\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("curve=\"mean_client\""), std::string::npos);
}

TEST(RoundsToTargetOutputs, PlotDrawsTheTargetAsAHorizontalLine) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "gnuplot not installed";
  fedvlm::testing::TempDir tmp("fedvlm-rtt-plot");
  write_run(tmp.path() / "runs", "0", true);
  const fs::path out = tmp.path() / "plots";
  (void)write_plots(load_results({tmp.path() / "runs"}), out);
  const std::string script = fedvlm::testing::read_text_file(out / "plots.gp");
  const std::string arrow = "set arrow from graph 0, first 0.9 to graph 1, first 0.9 nohead";
  // On the mean accuracy figure and on the global test figure, and reset after each.
  const auto accuracy = script.find("# comparison_accuracy.png");
  const auto global = script.find("# comparison_global_test.png");
  ASSERT_NE(accuracy, std::string::npos);
  ASSERT_NE(global, std::string::npos);
  EXPECT_NE(script.find(arrow, accuracy), std::string::npos) << script;
  EXPECT_NE(script.find(arrow, global), std::string::npos) << script;
  EXPECT_EQ(script.find("\nset arrow"), script.find("\n" + arrow)) << "no other arrows";
  EXPECT_NE(script.find("unset arrow"), std::string::npos);
  // Accuracy against simulated hours and against bytes: one point per round (mean accuracy 0 here).
  ASSERT_NE(script.find("# accuracy_vs_simulated_hours.png"), std::string::npos) << script;
  ASSERT_NE(script.find("# accuracy_vs_bytes.png"), std::string::npos) << script;
  const std::string hours = fedvlm::testing::read_text_file(out / "accuracy_vs_simulated_hours.dat");
  const std::string bytes = fedvlm::testing::read_text_file(out / "accuracy_vs_bytes.dat");
  EXPECT_NE(hours.find("\n0 0\n1 0\n2 0\n3 0\n4 0\n"), std::string::npos) << hours;
  EXPECT_NE(bytes.find("\n0 0\n1000 0\n2000 0\n3000 0\n4000 0\n"), std::string::npos) << bytes;
}

} // namespace
} // namespace fedvlm
