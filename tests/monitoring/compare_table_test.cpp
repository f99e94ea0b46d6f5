// tests/monitoring/compare_table_test.cpp — grouping across seeds and exact pooled mean ± std.
#include "monitoring/compare_table.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

struct ClientValues {
  double before, acc, prec, rec, f1, loss;
};

// A run whose final round (2) holds `finals`; round 1 holds decoys that must not count.
RunResults make_run(const std::string& strategy, const std::string& clients, int seed,
                    const std::vector<ClientValues>& finals) {
  RunResults run;
  run.dir = "/runs/" + strategy + "_" + clients + "_" + std::to_string(seed);
  run.status = "completed";
  run.info.run = strategy + "/clients=" + clients + ",seed=" + std::to_string(seed);
  run.info.strategy = strategy;
  run.info.sweep = {{"federation.clients", clients}, {"seed", std::to_string(seed)}};
  run.info.seed = static_cast<uint64_t>(seed);
  for (std::size_t c = 0; c < finals.size(); ++c) {
    ClientRoundRecord before;
    before.strategy = strategy;
    before.client = static_cast<int>(c);
    before.round = 0;
    before.phase = kPhaseBefore;
    before.accuracy = finals[c].before;
    before.loss = 99;
    run.records.push_back(before);

    ClientRoundRecord decoy = before;
    decoy.round = 1;
    decoy.phase = kPhaseRound;
    decoy.accuracy = 0.01;
    decoy.bytes_up = 100;
    run.records.push_back(decoy);

    ClientRoundRecord last = decoy;
    last.round = 2;
    last.accuracy = finals[c].acc;
    last.precision = finals[c].prec;
    last.recall = finals[c].rec;
    last.f1 = finals[c].f1;
    last.loss = finals[c].loss;
    last.bytes_up = 1000;
    run.records.push_back(last);
  }
  return run;
}

std::vector<RunResults> runs() {
  return {
      // plora, 2 clients, seeds 0 and 1: one group of 4 pooled client values.
      make_run("plora", "2", 0, {{0.4, 0.5, 0.1, 0.2, 0.3, 1.0}, {0.5, 0.7, 0.1, 0.2, 0.3, 2.0}}),
      make_run("plora", "2", 1, {{0.5, 0.6, 0.3, 0.2, 0.5, 3.0}, {0.5, 0.8, 0.3, 0.2, 0.5, 4.0}}),
      // plora, 10 clients (here 1 evaluated): sorts after 2 although "10" < "2" as text.
      make_run("plora", "10", 0, {{0.2, 0.25, 0.5, 0.5, 0.5, 0.5}}),
      make_run("flora", "2", 0, {{0.5, 0.9, 0.8, 0.8, 0.8, 0.25}, {0.5, 0.9, 0.8, 0.8, 0.8, 0.25}}),
  };
}

TEST(CompareTable, GroupsAcrossSeedsWithPooledPopulationStd) {
  const auto rows = compare_runs(runs());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].strategy, "flora");
  EXPECT_EQ(rows[1].strategy, "plora");
  EXPECT_EQ(rows[1].sweep.at("federation.clients"), "2");
  EXPECT_EQ(rows[1].sweep.count("seed"), 0u);
  EXPECT_EQ(rows[2].sweep.at("federation.clients"), "10");

  const ComparisonRow& p = rows[1];
  EXPECT_EQ(p.runs, 2);
  EXPECT_EQ(p.min_clients, 2);
  EXPECT_EQ(p.max_clients, 2);
  // accuracy {0.5, 0.7, 0.6, 0.8}: mean 0.65, population variance 0.0125
  EXPECT_EQ(p.accuracy.n, 4u);
  EXPECT_NEAR(p.accuracy.mean, 0.65, 1e-12);
  EXPECT_NEAR(p.accuracy.std, std::sqrt(0.0125), 1e-12);
  // precision {0.1, 0.1, 0.3, 0.3}: mean 0.2, std 0.1
  EXPECT_NEAR(p.precision.mean, 0.2, 1e-12);
  EXPECT_NEAR(p.precision.std, 0.1, 1e-12);
  EXPECT_NEAR(p.recall.mean, 0.2, 1e-12);
  EXPECT_NEAR(p.recall.std, 0.0, 1e-12);
  EXPECT_NEAR(p.f1.mean, 0.4, 1e-12);
  EXPECT_NEAR(p.f1.std, 0.1, 1e-12);
  // loss {1, 2, 3, 4}: mean 2.5, variance 1.25
  EXPECT_NEAR(p.loss.mean, 2.5, 1e-12);
  EXPECT_NEAR(p.loss.std, std::sqrt(1.25), 1e-12);
  // gain {0.1, 0.2, 0.1, 0.3}: mean 0.175, variance 0.006875
  EXPECT_NEAR(p.gain.mean, 0.175, 1e-12);
  EXPECT_NEAR(p.gain.std, std::sqrt(0.006875), 1e-12);
  // 2 runs × 2 clients × (100 + 1000) bytes
  EXPECT_EQ(p.bytes_up_total, 4400);
  EXPECT_DOUBLE_EQ(p.bytes_up_per_run, 2200);

  EXPECT_EQ(rows[0].runs, 1);
  EXPECT_NEAR(rows[0].accuracy.mean, 0.9, 1e-12);
  EXPECT_NEAR(rows[0].accuracy.std, 0.0, 1e-12);
  EXPECT_NEAR(rows[0].gain.mean, 0.4, 1e-12);
  EXPECT_EQ(rows[2].min_clients, 1);
}

// The global test is one value per run (its final round); a task metric pools like accuracy.
TEST(CompareTable, GlobalTestPerRunAndTaskMetricsPerClient) {
  std::vector<RunResults> rs = runs();
  for (int i : {0, 1}) { // the two plora seeds
    RoundSummary first, last;
    first.round = 1;
    first.global_accuracy = 0.01; // not the final round: must not count
    last.round = 2;
    last.global_accuracy = i == 0 ? 0.6 : 0.7;
    rs[static_cast<std::size_t>(i)].rounds = {first, last};
    double em = 0.25 * (i + 1); // seed 0: 0.25, 0.5 (clients 0, 1); seed 1: 0.5, 0.75
    for (auto& r : rs[static_cast<std::size_t>(i)].records) {
      if (r.round != 2) continue;
      r.task_metrics["exact_match"] = em;
      em += 0.25;
    }
  }
  const auto rows = compare_runs(rs);
  ASSERT_EQ(rows.size(), 3u);
  const ComparisonRow& p = rows[1];
  EXPECT_EQ(p.global_accuracy.n, 2u);
  EXPECT_NEAR(p.global_accuracy.mean, 0.65, 1e-12);
  EXPECT_NEAR(p.global_accuracy.std, 0.05, 1e-12);
  ASSERT_EQ(p.task_metrics.count("exact_match"), 1u);
  // {0.25, 0.5, 0.5, 0.75}: mean 0.5, population variance 0.03125
  EXPECT_EQ(p.task_metrics.at("exact_match").n, 4u);
  EXPECT_NEAR(p.task_metrics.at("exact_match").mean, 0.5, 1e-12);
  EXPECT_NEAR(p.task_metrics.at("exact_match").std, std::sqrt(0.03125), 1e-12);
  EXPECT_EQ(rows[0].global_accuracy.n, 0u);
  EXPECT_TRUE(rows[0].task_metrics.empty());

  const std::string table = format_comparison(rs);
  EXPECT_NE(table.find("global test acc"), std::string::npos) << table;
  EXPECT_NE(table.find("exact_match"), std::string::npos) << table;
  EXPECT_NE(table.find("0.6500 ± 0.0500"), std::string::npos) << table;
  EXPECT_NE(table.find("0.5000 ± 0.1768"), std::string::npos) << table;
  // Without either, the table has neither column.
  const std::string plain = format_comparison(runs());
  EXPECT_EQ(plain.find("global test"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("exact_match"), std::string::npos) << plain;
}

TEST(CompareTable, FormatsAlignedTable) {
  const std::string table = format_comparison(runs());
  std::vector<std::string> lines;
  std::istringstream in(table);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  // 3 lines of explanation, header, rule, 3 groups
  ASSERT_EQ(lines.size(), 8u) << table;
  EXPECT_NE(lines[1].find("population std"), std::string::npos) << table;
  EXPECT_NE(lines[1].find("clients × seeds"), std::string::npos) << table;
  EXPECT_EQ(lines[3].rfind("strategy", 0), 0u) << table;

  auto width = [](const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (std::size_t i = 4; i < lines.size(); ++i) EXPECT_EQ(width(lines[i]), width(lines[3])) << table;

  EXPECT_EQ(lines[5].rfind("flora", 0), 0u) << table;
  EXPECT_EQ(lines[6].rfind("plora", 0), 0u) << table;
  const std::string& p = lines[6];
  EXPECT_NE(p.find("clients=2 "), std::string::npos) << p;
  EXPECT_EQ(p.find("seed"), std::string::npos) << p;
  EXPECT_NE(p.find("0.6500 ± 0.1118"), std::string::npos) << p;  // accuracy
  EXPECT_NE(p.find("0.2000 ± 0.1000"), std::string::npos) << p;  // precision
  EXPECT_NE(p.find("0.2000 ± 0.0000"), std::string::npos) << p;  // recall
  EXPECT_NE(p.find("0.4000 ± 0.1000"), std::string::npos) << p;  // F1
  EXPECT_NE(p.find("2.5000 ± 1.1180"), std::string::npos) << p;  // loss
  EXPECT_NE(p.find("+0.1750 ± 0.0829"), std::string::npos) << p; // gain
  EXPECT_NE(p.find("2.15 KiB"), std::string::npos) << p;         // 2200 B per run
  EXPECT_NE(lines[7].find("clients=10"), std::string::npos) << table;
}

// Runs scored only on the global test (data.test_fraction = 0) have null client accuracies,
// read back as nan: the table says "no local test split" and shows the global test, never nan.
TEST(CompareTable, RunsWithoutALocalTestSplitSayHowTheyWereScored) {
  const double nan = std::nan("");
  std::vector<RunResults> rs = {make_run("plora", "2", 0, {{nan, nan, nan, nan, nan, nan}, {nan, nan, nan, nan, nan, nan}}),
                                make_run("plora", "2", 1, {{nan, nan, nan, nan, nan, nan}, {nan, nan, nan, nan, nan, nan}}),
                                make_run("flora", "2", 0, {{0.5, 0.9, 0.8, 0.8, 0.8, 0.25}, {nan, nan, nan, nan, nan, nan}})};
  for (auto& r : rs) {
    RoundSummary last;
    last.round = 2;
    last.global_accuracy = r.info.seed == 0 ? 0.6 : 0.8;
    r.rounds = {last};
  }
  const auto rows = compare_runs(rs);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_FALSE(rows[0].no_local_test); // flora: one client scored
  EXPECT_EQ(rows[0].accuracy.n, 1u);
  EXPECT_DOUBLE_EQ(rows[0].accuracy.mean, 0.9);
  EXPECT_TRUE(rows[1].no_local_test);
  EXPECT_EQ(rows[1].accuracy.n, 0u);
  EXPECT_NEAR(rows[1].global_accuracy.mean, 0.7, 1e-12);
  const std::string table = format_comparison(rs);
  EXPECT_EQ(table.find("nan"), std::string::npos) << table;
  EXPECT_NE(table.find("no local test split"), std::string::npos) << table;
  EXPECT_NE(table.find("0.7000 ± 0.1000"), std::string::npos) << table; // the global test, over the 2 seeds
}

// The new clients' accuracies (evaluation.holdout_clients) are one pair per run, its final round.
TEST(CompareTable, HoldoutColumnsArePerRunFinalRound) {
  std::vector<RunResults> rs = runs();
  for (int i : {0, 1}) { // the two plora seeds
    RoundSummary first, last;
    first.round = 1;
    first.holdout_accuracy = 0.01; // not the final round: must not count
    first.holdout_adapted_accuracy = 0.02;
    last.round = 2;
    last.holdout_accuracy = i == 0 ? 0.3 : 0.5;
    last.holdout_adapted_accuracy = i == 0 ? 0.6 : 0.8;
    rs[static_cast<std::size_t>(i)].rounds = {first, last};
  }
  const auto rows = compare_runs(rs);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].holdout_accuracy.n, 2u);
  EXPECT_NEAR(rows[1].holdout_accuracy.mean, 0.4, 1e-12);
  EXPECT_NEAR(rows[1].holdout_accuracy.std, 0.1, 1e-12);
  EXPECT_NEAR(rows[1].holdout_adapted_accuracy.mean, 0.7, 1e-12);
  EXPECT_EQ(rows[0].holdout_accuracy.n, 0u);
  const std::string table = format_comparison(rs);
  EXPECT_NE(table.find("new client acc"), std::string::npos) << table;
  EXPECT_NE(table.find("new client adapted"), std::string::npos) << table;
  EXPECT_NE(table.find("0.4000 ± 0.1000"), std::string::npos) << table;
  EXPECT_NE(table.find("0.7000 ± 0.1000"), std::string::npos) << table;
  EXPECT_EQ(format_comparison(runs()).find("new client"), std::string::npos);
}

} // namespace
} // namespace fedvlm
