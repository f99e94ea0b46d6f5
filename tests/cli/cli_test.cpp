// tests/cli/cli_test.cpp — the fedvlm-sim binary: usage, exit statuses, config errors and --dry-run.
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#ifndef FEDVLM_CLI
#error "FEDVLM_CLI must name the fedvlm-sim binary"
#endif

namespace {

namespace fs = std::filesystem;

const fs::path kFashionMnist = "/usr/share/datasets/fashion-mnist";

struct CliResult {
  int status = -1;  ///< exit status, or -1 when the process did not exit normally
  std::string out;  ///< stdout and stderr together
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

// Runs fedvlm-sim with `args` (each quoted for the shell), stdin from /dev/null.
CliResult run_cli(const std::vector<std::string>& args) {
  std::string cmd = shell_quote(FEDVLM_CLI);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null 2>&1";
  CliResult r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen failed for: " << cmd;
    return r;
  }
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) r.status = WEXITSTATUS(status);
  return r;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class Cli : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(fs::exists(FEDVLM_CLI)) << "binary not built: " << FEDVLM_CLI; }
  fs::path write(const std::string& name, const std::string& text) const {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
  // A small experiment over Fashion-MNIST whose results would go to dir_/out.
  std::string small_experiment(int clients, int64_t max_samples, const std::string& extra = "") const {
    std::ostringstream os;
    os << "name = \"clitest\"\n"
       << "output_dir = \"" << (dir_ / "out").string() << "\"\n"
       << "[data]\ndataset = \"fashion_mnist\"\npath = \"" << kFashionMnist.string() << "\"\n"
       << "max_samples = " << max_samples << "\n"
       << "[partition]\nscheme = \"shards\"\nshards_per_client = 2\n"
       << "[federation]\nclients = " << clients << "\nrounds = 1\n"
       << extra;
    return os.str();
  }
  bool output_dir_untouched() const {
    const fs::path out = dir_ / "out";
    return !fs::exists(out) || fs::is_empty(out);
  }
  fedvlm::testing::TempDir tmp_{"fedvlm-cli"};
  const fs::path dir_ = tmp_.path();
};

TEST_F(Cli, HelpExitsZeroAndDescribesCommands) {
  const CliResult r = run_cli({"--help"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "--dry-run")) << r.out;
  EXPECT_TRUE(contains(r.out, "plot")) << r.out;
  EXPECT_TRUE(contains(r.out, "compare")) << r.out;
}

TEST_F(Cli, KeysListsSectionsAndKeys) {
  const CliResult r = run_cli({"--keys"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "[federation]")) << r.out;
  EXPECT_TRUE(contains(r.out, "[lora]")) << r.out;
  EXPECT_TRUE(contains(r.out, "  rounds (an integer")) << r.out;
}

TEST_F(Cli, NoArgumentsIsAUsageError) {
  const CliResult r = run_cli({});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--help")) << r.out;
}

TEST_F(Cli, UnknownOptionIsAUsageErrorNamingIt) {
  const CliResult r = run_cli({"--frobnicate"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--frobnicate")) << r.out;

  const fs::path file = write("ok.toml", "");
  const CliResult r2 = run_cli({file.string(), "--dry-rnu"});
  EXPECT_EQ(r2.status, 2) << r2.out;
  EXPECT_TRUE(contains(r2.out, "--dry-rnu")) << r2.out;
}

TEST_F(Cli, MissingFileExitsTwoNamingIt) {
  const fs::path missing = dir_ / "no-such-experiment.toml";
  const CliResult r = run_cli({missing.string()});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, missing.string())) << r.out;
}

TEST_F(Cli, UnknownKeyExitsTwoWithFileLineColumnAndKey) {
  const fs::path file = write("typo.toml", "[federation]\nclients = 2\nroundz = 3\n");
  const CliResult r = run_cli({file.string(), "--dry-run"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, file.string() + ":3:1: key 'federation.roundz'")) << r.out;
  EXPECT_TRUE(contains(r.out, "rounds")) << "known keys not listed: " << r.out;
  EXPECT_TRUE(output_dir_untouched());
}

// A directory or an empty file used to run the built-in defaults.
TEST_F(Cli, DirectoryOrEmptyFileAsExperimentExitsTwo) {
  CliResult r = run_cli({dir_.string(), "--dry-run"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, dir_.string() + ": is a directory, expected an experiment .toml file")) << r.out;
  const fs::path empty = write("empty.toml", "# only a comment\n\n");
  r = run_cli({empty.string(), "--dry-run"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, empty.string() + ": no settings (the file is empty or holds only comments)")) << r.out;
  EXPECT_TRUE(output_dir_untouched());
}

// Integer and seconds flags: parsed with a range check naming the flag (no raw "stoi").
TEST_F(Cli, NumericFlagsOutOfRangeExitTwoNamingTheFlagAndRange) {
  const fs::path file = write("exp.toml", small_experiment(2, 100));
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"serve", file.string(), "--nodes", "99999999999"}, "--nodes: 99999999999 is out of range; expected a node count from 1 to 100000"},
      {{"serve", file.string(), "--nodes", "99999999999999999999999"}, "--nodes: 99999999999999999999999 is out of range"},
      {{"serve", file.string(), "--nodes", "0"}, "--nodes: 0 is out of range"},
      {{"serve", file.string(), "--nodes", "-3"}, "--nodes: expected a node count from 1 to 100000, got '-3'"},
      {{"serve", file.string(), "--nodes", "4x"}, "--nodes: expected a node count"},
      {{"serve", file.string(), "--wait", "1e400"}, "--wait: 1e400 is out of range; expected seconds > 0 and at most a year"},
      {{"serve", file.string(), "--wait", "1e10"}, "--wait: 1e10 is out of range"},
      {{"serve", file.string(), "--wait", "nan"}, "--wait: expected seconds"},
      {{"serve", file.string(), "--listen", "127.0.0.1:99999"}, "--listen: \"127.0.0.1:99999\": expected HOST:PORT"},
      {{"node", "--connect", "127.0.0.1:1", "--slots", "100000"}, "--slots: 100000 is out of range; expected a job count"},
      {{"node", "--connect", "127.0.0.1:1", "--slots", "0"}, "--slots: 0 is out of range"},
      {{"node", "--connect", "127.0.0.1:1", "--wait", "-1"}, "--wait: -1 is out of range; expected seconds > 0"},
      {{"node", "--connect", "127.0.0.1:1", "--wait", "0"}, "--wait: 0 is out of range; expected seconds > 0"},
      {{"node", "--connect", "127.0.0.1:99999999999"}, "--connect: \"127.0.0.1:99999999999\": expected HOST:PORT"},
      {{"serve", file.string(), "--restart-missing-clients"}, "--restart-missing-clients goes with serve --resume"},
  };
  for (const auto& c : cases) {
    const CliResult r = run_cli(c.args);
    EXPECT_EQ(r.status, 2) << c.args.back() << ": " << r.out;
    EXPECT_TRUE(contains(r.out, c.expected)) << r.out;
    EXPECT_FALSE(contains(r.out, "stoi")) << r.out;
  }
  EXPECT_TRUE(output_dir_untouched());
}

// A FIFO (or any file that is not a regular one) used to block the run forever in open().
TEST_F(Cli, FifoOrDeviceAsExperimentIsRefusedWithoutBlocking) {
  const fs::path fifo = dir_ / "exp.toml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // `timeout` frees the test if the CLI blocks; then the status is 124, not 2.
  std::string cmd = "timeout 20 " + shell_quote(FEDVLM_CLI) + " " + shell_quote(fifo.string()) + " --dry-run </dev/null 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_TRUE(contains(out, fifo.string() + ": is not a regular file (it is a FIFO (named pipe))")) << out;
  const CliResult r = run_cli({"/dev/zero", "--dry-run"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "/dev/zero: is not a regular file (it is a character device)")) << r.out;
}

TEST_F(Cli, BadSetExitsTwoNamingTheOption) {
  const fs::path file = write("exp.toml", small_experiment(2, 100));
  CliResult r = run_cli({file.string(), "--dry-run", "--set", "federation.roundz=3"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--set federation.roundz=3: key 'federation.roundz': unknown key (known keys in "
                              "[federation]:"))
      << r.out;
  r = run_cli({file.string(), "--set", "federation.rounds=abc", "--dry-run"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--set federation.rounds=abc: key 'federation.rounds': expects an integer")) << r.out;
  r = run_cli({file.string(), "--dry-run", "--set"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--set needs KEY=VALUE")) << r.out;
  r = run_cli({file.string(), "--output-dir"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--output-dir needs a directory")) << r.out;
  EXPECT_TRUE(output_dir_untouched());
}

// --output-dir is checked (created, written into) before any data is loaded, naming the key.
TEST_F(Cli, OutputDirBelowAFileExitsTwoNamingTheKey) {
  const fs::path file = write("exp.toml", small_experiment(2, 100));
  const fs::path blocker = write("blocker", "a file\n");
  const CliResult r = run_cli({file.string(), "--quiet", "--output-dir", (blocker / "results").string()});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "output_dir: '" + (blocker / "results").string() +
                                  "': cannot create the directory: Not a directory"))
      << r.out;
}

TEST_F(Cli, SetAndOutputDirShapeTheDryRunPlan) {
  if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  const fs::path file = write("exp.toml", small_experiment(2, 200));
  const fs::path other = dir_ / "other";
  const CliResult r = run_cli({file.string(), "--dry-run", "--quiet", "--set", "federation.rounds=3", "--set",
                               "federation.clients=[2, 4]", "--output-dir", other.string()});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "2 run(s)")) << r.out;
  EXPECT_TRUE(contains(r.out, "clients=2")) << r.out;
  EXPECT_TRUE(contains(r.out, "clients=4")) << r.out;
  EXPECT_TRUE(contains(r.out, "  rounds       3 x ")) << r.out;
  EXPECT_TRUE(output_dir_untouched());
  EXPECT_FALSE(fs::exists(other)); // a dry run writes nothing, wherever results would go
}

TEST_F(Cli, DryRunPrintsThePlanAndWritesNothing) {
  if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  const fs::path file = write("small.toml", small_experiment(3, 600));
  const CliResult r = run_cli({file.string(), "--dry-run", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "clitest/run")) << r.out;

  // plora: only the B matrices travel, among them the last classifier layer's.
  std::istringstream lines(r.out);
  std::string line;
  bool travels = false, client_table = false;
  std::vector<int> ids;
  int64_t train_total = 0, test_total = 0;
  const std::regex row(R"(^\s+(\d+)\s+(\d+)\s+(\d+)\s)");
  while (std::getline(lines, line)) {
    if (contains(line, "travels")) {
      travels = true;
      EXPECT_TRUE(contains(line, "classifier.3.lora_B")) << line;
      EXPECT_FALSE(contains(line, "lora_A")) << "pLoRA keeps A private: " << line;
    }
    if (contains(line, "clients") && contains(line, "train") && contains(line, "test")) {
      client_table = true;
      continue;
    }
    std::smatch m;
    if (client_table && std::regex_search(line, m, row)) {
      ids.push_back(std::stoi(m[1]));
      const int64_t train = std::stoll(m[2]), test = std::stoll(m[3]);
      // 600 samples in 6 equal shards, 2 per client: 200 each, 20% held out.
      EXPECT_EQ(train, 160) << line;
      EXPECT_EQ(test, 40) << line;
      train_total += train;
      test_total += test;
    }
  }
  EXPECT_TRUE(travels) << r.out;
  EXPECT_TRUE(client_table) << r.out;
  EXPECT_EQ(ids, (std::vector<int>{0, 1, 2})) << r.out;
  EXPECT_EQ(train_total + test_total, 600) << r.out;
  EXPECT_TRUE(output_dir_untouched()) << "--dry-run wrote into " << (dir_ / "out");
}

TEST_F(Cli, DryRunOfASweepPlansEveryRun) {
  if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  std::string text = small_experiment(2, 400);
  text.replace(text.find("clients = 2"), 11, "clients = [2, 4]");
  const fs::path file = write("sweep.toml", text);
  const CliResult r = run_cli({file.string(), "--dry-run", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "2 run(s)")) << r.out;
  EXPECT_TRUE(contains(r.out, "clitest/clients=2")) << r.out;
  EXPECT_TRUE(contains(r.out, "clitest/clients=4")) << r.out;
  EXPECT_TRUE(output_dir_untouched());
}

TEST_F(Cli, DryRunWithImpossibleShardsFailsNamingPartitionShards) {
  if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  // 8 clients x 2 shards = 16 shards, but only 10 samples.
  const fs::path file = write("tiny.toml", small_experiment(8, 10));
  const CliResult r = run_cli({file.string(), "--dry-run", "--quiet"});
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.status, -1) << "did not exit normally: " << r.out;
  EXPECT_TRUE(contains(r.out, "partition.shards")) << r.out;
  EXPECT_TRUE(output_dir_untouched());
}

// The test split's share rounds to nothing (0.0001 of 50 samples) or the training split's does
// (0.999): refused naming the clients and their sizes, unless the global test alone scores.
TEST_F(Cli, SplitsThatRoundToNothingAreRefusedNamingClientsAndSizes) {
  if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  const fs::path file = write("exp.toml", small_experiment(2, 100));
  for (const std::string f : {"0.0001", "0.005"}) {
    const CliResult r = run_cli({file.string(), "--dry-run", "--quiet", "--set", "data.test_fraction=" + f});
    EXPECT_EQ(r.status, 2) << r.out; // a bad experiment, as the file said it
    EXPECT_TRUE(contains(r.out, "leaves the test split of 2 of 2 clients with no sample of its own")) << r.out;
    EXPECT_TRUE(contains(r.out, "client 0 has 50 samples")) << r.out;
    EXPECT_TRUE(contains(r.out, "client 1 has 50 samples")) << r.out;
  }
  for (const std::string f : {"0.999", "0.995"}) {
    const CliResult r = run_cli({file.string(), "--dry-run", "--quiet", "--set", "data.test_fraction=" + f});
    EXPECT_EQ(r.status, 2) << r.out; // a bad experiment, as the file said it
    EXPECT_TRUE(contains(r.out, "leaves the training split of 2 of 2 clients")) << r.out;
  }
  // One sample in 50 is a test split of one, as asked: accepted; and no split with the global test.
  EXPECT_EQ(run_cli({file.string(), "--dry-run", "--quiet", "--set", "data.test_fraction=0.02"}).status, 0);
  const CliResult g = run_cli({file.string(), "--dry-run", "--quiet", "--set", "data.test_fraction=0", "--set",
                               "evaluation.global_test=true"});
  EXPECT_EQ(g.status, 0) << g.out;
  EXPECT_TRUE(output_dir_untouched());
}

// Keys that would do nothing: a warning naming the key and why, each once; --strict refuses.
TEST_F(Cli, KeysWithoutEffectWarnOnceAndStrictRefuses) {
  const fs::path file = write("exp.toml", "name = \"w\"\noutput_dir = \"" + (dir_ / "out").string() +
                                              "\"\n[partition]\nscheme = \"shards\"\nbeta = 0.1\n"
                                              "[federation]\nbuffer_size = 2\nclients = [2, 4]\n"
                                              "[faults]\nslow_sigma = 2.0\n[lora]\nrank = 8\n[strategy]\nname = \"full\"\n"
                                              "[model]\ntokenizer = \"tok.json\"\n[privacy]\nmode = \"local\"\n");
  // A missing dataset fails the run later; the warnings come first, from the file alone.
  const CliResult r = run_cli({file.string(), "--dry-run", "--quiet", "--set", "data.path=/nonexistent"});
  for (const std::string key : {"partition.beta", "federation.buffer_size", "faults.slow_sigma", "lora.rank",
                                "model.tokenizer", "privacy.mode"}) {
    const std::string needle = "key '" + key + "' has no effect because ";
    const auto first = r.out.find(needle);
    EXPECT_NE(first, std::string::npos) << needle << "\n" << r.out;
    // Once, though it does nothing in both runs of the sweep (clients=2, clients=4).
    std::size_t count = 0;
    for (auto at = r.out.find(needle); at != std::string::npos; at = r.out.find(needle, at + 1)) ++count;
    EXPECT_EQ(count, 1u) << needle << "\n" << r.out;
  }
  EXPECT_TRUE(contains(r.out, "key 'partition.beta' has no effect because partition.scheme = \"shards\" (it applies when "
                              "partition.scheme = \"dirichlet\") in every run of the sweep"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "key 'federation.buffer_size' has no effect because federation.mode = \"sync\"")) << r.out;
  EXPECT_TRUE(contains(r.out, "key 'lora.rank' has no effect because strategy.name = \"full\"")) << r.out;
  for (const std::vector<std::string>& strict : {std::vector<std::string>{"--strict"}, {"--set", "strict=true"}}) {
    std::vector<std::string> args = {file.string(), "--dry-run", "--quiet"};
    args.insert(args.end(), strict.begin(), strict.end());
    const CliResult s = run_cli(args);
    EXPECT_EQ(s.status, 2) << s.out;
    EXPECT_TRUE(contains(s.out, "has no effect because")) << s.out;
    EXPECT_TRUE(contains(s.out, "set strict = false to only be warned")) << s.out;
  }
  EXPECT_TRUE(output_dir_untouched());
}

// `--keys` gives each numeric key's range and each conditional key's condition.
TEST_F(Cli, KeysShowRangesAndWhenEachKeyApplies) {
  const CliResult r = run_cli({"--keys"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "  round_timeout_s (a number, default 3600.0, range (0, 31536000]: one year)")) << r.out;
  EXPECT_TRUE(contains(r.out, "  clients (an integer, default 4, range [1, 100000]")) << r.out;
  EXPECT_TRUE(contains(r.out, "  beta (a number, default 0.5, range (0, 1000000])\n      dirichlet: concentration "
                              "(smaller = more skewed)\n      applies when partition.scheme = \"dirichlet\"\n"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "applies when federation.mode = \"async\"")) << r.out;
}

// A dry run of the synthetic VQA dataset generated 246 files under output_dir/.cache: now it
// generates into a temporary directory that it removes, and writes nothing anywhere.
TEST_F(Cli, DryRunOfSyntheticVqaWritesNothingAnywhere) {
  const fs::path tmp = dir_ / "tmp";
  fs::create_directories(tmp);
  const fs::path file = write("vqa.toml", "name = \"v\"\noutput_dir = \"" + (dir_ / "out").string() +
                                              "\"\n[model]\narch = \"florence2_tiny\"\n[data]\ndataset = \"synthetic_vqa\"\n"
                                              "synthetic_domains = 2\nsynthetic_per_domain = 8\ntest_fraction = 0.25\n"
                                              "[partition]\nscheme = \"by_domain\"\n[federation]\nclients = 2\nrounds = 1\n");
  const std::string cmd = "TMPDIR=" + shell_quote(tmp.string()) + " " + shell_quote(FEDVLM_CLI) + " " +
                          shell_quote(file.string()) + " --dry-run --quiet </dev/null 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << out;
  EXPECT_TRUE(contains(out, "synthetic_vqa (generated)")) << out;
  EXPECT_FALSE(fs::exists(dir_ / "out")) << "the dry run wrote under output_dir";
  EXPECT_TRUE(fs::is_empty(tmp)) << "the dry run left files in TMPDIR";
}

} // namespace
