// tests/cluster_test.cpp — serve + nodes: assignment, setup fingerprints, and a real multi-process run.
#include "actors/cluster.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

TEST(Cluster, HostPortAndBalancedAssignment) {
  EXPECT_EQ(parse_host_port("127.0.0.1:4242"), (std::pair<std::string, uint16_t>{"127.0.0.1", 4242}));
  EXPECT_EQ(parse_host_port("example.org:0").second, 0);
  for (const char* bad : {"4242", ":4242", "host:", "host:65536", "host:x1"})
    EXPECT_THROW((void)parse_host_port(bad), std::invalid_argument) << bad;
  EXPECT_EQ(assign_clients(5, 2), (std::vector<std::vector<int>>{{0, 1, 2}, {3, 4}}));
  EXPECT_EQ(assign_clients(2, 3), (std::vector<std::vector<int>>{{0}, {1}, {}}));
  EXPECT_THROW((void)assign_clients(4, 0), std::invalid_argument);
}

TEST(Cluster, SetupFingerprintSeesEverySplitAndTarget) {
  RunSetup a;
  a.pool_samples = 10;
  a.splits.resize(2);
  a.splits[0].train = {0, 1, 2};
  a.splits[1].train = {3, 4};
  a.targets = {{"fc1", {200, 784}}};
  RunSetup b = a;
  EXPECT_EQ(run_setup_fingerprint(a), run_setup_fingerprint(b));
  b.splits[1].train = {3, 5};
  EXPECT_NE(run_setup_fingerprint(a), run_setup_fingerprint(b));
  b = a;
  b.targets = {{"fc1", {200, 783}}};
  EXPECT_NE(run_setup_fingerprint(a), run_setup_fingerprint(b));
}

/// A port nothing listens on right now.
uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

const fs::path kFashion = "/usr/share/datasets/fashion-mnist";

/// Runs `script` with bash from a file (no quoting through std::system's shell); its exit status.
int run_script(const fs::path& dir, const std::string& script) {
  const fs::path file = dir / "script.sh";
  testing::write_text_file(file, script);
  const int status = std::system(("timeout 180 bash '" + file.string() + "'").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<nlohmann::json> records_without_times(const fs::path& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("round_seconds");
    out.push_back(j);
  }
  return out;
}

std::string config(const fs::path& out) {
  return "name = \"cluster\"\nseed = 1\noutput_dir = \"" + out.string() + "\"\n"
         "[data]\npath = \"" + kFashion.string() + "\"\nmax_samples = 400\n"
         "[model]\narch = \"mlp_2nn\"\n[pretrain]\nenabled = false\n"
         "[partition]\nscheme = \"shards\"\nshards = 10\nshards_per_client = 2\n"
         "[federation]\nclients = 5\nrounds = 2\n[strategy]\nname = \"plora\"\n"
         "[lora]\ntargets = [\"fc1\", \"fc3\"]\n[train]\nlr = 0.05\n";
}

// The same seed gives the same metrics with one process, or a server and 2 node processes
// (clients 0-2 on one, 3-4 on the other), exchanging B matrices over CAF's network layer.
TEST(Cluster, ServerAndTwoNodesGiveTheSingleProcessMetrics) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  testing::TempDir tmp("fedvlm-cluster");
  const fs::path file = tmp.path() / "cluster.toml";
  testing::write_text_file(file, config(tmp.path() / "single"));
  const std::string cli = FEDVLM_CLI;
  ASSERT_EQ(std::system(("'" + cli + "' '" + file.string() + "' --quiet > '" + (tmp.path() / "single.log").string() +
                         "' 2>&1").c_str()),
            0)
      << testing::read_text_file(tmp.path() / "single.log");

  testing::write_text_file(file, config(tmp.path() / "served"));
  const std::string at = "127.0.0.1:" + std::to_string(free_port());
  const std::string log = (tmp.path() / "served.log").string();
  const std::string script =
      "timeout 120 '" + cli + "' serve '" + file.string() + "' --listen " + at + " --nodes 2 --wait 60 --quiet > '" +
      log + "' 2>&1 & server=$!; sleep 1; "
      "timeout 120 '" + cli + "' node --connect " + at + " > '" + log + ".node0' 2>&1 & "
      "timeout 120 '" + cli + "' node --connect " + at + " > '" + log + ".node1' 2>&1 & "
      "wait $server; rc=$?; wait; exit $rc";
  ASSERT_EQ(run_script(tmp.path(), script), 0)
      << testing::read_text_file(log) << testing::read_text_file(log + ".node0");
  const std::string served_log = testing::read_text_file(log);
  EXPECT_NE(served_log.find("node 2 of 2 joined"), std::string::npos) << served_log;
  const std::string node0 = testing::read_text_file(log + ".node0") + testing::read_text_file(log + ".node1");
  EXPECT_NE(node0.find("hosting clients 0, 1, 2"), std::string::npos) << node0;
  EXPECT_NE(node0.find("hosting clients 3, 4"), std::string::npos) << node0;

  const auto single = records_without_times(tmp.path() / "single" / "cluster" / "run");
  const auto served = records_without_times(tmp.path() / "served" / "cluster" / "run");
  ASSERT_EQ(single.size(), 5u * 3u);
  ASSERT_EQ(served.size(), single.size());
  for (std::size_t i = 0; i < single.size(); ++i) EXPECT_EQ(served[i], single[i]) << i;
}

// kill -9 of a node as soon as it hosts its clients: the run goes on with the other node's
// clients, the lost ones count as failed in every later round (without waiting for a timeout
// each round), and the server says they will not come back.
TEST(Cluster, ANodeKilledMidRunLeavesItsClientsOutAndTheRunGoesOn) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  testing::TempDir tmp("fedvlm-cluster");
  const fs::path file = tmp.path() / "cluster.toml";
  std::string text = config(tmp.path() / "out");
  text.replace(text.find("rounds = 2"), 10, "rounds = 6\nquorum = 0.3");
  text.replace(text.find("lr = 0.05"), 9, "lr = 0.01"); // with fewer clients averaged, 0.05 can diverge
  text += "local_epochs = 10\n";
  testing::write_text_file(file, text);
  const std::string cli = FEDVLM_CLI, at = "127.0.0.1:" + std::to_string(free_port());
  const std::string log = (tmp.path() / "serve.log").string();
  const std::string script =
      "timeout 120 '" + cli + "' serve '" + file.string() + "' --listen " + at + " --nodes 2 --wait 60 --quiet > '" +
      log + "' 2>&1 & server=$!; sleep 1; "
      "timeout 120 '" + cli + "' node --connect " + at + " > '" + log + ".a' 2>&1 & a=$!; "
      "timeout 120 '" + cli + "' node --connect " + at + " > '" + log + ".b' 2>&1 & b=$!; "
      "for i in $(seq 1 3000); do "
      "  if grep -q 'hosting clients 3, 4' '" + log + ".a' 2>/dev/null; then kill -9 $(pgrep -P $a); break; fi; "
      "  if grep -q 'hosting clients 3, 4' '" + log + ".b' 2>/dev/null; then kill -9 $(pgrep -P $b); break; fi; "
      "  sleep 0.02; done; "
      "wait $server; rc=$?; wait; exit $rc";
  ASSERT_EQ(run_script(tmp.path(), script), 0) << testing::read_text_file(log);
  const std::string served = testing::read_text_file(log);
  EXPECT_NE(served.find("client 3 is down"), std::string::npos) << served;
  EXPECT_NE(served.find("will not come back"), std::string::npos) << served;
  std::vector<nlohmann::json> rounds;
  std::ifstream in(tmp.path() / "out" / "cluster" / "run" / "rounds.jsonl");
  for (std::string line; std::getline(in, line);) rounds.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rounds.size(), 7u) << served;
  EXPECT_EQ(rounds.back().at("clients_failed"), 2) << served;  // clients 3 and 4, from the node killed
  EXPECT_EQ(rounds.back().at("clients_answered"), 3) << served;
}

// Garbage on the listening port (random bytes, a header claiming a huge payload, a connection
// closed mid-frame) is dropped; a real node that comes afterwards runs the experiment.
TEST(Cluster, GarbageOnThePortIsDroppedAndTheServerGoesOn) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  testing::TempDir tmp("fedvlm-cluster");
  const fs::path file = tmp.path() / "cluster.toml";
  testing::write_text_file(file, config(tmp.path() / "out"));
  const std::string cli = FEDVLM_CLI;
  const uint16_t port = free_port();
  const std::string at = "127.0.0.1:" + std::to_string(port), log = (tmp.path() / "serve.log").string();
  const std::string tcp = "/dev/tcp/127.0.0.1/" + std::to_string(port);
  const std::string script =
      "timeout 120 '" + cli + "' serve '" + file.string() + "' --listen " + at + " --nodes 1 --wait 60 --quiet > '" +
      log + "' 2>&1 & server=$!; sleep 1; "
      "(exec 3<>" + tcp + "; head -c 4096 /dev/urandom >&3; exec 3>&-) 2>/dev/null; "
      "(exec 3<>" + tcp + "; printf '\\xff\\xff\\xff\\x7f\\x00\\x00\\x00\\x01' >&3; exec 3>&-) 2>/dev/null; "
      "(exec 3<>" + tcp + "; printf 'GET / HTTP/1.1\\r\\n\\r\\n' >&3; exec 3>&-) 2>/dev/null; "
      "sleep 0.5; timeout 120 '" + cli + "' node --connect " + at + " > '" + log + ".node' 2>&1; "
      "wait $server";
  ASSERT_EQ(run_script(tmp.path(), script), 0) << testing::read_text_file(log) << testing::read_text_file(log + ".node");
  std::ifstream in(tmp.path() / "out" / "cluster" / "run" / "rounds.jsonl");
  int rounds = 0;
  for (std::string line; std::getline(in, line);) ++rounds;
  EXPECT_EQ(rounds, 3);
}

// Beyond loopback a server needs an explicit --insecure (no TLS yet): refused before anything runs.
TEST(Cluster, ListeningBeyondLoopbackNeedsInsecure) {
  testing::TempDir tmp("fedvlm-cluster");
  const fs::path file = tmp.path() / "cluster.toml";
  testing::write_text_file(file, config(tmp.path() / "out"));
  const std::string log = (tmp.path() / "serve.log").string();
  const int rc = std::system(("timeout 60 '" + std::string(FEDVLM_CLI) + "' serve '" + file.string() +
                              "' --listen 0.0.0.0:4242 > '" + log + "' 2>&1").c_str());
  EXPECT_NE(rc, 0);
  const std::string text = testing::read_text_file(log);
  EXPECT_NE(text.find("add --insecure"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(tmp.path() / "out")) << "nothing may be written";
}

TEST(Cluster, ServerWithoutNodesGivesUpWithAClearMessage) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  testing::TempDir tmp("fedvlm-cluster");
  const fs::path file = tmp.path() / "cluster.toml";
  testing::write_text_file(file, config(tmp.path() / "out"));
  const std::string log = (tmp.path() / "serve.log").string();
  const int rc = std::system(("timeout 60 '" + std::string(FEDVLM_CLI) + "' serve '" + file.string() +
                              "' --listen 127.0.0.1:" + std::to_string(free_port()) + " --nodes 2 --wait 1 --quiet > '" +
                              log + "' 2>&1").c_str());
  EXPECT_NE(rc, 0);
  const std::string text = testing::read_text_file(log);
  EXPECT_NE(text.find("only 0 of 2 nodes were ready in time"), std::string::npos) << text;
}

} // namespace
} // namespace fedvlm
