// tests/fl/results/results_writer_test.cpp — run directory files: content, atomicity, CSV quoting, reading back.
#include "fl/results/results_reader.hpp"
#include "fl/results/results_writer.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Has commas, as real run ids do: every CSV row must quote it.
const std::string kRun = "exp/clients=3,strategy=plora,seed=0";

class ResultsFiles : public ::testing::Test {
protected:

  static RunInfo info(const std::string& run = kRun) {
    RunInfo i;
    i.experiment = "exp";
    i.run = run;
    i.strategy = "plora";
    i.sweep = {{"federation.clients", "3"}, {"seed", "0"}};
    i.clients = 3;
    i.rounds = 2;
    i.seed = 18446744073709551615ull; // uint64 max must survive JSON
    return i;
  }

  // Distinct, non-round values per (client, round) so a swapped field cannot go unnoticed.
  static ClientRoundRecord record(int client, int round, const std::string& run = kRun) {
    ClientRoundRecord r;
    r.run = run;
    r.strategy = "plora";
    r.client = client;
    r.round = round;
    r.phase = round == 0 ? kPhaseBefore : kPhaseRound;
    r.accuracy = 0.5 + 0.1 * client + 0.01 * round;
    r.precision = 1.0 / (3 + client + round);
    r.recall = 0.25 + 0.001 * client;
    r.f1 = 2.0 / (3 + round);
    r.loss = 1.75 - 0.125 * round + client / 7.0;
    r.train_loss = round == 0 ? 0 : 0.9 / round;
    r.test_samples = 40 + client;
    r.train_samples = 160 + 2 * client;
    r.bytes_up = round == 0 ? 0 : 1000000 + client;
    r.bytes_down = round == 0 ? 0 : 2000000 + client;
    r.participated = round > 0 && client != 1;
    r.round_seconds = 2.5 * round;
    r.task_metrics["exact_match"] = 0.125 * client; // finite: Python's json writes NaN as a bare token
    r.drift = 0.5 + client;
    r.staleness = client; // finite too
    return r;
  }

  static RoundSummary summary(int round) {
    RoundSummary s;
    s.run = kRun;
    s.strategy = "plora";
    s.round = round;
    s.total_rounds = 2;
    s.clients_answered = 3;
    s.clients_selected = 3;
    s.mean_accuracy = 0.6 + 0.01 * round;
    s.min_accuracy = 0.5 + 0.01 * round;
    s.max_accuracy = 0.7 + 0.01 * round;
    s.seconds = 2.5 * round;
    s.clients_failed = round % 2;
    s.clients_late = 1;
    s.aggregation_error = 0.125 * round;
    s.aggregation_error_by_layer = {{"classifier.0", 0.25 * round}, {"classifier.3", 0.0}};
    s.epsilon = 1.5 * round;
    s.global_accuracy = 0.5 + 0.0625 * round;
    s.global_loss = 2.0 / (round + 1);
    s.wire_bytes_sent = 1000 * round + 7;
    s.wire_bytes_received = 2000 * round + 9;
    return s;
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::vector<std::string> lines(const fs::path& p) {
    std::vector<std::string> out;
    std::istringstream in(read(p));
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }

  static void write(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.good()) << p;
  }

  static json run_json(const fs::path& dir) { return json::parse(read(dir / "run.json")); }

  // A complete run: 3 clients × (before + 2 rounds), arriving out of order.
  static void feed_all(ResultsWriter& w) {
    for (int round = 0; round <= 2; ++round) {
      for (int client : {2, 0, 1}) w.client_evaluated(record(client, round));
      if (round > 0) w.round_finished(summary(round));
    }
  }

  static void expect_same(const ClientRoundRecord& a, const ClientRoundRecord& b) {
    EXPECT_EQ(a.run, b.run);
    EXPECT_EQ(a.strategy, b.strategy);
    EXPECT_EQ(a.client, b.client);
    EXPECT_EQ(a.round, b.round);
    EXPECT_EQ(a.phase, b.phase);
    EXPECT_EQ(a.accuracy, b.accuracy);
    EXPECT_EQ(a.precision, b.precision);
    EXPECT_EQ(a.recall, b.recall);
    EXPECT_EQ(a.f1, b.f1);
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_EQ(a.train_loss, b.train_loss);
    EXPECT_EQ(a.test_samples, b.test_samples);
    EXPECT_EQ(a.train_samples, b.train_samples);
    EXPECT_EQ(a.bytes_up, b.bytes_up);
    EXPECT_EQ(a.bytes_down, b.bytes_down);
    EXPECT_EQ(a.participated, b.participated);
    EXPECT_EQ(a.round_seconds, b.round_seconds);
    EXPECT_EQ(a.task_metrics, b.task_metrics);
    EXPECT_EQ(a.drift, b.drift);
    EXPECT_EQ(a.staleness, b.staleness);
  }

  fedvlm::testing::TempDir tmp_{"fedvlm-rw"};
  const fs::path dir_ = tmp_.path();
};

TEST_F(ResultsFiles, ConstructionWritesRunningRunAndEmptyMetrics) {
  const fs::path run_dir = dir_ / "nested" / "run";
  ResultsWriter w(run_dir, info());
  const json j = run_json(run_dir);
  EXPECT_EQ(j.at("status"), "running");
  EXPECT_EQ(j.at("run"), kRun);
  EXPECT_EQ(j.at("experiment"), "exp");
  EXPECT_EQ(j.at("strategy"), "plora");
  EXPECT_EQ(j.at("sweep").at("federation.clients"), "3");
  EXPECT_EQ(j.at("clients"), 3);
  EXPECT_EQ(j.at("rounds"), 2);
  EXPECT_EQ(j.at("seed").get<uint64_t>(), 18446744073709551615ull);
  EXPECT_TRUE(j.at("finished_at").is_null());
  EXPECT_TRUE(std::regex_match(j.at("started_at").get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << j.at("started_at");
  EXPECT_EQ(read(run_dir / "metrics.jsonl"), "");
  EXPECT_EQ(read(run_dir / "rounds.jsonl"), "");
  EXPECT_EQ(lines(run_dir / "metrics.csv").size(), 1u);
}

TEST_F(ResultsFiles, FilesHoldOnlyFinishedRoundsAndStatusChanges) {
  ResultsWriter w(dir_, info());
  for (int client : {2, 0, 1}) w.client_evaluated(record(client, 0));
  for (int client : {1, 2, 0}) w.client_evaluated(record(client, 1));
  // Not yet on disk: no round has finished.
  EXPECT_EQ(read(dir_ / "metrics.jsonl"), "");
  w.round_finished(summary(1));

  auto jl = lines(dir_ / "metrics.jsonl");
  ASSERT_EQ(jl.size(), 6u);
  for (std::size_t i = 0; i < jl.size(); ++i) {
    const json j = json::parse(jl[i]);
    const int round = static_cast<int>(i / 3), client = static_cast<int>(i % 3);
    const ClientRoundRecord want = record(client, round);
    EXPECT_EQ(j.size(), client_record_fields().size() + 1); // + the task metric exact_match
    EXPECT_EQ(j.at("exact_match").get<double>(), want.task_metrics.at("exact_match"));
    EXPECT_EQ(j.at("run"), want.run);
    EXPECT_EQ(j.at("strategy"), want.strategy);
    EXPECT_EQ(j.at("client"), want.client);
    EXPECT_EQ(j.at("round"), want.round);
    EXPECT_EQ(j.at("phase"), want.phase);
    EXPECT_EQ(j.at("accuracy").get<double>(), want.accuracy);
    EXPECT_EQ(j.at("precision").get<double>(), want.precision);
    EXPECT_EQ(j.at("recall").get<double>(), want.recall);
    EXPECT_EQ(j.at("f1").get<double>(), want.f1);
    EXPECT_EQ(j.at("loss").get<double>(), want.loss);
    EXPECT_EQ(j.at("train_loss").get<double>(), want.train_loss);
    EXPECT_EQ(j.at("test_samples"), want.test_samples);
    EXPECT_EQ(j.at("train_samples"), want.train_samples);
    EXPECT_EQ(j.at("bytes_up"), want.bytes_up);
    EXPECT_EQ(j.at("bytes_down"), want.bytes_down);
    EXPECT_EQ(j.at("participated"), want.participated);
    EXPECT_EQ(j.at("round_seconds").get<double>(), want.round_seconds);
  }
  EXPECT_EQ(lines(dir_ / "rounds.jsonl").size(), 1u);
  EXPECT_EQ(lines(dir_ / "metrics.csv").size(), 7u);
  EXPECT_EQ(run_json(dir_).at("rounds_finished"), 1);

  // Round 2 arrives; until it finishes, an interruption must leave rounds 0–1 only.
  for (int client : {0, 1, 2}) w.client_evaluated(record(client, 2));
  EXPECT_EQ(lines(dir_ / "metrics.jsonl").size(), 6u);
  w.round_finished(summary(2));
  EXPECT_EQ(lines(dir_ / "metrics.jsonl").size(), 9u);
  EXPECT_EQ(lines(dir_ / "metrics.csv").size(), 10u);
  const auto rl = lines(dir_ / "rounds.jsonl");
  ASSERT_EQ(rl.size(), 2u);
  EXPECT_EQ(json::parse(rl[1]).at("round"), 2);
  EXPECT_EQ(json::parse(rl[1]).at("mean_accuracy").get<double>(), 0.62);
  EXPECT_EQ(run_json(dir_).at("status"), "running");

  w.finish(kStatusCompleted);
  const json j = run_json(dir_);
  EXPECT_EQ(j.at("status"), "completed");
  EXPECT_EQ(j.at("message"), "");
  EXPECT_TRUE(j.at("finished_at").is_string());
  EXPECT_GE(j.at("finished_at").get<std::string>(), j.at("started_at").get<std::string>());
  EXPECT_EQ(w.records().size(), 9u);
  for (std::size_t i = 0; i < w.records().size(); ++i) {
    EXPECT_EQ(w.records()[i].round, static_cast<int>(i / 3));
    EXPECT_EQ(w.records()[i].client, static_cast<int>(i % 3));
  }
}

TEST_F(ResultsFiles, FinishKeepsWholeRoundsOnlyAndSaysWhy) {
  ResultsWriter w(dir_, info());
  w.client_evaluated(record(0, 0));
  w.round_finished(summary(0));
  w.client_evaluated(record(0, 1)); // round 1 never finishes: the run failed in it
  w.finish(kStatusFailed, "client 2: CUDA out of memory");
  const json j = run_json(dir_);
  EXPECT_EQ(j.at("status"), "failed");
  EXPECT_EQ(j.at("message"), "client 2: CUDA out of memory");
  EXPECT_EQ(j.at("last_finished_round"), 0);
  EXPECT_TRUE(j.at("resume_command").is_null());
  EXPECT_EQ(lines(dir_ / "metrics.jsonl").size(), 1u); // round 1's lone record is not a result

  w.finish(kStatusInterrupted, "interrupted by SIGINT", "fedvlm-sim resume " + dir_.string());
  EXPECT_EQ(run_json(dir_).at("status"), "interrupted");
  EXPECT_EQ(run_json(dir_).at("resume_command"), "fedvlm-sim resume " + dir_.string());
}

TEST_F(ResultsFiles, RestoreKeepsTheRoundsACheckpointCovers) {
  ResultsWriter first(dir_, info());
  feed_all(first); // rounds 0, 1, 2 of three clients
  const auto records = first.records();
  std::vector<RoundSummary> rounds = {summary(0), summary(1), summary(2)};
  ResultsWriter again(dir_, info());
  again.restore(records, rounds, 1);
  EXPECT_EQ(lines(dir_ / "metrics.jsonl").size(), 6u);
  EXPECT_EQ(lines(dir_ / "rounds.jsonl").size(), 2u);
  EXPECT_EQ(run_json(dir_).at("last_finished_round"), 1);
  again.restore(records, rounds, -1); // no checkpoint: start again from nothing
  EXPECT_EQ(lines(dir_ / "metrics.jsonl").size(), 0u);
}

// A served run that lost a node rolls back to its newest checkpoint: the later rounds (and the
// records of the round in flight) are dropped, and running them again leaves the files of a run
// that never rolled back.
TEST_F(ResultsFiles, RollBackDropsTheLaterRoundsAndTheRerunEndsAsIfNothingHappened) {
  const fs::path whole = dir_ / "whole", rolled = dir_ / "rolled";
  ResultsWriter w(whole, info());
  feed_all(w);
  w.finish(kStatusCompleted);

  ResultsWriter r(rolled, info());
  feed_all(r);                             // rounds 0, 1, 2 finished
  r.client_evaluated(record(1, 3));        // round 3 in flight when the node was lost
  const std::vector<RoundSummary> kept = r.roll_back(1);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept.front().round, 1);
  EXPECT_EQ(lines(rolled / "metrics.jsonl").size(), 6u); // rounds 0 and 1 of three clients
  EXPECT_EQ(lines(rolled / "rounds.jsonl").size(), 1u);
  EXPECT_EQ(run_json(rolled).at("last_finished_round"), 1);
  for (int client : {0, 2, 1}) r.client_evaluated(record(client, 2)); // round 2 again
  r.round_finished(summary(2));
  r.finish(kStatusCompleted);
  EXPECT_EQ(read(rolled / "metrics.jsonl"), read(whole / "metrics.jsonl"));
  EXPECT_EQ(read(rolled / "rounds.jsonl"), read(whole / "rounds.jsonl"));
  EXPECT_EQ(read(rolled / "metrics.csv"), read(whole / "metrics.csv"));

  EXPECT_TRUE(r.roll_back(-1).empty()); // no checkpoint: back to before round 0
  EXPECT_EQ(lines(rolled / "metrics.jsonl").size(), 0u);
  EXPECT_TRUE(run_json(rolled).at("last_finished_round").is_null());
}

TEST_F(ResultsFiles, CsvHeaderAndRowExactWithQuoting) {
  ResultsWriter w(dir_, info());
  ClientRoundRecord r;
  r.run = kRun;
  r.strategy = "odd \"name\"";
  r.client = 1;
  r.round = 2;
  r.phase = kPhaseRound;
  r.accuracy = 0.8125;
  r.precision = 1.0 / 3;
  r.recall = 0.1;
  r.f1 = 2.0 / 3;
  r.loss = 1.5;
  r.train_loss = 0;
  r.test_samples = 40;
  r.train_samples = 160;
  r.bytes_up = 1234567;
  r.bytes_down = 7654321;
  r.participated = true;
  r.round_seconds = 2.25;
  r.task_metrics["exact_match"] = 0.5;
  r.drift = 0.25;
  r.staleness = 1.5;
  w.client_evaluated(r);
  w.round_finished(summary(2));
  w.finish(kStatusCompleted);

  const auto csv = lines(dir_ / "metrics.csv");
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[0], "run,strategy,client,round,phase,accuracy,precision,recall,f1,loss,train_loss,"
                    "test_samples,train_samples,bytes_up,bytes_down,participated,round_seconds,drift,staleness,exact_match");
  EXPECT_EQ(csv[1], "\"exp/clients=3,strategy=plora,seed=0\",\"odd \"\"name\"\"\",1,2,round,0.8125,"
                    "0.3333333333333333,0.1,0.6666666666666666,1.5,0,40,160,1234567,7654321,true,"
                    "2.25,0.25,1.5,0.5");
}

TEST_F(ResultsFiles, NoTemporaryFilesLeft) {
  ResultsWriter w(dir_, info());
  feed_all(w);
  w.finish(kStatusCompleted);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) {
    names.push_back(e.path().filename().string());
    EXPECT_EQ(names.back().find(".tmp."), std::string::npos) << names.back();
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"metrics.csv", "metrics.jsonl", "rounds.csv", "rounds.jsonl",
                                             "run.json"}));
}

TEST_F(ResultsFiles, RoundTripThroughLoadResults) {
  RunInfo want = info();
  want.resumed_from_round = 1; // every field away from its default, so a field not read back shows
  {
    ResultsWriter w(dir_ / "run", want);
    feed_all(w);
    w.finish(kStatusCompleted);
  }
  const auto runs = load_results({dir_ / "run"});
  ASSERT_EQ(runs.size(), 1u);
  const RunResults& got = runs[0];
  EXPECT_EQ(got.dir, dir_ / "run");
  EXPECT_EQ(got.status, "completed");
  EXPECT_EQ(got.info.experiment, want.experiment);
  EXPECT_EQ(got.info.run, want.run);
  EXPECT_EQ(got.info.strategy, want.strategy);
  EXPECT_EQ(got.info.sweep, want.sweep);
  EXPECT_EQ(got.info.clients, want.clients);
  EXPECT_EQ(got.info.rounds, want.rounds);
  EXPECT_EQ(got.info.seed, want.seed);
  EXPECT_EQ(got.info.resumed_from_round, 1);
  // run.json holds these keys and no other identity of the run: one list writes and reads them.
  const json j = json::parse(testing::read_text_file(dir_ / "run" / "run.json"));
  for (const char* key : {"experiment", "run", "strategy", "clients", "rounds", "seed", "resumed_from_round", "sweep"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["seed"].get<uint64_t>(), 18446744073709551615ull);
  ASSERT_EQ(got.records.size(), 9u);
  for (std::size_t i = 0; i < 9; ++i)
    expect_same(got.records[i], record(static_cast<int>(i % 3), static_cast<int>(i / 3)));
  ASSERT_EQ(got.rounds.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const RoundSummary& s = got.rounds[static_cast<std::size_t>(i)];
    const RoundSummary e = summary(i + 1);
    EXPECT_EQ(s.run, e.run);
    EXPECT_EQ(s.strategy, e.strategy);
    EXPECT_EQ(s.round, e.round);
    EXPECT_EQ(s.total_rounds, e.total_rounds);
    EXPECT_EQ(s.clients_answered, e.clients_answered);
    EXPECT_EQ(s.clients_selected, e.clients_selected);
    EXPECT_EQ(s.mean_accuracy, e.mean_accuracy);
    EXPECT_EQ(s.min_accuracy, e.min_accuracy);
    EXPECT_EQ(s.max_accuracy, e.max_accuracy);
    EXPECT_EQ(s.seconds, e.seconds);
    EXPECT_EQ(s.clients_failed, e.clients_failed);
    EXPECT_EQ(s.clients_late, e.clients_late);
    EXPECT_EQ(s.aggregation_error, e.aggregation_error);
    EXPECT_EQ(s.aggregation_error_by_layer, e.aggregation_error_by_layer);
    EXPECT_EQ(s.epsilon, e.epsilon);
    EXPECT_EQ(s.global_accuracy, e.global_accuracy);
    EXPECT_EQ(s.global_loss, e.global_loss);
    EXPECT_EQ(s.wire_bytes_sent, e.wire_bytes_sent);
    EXPECT_EQ(s.wire_bytes_received, e.wire_bytes_received);
    EXPECT_TRUE(std::isnan(s.virtual_seconds)); // a sync run: NaN written as null, read back NaN
  }
}

// The header is written out by hand here: the field list must not be both the writer's and the
// test's source of truth.
TEST_F(ResultsFiles, RoundsCsvHeaderAndRowExact) {
  ResultsWriter w(dir_, info());
  w.client_evaluated(record(0, 1));
  w.round_finished(summary(1));
  const auto csv = lines(dir_ / "rounds.csv");
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[0], "run,strategy,round,total_rounds,clients_answered,clients_selected,clients_failed,clients_late,"
                    "mean_accuracy,min_accuracy,max_accuracy,seconds,aggregation_error,epsilon,virtual_seconds,"
                    "mean_staleness,max_staleness,round_virtual_seconds,cumulative_bytes,global_accuracy,global_loss,"
                    "wire_bytes_sent,wire_bytes_received,p10_accuracy,target_accuracy,global_rounds_to_target,"
                    "mean_rounds_to_target,virtual_seconds_to_target,bytes_to_target,holdout_accuracy,"
                    "holdout_adapted_accuracy");
  EXPECT_EQ(csv[1], "\"exp/clients=3,strategy=plora,seed=0\",plora,1,2,3,3,1,1,0.61,0.51,0.71,2.5,0.125,1.5,nan,"
                    "nan,nan,nan,0,0.5625,1,1007,2009,nan,nan,nan,nan,nan,nan,nan,nan");
}

// A task metric is a column of its own; rows without it (another task's, or the "before" row
// of a metric measured later) leave the cell empty, and the reader gives back exactly what
// each record held.
TEST_F(ResultsFiles, TaskMetricsBecomeColumnsAndReadBack) {
  {
    ResultsWriter w(dir_, info());
    ClientRoundRecord a = record(0, 1), b = record(1, 1);
    a.task_metrics["bleu"] = 0.375;
    b.task_metrics.clear();
    w.client_evaluated(a);
    w.client_evaluated(b);
    w.round_finished(summary(1));
    w.finish(kStatusCompleted);
  }
  const auto csv = lines(dir_ / "metrics.csv");
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_NE(csv[0].find(",staleness,bleu,exact_match"), std::string::npos) << csv[0];
  EXPECT_EQ(csv[1].substr(csv[1].size() - 8), ",0.375,0") << csv[1];
  EXPECT_EQ(csv[2].substr(csv[2].size() - 2), ",,") << csv[2];
  const auto runs = load_results({dir_});
  ASSERT_EQ(runs.at(0).records.size(), 2u);
  EXPECT_EQ(runs[0].records[0].task_metrics, (std::map<std::string, double>{{"bleu", 0.375}, {"exact_match", 0}}));
  EXPECT_TRUE(runs[0].records[1].task_metrics.empty());
}

// Files from before drift, staleness and named metrics: a classification run wrote
// "exact_match": null on every record; it reads as no task metric, the newer fields as NaN.
TEST_F(ResultsFiles, ReadsRecordsWrittenBeforeNamedMetrics) {
  {
    ResultsWriter w(dir_, info());
    feed_all(w);
    w.finish(kStatusCompleted);
  }
  std::string text;
  for (const std::string& line : lines(dir_ / "metrics.jsonl")) {
    json j = json::parse(line);
    j.erase("drift");
    j.erase("staleness");
    j["exact_match"] = nullptr;
    text += j.dump() + "\n";
  }
  write(dir_ / "metrics.jsonl", text);
  const auto runs = load_results({dir_});
  ASSERT_EQ(runs.at(0).records.size(), 9u);
  for (const auto& r : runs[0].records) {
    EXPECT_TRUE(r.task_metrics.empty()) << r.client;
    EXPECT_TRUE(std::isnan(r.drift));
    EXPECT_TRUE(std::isnan(r.staleness));
  }
}

TEST_F(ResultsFiles, NanLossSurvivesAsNan) {
  {
    ResultsWriter w(dir_, info());
    ClientRoundRecord r = record(0, 1);
    r.loss = std::nan("");
    w.client_evaluated(r);
    w.round_finished(summary(1));
    w.finish(kStatusCompleted);
  }
  const auto runs = load_results({dir_});
  ASSERT_EQ(runs.at(0).records.size(), 1u);
  EXPECT_TRUE(std::isnan(runs[0].records[0].loss));
  EXPECT_NE(read(dir_ / "metrics.csv").find(",nan,"), std::string::npos);
}

TEST_F(ResultsFiles, LoadFindsRunsRecursivelySortedAndOnce) {
  for (const char* sub : {"b/deep/run2", "a/run1", "c"}) {
    ResultsWriter w(dir_ / sub, info(std::string("run-") + sub));
    w.finish(kStatusCompleted);
  }
  fs::create_directories(dir_ / "empty");
  const auto runs = load_results({dir_, dir_ / "a" / "run1"});
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].dir, dir_ / "a" / "run1");
  EXPECT_EQ(runs[1].dir, dir_ / "b" / "deep" / "run2");
  EXPECT_EQ(runs[2].dir, dir_ / "c");
  EXPECT_EQ(runs[1].info.run, "run-b/deep/run2");
}

TEST_F(ResultsFiles, ErrorsNameFileAndLine) {
  {
    ResultsWriter w(dir_, info());
    feed_all(w);
    w.finish(kStatusCompleted);
  }
  auto message = [&]() -> std::string {
    try {
      load_results({dir_});
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::vector<std::string> good = lines(dir_ / "metrics.jsonl");
  // Rewrites metrics.jsonl from the good lines with line `number` (1-based) replaced.
  auto with_line = [&](std::size_t number, const std::string& replacement) {
    std::string text;
    for (std::size_t i = 0; i < good.size(); ++i) text += (i + 1 == number ? replacement : good[i]) + "\n";
    write(dir_ / "metrics.jsonl", text);
  };
  ASSERT_EQ(message(), "no error");

  with_line(2, "{\"run\": \"x\", broken");
  std::string m = message();
  EXPECT_NE(m.find((dir_ / "metrics.jsonl").string() + ":2:"), std::string::npos) << m;
  EXPECT_NE(m.find("malformed JSON"), std::string::npos) << m;

  json j = json::parse(good[2]);
  j.erase("accuracy");
  with_line(3, j.dump());
  m = message();
  EXPECT_NE(m.find("metrics.jsonl:3:"), std::string::npos) << m;
  EXPECT_NE(m.find("missing field \"accuracy\""), std::string::npos) << m;

  j = json::parse(good[3]);
  j["client"] = "one";
  with_line(4, j.dump());
  m = message();
  EXPECT_NE(m.find("metrics.jsonl:4:"), std::string::npos) << m;
  EXPECT_NE(m.find("\"client\" must be an integer"), std::string::npos) << m;

  with_line(0, "");
  json run = run_json(dir_);
  run.erase("strategy");
  write(dir_ / "run.json", run.dump());
  m = message();
  EXPECT_NE(m.find((dir_ / "run.json").string()), std::string::npos) << m;
  EXPECT_NE(m.find("missing field \"strategy\""), std::string::npos) << m;
}

// A failure message quoting raw input bytes used to make run.json's writer throw in turn.
TEST_F(ResultsFiles, InvalidUtf8InAFailureMessageIsReplacedNotThrown) {
  ResultsWriter w(dir_, info());
  EXPECT_NO_THROW(w.finish(kStatusFailed, "metadata.jsonl:2: bad byte \xE9 here"));
  EXPECT_EQ(run_json(dir_).at("message"), "metadata.jsonl:2: bad byte \xEF\xBF\xBD here"); // U+FFFD
}

// nlohmann reports 1e999 as out_of_range, which is no parse_error: it escaped raw.
TEST_F(ResultsFiles, NumberOverflowIsMalformedJsonWithFileAndLine) {
  {
    ResultsWriter w(dir_, info());
    feed_all(w);
    w.finish(kStatusCompleted);
  }
  std::string text = read(dir_ / "metrics.jsonl");
  text.insert(text.find('\n') + 1, "{\"accuracy\": 1e999}\n");
  write(dir_ / "metrics.jsonl", text);
  try {
    (void)load_results({dir_});
    ADD_FAILURE() << "1e999 was accepted";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("metrics.jsonl:2: malformed JSON: number overflow"), std::string::npos) << m;
  }
}

TEST_F(ResultsFiles, ErrorWhenPathHoldsNoRun) {
  fs::create_directories(dir_ / "nothing" / "here");
  try {
    load_results({dir_ / "nothing"});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "nothing").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no run"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_results({dir_ / "missing"}), std::runtime_error);
}

TEST_F(ResultsFiles, ConcurrentRecordsAllKeptInOrder) {
  ResultsWriter w(dir_, info());
  std::vector<std::thread> threads;
  for (int client = 0; client < 8; ++client)
    threads.emplace_back([&w, client] {
      for (int round = 0; round <= 20; ++round) w.client_evaluated(record(client, round));
    });
  for (auto& t : threads) t.join();
  w.round_finished(summary(20));
  w.finish(kStatusCompleted);
  ASSERT_EQ(w.records().size(), 8u * 21u);
  for (std::size_t i = 0; i < w.records().size(); ++i) {
    EXPECT_EQ(w.records()[i].round, static_cast<int>(i / 8));
    EXPECT_EQ(w.records()[i].client, static_cast<int>(i % 8));
  }
  EXPECT_EQ(lines(dir_ / "metrics.jsonl").size(), 8u * 21u);
}

// The CSV must be readable by stock tools without options: Python's csv module is the
// reference pandas' parser follows for quoting.
TEST_F(ResultsFiles, PythonCsvModuleReadsSameValues) {
  const char* python = "/usr/bin/python3";
  if (::access(python, X_OK) != 0) GTEST_SKIP() << "no " << python;
  {
    ResultsWriter w(dir_, info());
    feed_all(w);
    w.finish(kStatusCompleted);
  }
  write(dir_ / "read.py",
        "import csv, json, sys\n"
        "ints = {'client','round','test_samples','train_samples','bytes_up','bytes_down'}\n"
        "strs = {'run','strategy','phase'}\n"
        "with open(sys.argv[1], newline='') as f:\n"
        "    for row in csv.DictReader(f):\n"
        "        out = {}\n"
        "        for k, v in row.items():\n"
        "            if k in strs: out[k] = v\n"
        "            elif k in ints: out[k] = int(v)\n"
        "            elif k == 'participated': out[k] = {'true': True, 'false': False}[v]\n"
        "            else: out[k] = float(v)\n"
        "        print(json.dumps(out))\n");
  const std::string cmd = std::string(python) + " " + (dir_ / "read.py").string() + " " +
                          (dir_ / "metrics.csv").string() + " > " + (dir_ / "py.jsonl").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto py = lines(dir_ / "py.jsonl");
  ASSERT_EQ(py.size(), 9u);
  for (std::size_t i = 0; i < py.size(); ++i) {
    const json j = json::parse(py[i]);
    ASSERT_EQ(j.size(), client_record_fields().size() + 1);
    ClientRoundRecord r;
    r.run = j.at("run");
    r.strategy = j.at("strategy");
    r.client = j.at("client");
    r.round = j.at("round");
    r.phase = j.at("phase");
    r.accuracy = j.at("accuracy");
    r.precision = j.at("precision");
    r.recall = j.at("recall");
    r.f1 = j.at("f1");
    r.loss = j.at("loss");
    r.train_loss = j.at("train_loss");
    r.test_samples = j.at("test_samples");
    r.train_samples = j.at("train_samples");
    r.bytes_up = j.at("bytes_up");
    r.bytes_down = j.at("bytes_down");
    r.participated = j.at("participated");
    r.round_seconds = j.at("round_seconds");
    r.task_metrics["exact_match"] = j.at("exact_match");
    r.drift = j.at("drift");
    r.staleness = j.at("staleness");
    expect_same(r, record(static_cast<int>(i % 3), static_cast<int>(i / 3)));
  }
}

// The closing table of a run scored on the global test only (data.test_fraction = 0) read
// "nan → nan" for every client: it says "no local test split" instead.
TEST_F(ResultsFiles, ClientTableWithoutLocalTestSplitSaysSo) {
  std::vector<ClientRoundRecord> records;
  for (int round = 0; round <= 1; ++round)
    for (int client = 0; client < 2; ++client) {
      ClientRoundRecord r = record(client, round);
      r.accuracy = r.precision = r.recall = r.f1 = r.loss = std::nan("");
      r.test_samples = 0;
      records.push_back(r);
    }
  const std::string table = format_client_table(records);
  EXPECT_EQ(table.find("nan"), std::string::npos) << table;
  std::size_t count = 0;
  for (auto at = table.find("no local test split"); at != std::string::npos; at = table.find("no local test split", at + 1)) ++count;
  EXPECT_EQ(count, 3u) << table; // both clients and the mean row
}

TEST_F(ResultsFiles, ClientTableAlignedWithMeanRow) {
  std::vector<ClientRoundRecord> records;
  for (int round = 0; round <= 2; ++round)
    for (int client = 0; client < 3; ++client) records.push_back(record(client, round));
  const std::string table = format_client_table(records);
  std::vector<std::string> rows;
  std::istringstream in(table);
  for (std::string l; std::getline(in, l);) rows.push_back(l);
  // header, rule, 3 clients, rule, mean
  ASSERT_EQ(rows.size(), 7u) << table;
  auto width = [](const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (const auto& r : rows) EXPECT_EQ(width(r), width(rows[0])) << table;
  EXPECT_NE(rows[0].find("accuracy before → after"), std::string::npos) << table;
  // client 1: before 0.6, after (round 2) 0.62, F1 2/5, loss 1.5+1/7
  EXPECT_NE(rows[3].find("0.6000 → 0.6200"), std::string::npos) << table;
  EXPECT_NE(rows[3].find("0.4000"), std::string::npos) << table;
  EXPECT_NE(rows[3].find("1.6429"), std::string::npos) << table;
  EXPECT_NE(rows[3].find("162"), std::string::npos) << table;
  EXPECT_NE(rows[3].find("1.91 MiB"), std::string::npos) << table; // 2 × 1000001 B up
  EXPECT_EQ(rows[6].rfind("mean", 0), 0u) << table;
  EXPECT_NE(rows[6].find("0.6000 → 0.6200"), std::string::npos) << table; // means over clients
  EXPECT_NE(rows[6].find("162.0"), std::string::npos) << table;
}

} // namespace
} // namespace fedvlm
