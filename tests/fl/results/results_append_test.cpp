// tests/fl/results/results_append_test.cpp — per-round appends give the files the whole-file writer gave; torn last lines are cut.
//
// tests/fixtures/results_append/ holds metrics.jsonl, metrics.csv, rounds.jsonl and rounds.csv
// as the writer before appends (every file rewritten whole each round, commit 5d9de8a) wrote
// them for the scenario below: a task metric that appears in round 1 and another in round 3
// (new CSV columns), a round that evaluates only some clients, a record that arrives after its
// round was written, records out of order, a round that never finishes. The rounds files
// gained the two holdout_* fields (null / nan here) when the round record did (issue #22).
#include "fl/results/results_reader.hpp"
#include "fl/results/results_writer.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using fedvlm::testing::read_text_file;
using fedvlm::testing::write_text_file;

const fs::path kFixture = fs::path(FEDVLM_SOURCE_DIR) / "tests/fixtures/results_append";
const std::vector<std::string> kDataFiles = {"metrics.jsonl", "metrics.csv", "rounds.jsonl", "rounds.csv"};
const std::string kRun = "exp/clients=4,note=\"q\",seed=1";

RunInfo run_info() {
  RunInfo i;
  i.experiment = "exp";
  i.run = kRun;
  i.strategy = "plora";
  i.clients = 4;
  i.rounds = 5;
  i.seed = 1;
  return i;
}

ClientRoundRecord record(int client, int round) {
  ClientRoundRecord r;
  r.run = kRun;
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
  r.participated = round > 0 && client % 2 == round % 2;
  r.round_seconds = 2.5 * round;
  if (round >= 1) r.task_metrics["exact_match"] = 0.125 * client + round;
  if (round >= 3 && client == 2) r.task_metrics["bleu"] = 0.3 * round;
  r.drift = 0.5 + client;
  r.staleness = client;
  return r;
}

RoundSummary summary(int round) {
  RoundSummary s;
  s.run = kRun;
  s.strategy = "plora";
  s.round = round;
  s.total_rounds = 5;
  s.clients_answered = 2;
  s.clients_selected = 2;
  s.mean_accuracy = 0.6 + 0.01 * round;
  s.min_accuracy = 0.5 + 0.01 * round;
  s.max_accuracy = 0.7 + 0.01 * round;
  s.seconds = 2.5 * round;
  s.aggregation_error_by_layer = {{"classifier.0", 0.25 * round}};
  s.wire_bytes_sent = 1000 * round + 7;
  return s;
}

ino_t inode(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

/// Feeds the scenario; after every finished round calls `after_round(round)`.
template <class AfterRound>
void feed_scenario(ResultsWriter& w, AfterRound after_round) {
  for (int client : {2, 0, 3, 1}) w.client_evaluated(record(client, 0));
  for (int client : {3, 1, 0, 2}) w.client_evaluated(record(client, 1));
  w.round_finished(summary(1));
  after_round(1);
  for (int client : {3, 1}) w.client_evaluated(record(client, 2)); // only two evaluated
  w.round_finished(summary(2));
  after_round(2);
  for (int client : {0, 2, 1, 3}) w.client_evaluated(record(client, 3));
  w.client_evaluated(record(0, 2)); // late: round 2 is on disk already
  w.round_finished(summary(3));
  after_round(3);
  for (int client : {1, 2, 0, 3}) w.client_evaluated(record(client, 4));
  w.round_finished(summary(4));
  after_round(4);
  w.client_evaluated(record(1, 5)); // round 5 never finishes
  w.finish(kStatusCompleted);
}

TEST(ResultsAppend, FilesAfterAppendedRoundsEqualTheWholeFileWritersOutput) {
  fedvlm::testing::TempDir tmp("fedvlm-append");
  ResultsWriter w(tmp.path(), run_info());
  std::vector<RoundSummary> finished;
  std::vector<ino_t> inodes; // metrics.jsonl's after each round: the same file when appended to
  feed_scenario(w, [&](int round) {
    inodes.push_back(inode(tmp.path() / "metrics.jsonl"));
    // After every round: what rewriting the same records whole gives (restore rewrites).
    finished.push_back(summary(round));
    fedvlm::testing::TempDir whole("fedvlm-append-whole");
    ResultsWriter rewritten(whole.path(), run_info());
    rewritten.restore(w.records(), finished, round);
    for (const auto& f : kDataFiles)
      EXPECT_EQ(read_text_file(tmp.path() / f), read_text_file(whole.path() / f)) << f << " after round " << round;
  });
  // Round 2 and round 4 append; round 3 rewrites (a late record of round 2, a new column).
  ASSERT_EQ(inodes.size(), 4u);
  EXPECT_EQ(inodes[1], inodes[0]);
  EXPECT_NE(inodes[2], inodes[1]);
  EXPECT_EQ(inodes[3], inodes[2]);
  for (const auto& f : kDataFiles) {
    ASSERT_TRUE(fs::exists(kFixture / f)) << kFixture / f;
    EXPECT_EQ(read_text_file(tmp.path() / f), read_text_file(kFixture / f)) << f;
  }
}

TEST(ResultsAppend, TornLastLinesAreCutOnLoadAndResume) {
  fedvlm::testing::TempDir tmp("fedvlm-append");
  {
    ResultsWriter w(tmp.path(), run_info());
    feed_scenario(w, [](int) {});
  }
  std::vector<std::string> whole;
  for (const auto& f : kDataFiles) whole.push_back(read_text_file(tmp.path() / f));
  // kill -9 in the middle of appending round 5: a line without its end in every file.
  for (const auto& f : kDataFiles)
    write_text_file(tmp.path() / f, read_text_file(tmp.path() / f) + (f.back() == 'l' ? "{\"run\":\"exp/cl" : "exp,pl"));

  const RunResults loaded = load_run(tmp.path());
  ASSERT_EQ(loaded.records.size(), 19u); // 4 + 4 + 3 + 4 + 4: the torn one is not a record
  EXPECT_EQ(loaded.records.back().round, 4);
  ASSERT_EQ(loaded.rounds.size(), 4u);
  EXPECT_EQ(loaded.last_round(), 4);

  // resume after round 3's checkpoint: the files hold rounds <= 3 and no torn line.
  ResultsWriter again(tmp.path(), run_info());
  again.restore(loaded.records, loaded.rounds, 3);
  fedvlm::testing::TempDir ref("fedvlm-append-ref");
  ResultsWriter reference(ref.path(), run_info());
  reference.restore(loaded.records, loaded.rounds, 3);
  for (const auto& f : kDataFiles) {
    const std::string text = read_text_file(tmp.path() / f);
    EXPECT_EQ(text, read_text_file(ref.path() / f)) << f;
    EXPECT_EQ(text.back(), '\n') << f;
    EXPECT_EQ(text.find("exp/cl\n"), std::string::npos) << f;
  }
  EXPECT_EQ(load_run(tmp.path()).records.size(), 15u);

  // Resuming goes on appending after the restored rounds as an uninterrupted run did.
  for (int client : {1, 2, 0, 3}) again.client_evaluated(record(client, 4));
  again.round_finished(summary(4));
  again.finish(kStatusCompleted);
  for (std::size_t i = 0; i < kDataFiles.size(); ++i)
    EXPECT_EQ(read_text_file(tmp.path() / kDataFiles[i]), whole[i]) << kDataFiles[i];
}

TEST(ResultsAppend, AMalformedLineThatIsNotTheLastStillFails) {
  fedvlm::testing::TempDir tmp("fedvlm-append");
  {
    ResultsWriter w(tmp.path(), run_info());
    feed_scenario(w, [](int) {});
  }
  const fs::path metrics = tmp.path() / "metrics.jsonl";
  write_text_file(metrics, "{\"run\":\"exp/cl\n" + read_text_file(metrics));
  try {
    (void)load_run(tmp.path());
    FAIL() << "a torn line before the last must not be skipped";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:1"), std::string::npos) << e.what();
  }
  // A last line that ends with its newline is a whole line: malformed, not torn.
  write_text_file(metrics, read_text_file(metrics).substr(15) + "{\"run\":\"exp/cl\n");
  EXPECT_THROW((void)load_run(tmp.path()), std::runtime_error);
}

} // namespace
} // namespace fedvlm
