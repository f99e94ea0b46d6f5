// tests/actors/cluster_rollback_test.cpp — a served run that loses one node (kill -9) while the server runs on rolls back to the newest round every node saved.
#include "actors/cluster.hpp"
#include "fl/results/client_checkpoint.hpp"
#include "fl/results/incremental_checkpoint.hpp"
#include "tests/served_run_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using testing::free_port;

/// 5 clients, 6 rounds, a checkpoint after every round; client 0 a straggler so that rounds last.
std::string rollback_config(const fs::path& out) {
  std::string text = testing::small_served_config(out, "cluster", 5, 400);
  text.replace(text.find("rounds = 2"), 10, "rounds = 6");
  text.replace(text.find("lr = 0.05"), 9, "lr = 0.01\nlocal_epochs = 10");
  return text + "[faults]\nslow_clients = [0]\nslow_seconds = 0.3\n";
}

/// Starts `fedvlm-sim node` in the background, saving its clients' states in `state`, its output in `log`.
std::string node_command(const std::string& at, const std::string& state, const std::string& log) {
  return "timeout 120 '" + std::string(FEDVLM_CLI) + "' node --connect " + at + " --state '" + state + "' > '" + log +
         "' 2>&1 & ";
}

// kill -9 of one node (clients 3, 4) after round 3 while the server runs on, every node keeping its
// clients' states (--state): the server stops the round, rolls back to the newest round every node
// saved, waits for a node to take clients 3 and 4 with their states of that round (a new node on
// the killed one's --state), the surviving node's clients take back theirs, and the rounds after
// it run again. The records end identical to those of a served run that lost no node.
TEST(ClusterRollback, ANodeKilledAloneIsReplacedFromItsStatesAndTheRecordsAreThoseOfARunThatLostNothing) {
  if (!fs::exists(testing::kFashionMnist / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  testing::TempDir tmp("fedvlm-rollback");
  const fs::path file = tmp.path() / "cluster.toml";
  const std::string cli = FEDVLM_CLI;
  const std::string serve = "timeout 120 '" + cli + "' serve '" + file.string() + "' --nodes 2 --wait 60 --listen ";

  // The run that loses nothing.
  testing::write_text_file(file, rollback_config(tmp.path() / "whole"));
  std::string at = "127.0.0.1:" + std::to_string(free_port());
  const std::string whole_log = (tmp.path() / "whole.log").string(), whole_state = (tmp.path() / "whole_state").string();
  ASSERT_EQ(testing::run_script(tmp.path(),
                                serve + at + " > '" + whole_log + "' 2>&1 & server=$!; sleep 1; " +
                                    node_command(at, whole_state, whole_log + ".a") +
                                    node_command(at, whole_state, whole_log + ".b") + "wait $server; rc=$?; wait; exit $rc",
                                180),
            0)
      << testing::read_text_file(whole_log);

  // The same run, the node hosting clients 3 and 4 killed once round 3 is over; a new node on its
  // --state takes its place once the server said it rolls back.
  testing::write_text_file(file, rollback_config(tmp.path() / "lost"));
  at = "127.0.0.1:" + std::to_string(free_port());
  const std::string log = (tmp.path() / "lost.log").string(), state = (tmp.path() / "state").string();
  const std::string script =
      serve + at + " > '" + log + "' 2>&1 & server=$!; sleep 1; " + node_command(at, state, log + ".a") +
      "a=$!; " + node_command(at, state, log + ".b") + "b=$!; "
      "for i in $(seq 1 3000); do grep -q 'round 3/' '" + log + "' && break; sleep 0.02; done; "
      "if grep -q 'hosting clients 3, 4' '" + log + ".a'; then kill -9 $(pgrep -P $a); else kill -9 $(pgrep -P $b); fi; "
      "for i in $(seq 1 3000); do grep -q 'rolling back to round' '" + log + "' && break; sleep 0.02; done; " +
      node_command(at, state, log + ".c") + "wait $server; rc=$?; wait; exit $rc";
  ASSERT_EQ(testing::run_script(tmp.path(), script, 180), 0) << testing::read_text_file(log);
  const std::string served = testing::read_text_file(log);
  const std::regex said(R"(node 1 \(clients 3, 4\) lost in round ([0-9]+): rolling back to round ([0-9]+) and waiting )"
                        R"(for a node with their states)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(served, m, said)) << served;
  const int lost = std::stoi(m[1].str()), back = std::stoi(m[2].str());
  EXPECT_GE(lost, 4) << served; // killed after round 3
  EXPECT_LE(lost, 6) << served;
  EXPECT_GE(back, 3) << served; // the newest round every node saved
  EXPECT_LT(back, lost) << served;
  EXPECT_NE(served.find("every client took back its state of round " + std::to_string(back)), std::string::npos) << served;
  EXPECT_EQ(served.find("left out until a node"), std::string::npos) << served; // not today's restart from the start
  EXPECT_NE(testing::read_text_file(log + ".c").find("resuming after round " + std::to_string(back) +
                                                     ": every client's saved state found"),
            std::string::npos)
      << testing::read_text_file(log + ".c");

  const fs::path run = tmp.path() / "lost" / "cluster" / "run", whole = tmp.path() / "whole" / "cluster" / "run";
  const auto expected_records = testing::records_without_times(whole);
  const auto records = testing::records_without_times(run);
  ASSERT_EQ(expected_records.size(), 5u * 7u);
  ASSERT_EQ(records.size(), expected_records.size());
  for (std::size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i], expected_records[i]) << i;
  const auto expected_rounds = testing::rounds_without_times(whole);
  const auto rounds = testing::rounds_without_times(run);
  ASSERT_EQ(expected_rounds.size(), 7u);
  ASSERT_EQ(rounds.size(), expected_rounds.size());
  for (std::size_t i = 0; i < rounds.size(); ++i) EXPECT_EQ(rounds[i], expected_rounds[i]) << i;
  const auto info = nlohmann::json::parse(testing::read_text_file(run / "run.json"));
  EXPECT_EQ(info.at("status"), "completed");
  EXPECT_NE(info.at("message").get<std::string>().find("rolled back to round " + std::to_string(back)), std::string::npos)
      << info.dump();
  const auto ck = latest_checkpoint(run);
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(checkpoint_load(*ck).round, 6);
}

} // namespace
} // namespace fedvlm
