// tests/cli/threads_and_phases_cli_test.cpp — the binary's thread plan (under taskset too), shipped experiments' dry runs, phase timings in run.json.
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#ifndef FEDVLM_CLI
#error "FEDVLM_CLI must name the fedvlm-sim binary"
#endif

namespace {

namespace fs = std::filesystem;
using fedvlm::testing::read_text_file;
using fedvlm::testing::TempDir;
using fedvlm::testing::write_text_file;

const fs::path kFashionMnist = "/usr/share/datasets/fashion-mnist";
const fs::path kTaskset = "/usr/bin/taskset";

struct CliResult {
  int status = -1;
  std::string out; ///< stdout and stderr together
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// Runs `prefix` (e.g. "taskset -c 0", or "") then fedvlm-sim with `args`.
CliResult run_cli(const std::string& prefix, const std::vector<std::string>& args) {
  std::string cmd = prefix + (prefix.empty() ? "" : " ") + shell_quote(FEDVLM_CLI);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null 2>&1";
  CliResult r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) r.status = WEXITSTATUS(status);
  return r;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// CPUs in this test process's affinity (the binary inherits it), from the kernel's own list.
int allowed_cpus() {
  std::istringstream status(read_text_file("/proc/self/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) != 0) continue;
    int n = 0;
    std::istringstream in(line.substr(line.find(':') + 1));
    std::string part;
    while (std::getline(in, part, ',')) {
      const auto dash = part.find('-');
      n += dash == std::string::npos ? 1 : std::stoi(part.substr(dash + 1)) - std::stoi(part.substr(0, dash)) + 1;
    }
    return n;
  }
  return 0;
}

/// A small Fashion-MNIST experiment (mlp_2nn trained in full) whose results go to `out`.
std::string small_experiment(const fs::path& out, const std::string& extra = "") {
  return "name = \"threads\"\noutput_dir = \"" + out.string() + "\"\n" + extra +
         "[model]\narch = \"mlp_2nn\"\n[data]\ndataset = \"fashion_mnist\"\npath = \"" + kFashionMnist.string() +
         "\"\nmax_samples = 400\n[partition]\nscheme = \"shards\"\nshards_per_client = 2\n"
         "[federation]\nclients = 2\nrounds = 2\n[strategy]\nname = \"full\"\ntrainable = [\"fc1\", \"fc2\", \"fc3\"]\n"
         "[train]\nlocal_epochs = 1\nbatch_size = 20\nlr = 0.05\n[scheduler]\nconcurrency = 2\n";
}

class ThreadsCli : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(FEDVLM_CLI)) << "binary not built: " << FEDVLM_CLI;
    if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  }
  TempDir tmp_{"fedvlm-threads"};
  const fs::path dir_ = tmp_.path();
};

TEST_F(ThreadsCli, DryRunPlanSplitsTheCoresOfTheAffinityMask) {
  const fs::path file = dir_ / "exp.toml";
  write_text_file(file, small_experiment(dir_ / "out"));
  const int cpus = allowed_cpus();
  ASSERT_GT(cpus, 0);
  const CliResult r = run_cli("", {file.string(), "--dry-run", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string expected = std::to_string(std::max(1, cpus / 2)) + " intra-op per worker (" +
                               std::to_string(cpus) + (cpus == 1 ? " core" : " cores") + " / 2 workers";
  EXPECT_TRUE(contains(r.out, "  threads      " + expected)) << r.out;
  EXPECT_FALSE(contains(r.out, "warning")) << r.out;
}

TEST_F(ThreadsCli, UnderTasksetOneCoreThePlanSaysOneCore) {
  if (!fs::exists(kTaskset)) GTEST_SKIP() << "taskset (util-linux) is absent";
  const fs::path file = dir_ / "exp.toml";
  write_text_file(file, small_experiment(dir_ / "out"));
  const CliResult r = run_cli(kTaskset.string() + " -c 0", {file.string(), "--dry-run", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "  threads      1 intra-op per worker (1 core / 2 workers")) << r.out;
  EXPECT_TRUE(contains(r.out, "pretraining 1")) << r.out;

  // An explicit count above the one core: the plan warns, naming both values.
  const CliResult over =
      run_cli(kTaskset.string() + " -c 0", {file.string(), "--dry-run", "--quiet", "--set", "threads=2"});
  ASSERT_EQ(over.status, 0) << over.out;
  EXPECT_TRUE(contains(over.out, "  threads      2 intra-op per worker (threads = 2 as set")) << over.out;
  EXPECT_TRUE(contains(over.out, "threads = 2 x scheduler.concurrency = 2 is 4 threads on 1 core")) << over.out;
}

TEST_F(ThreadsCli, EveryShippedExperimentsDryRunShowsItsThreads) {
  const fs::path experiments = fs::path(FEDVLM_SOURCE_DIR) / "experiments";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(experiments)) {
    if (entry.path().extension() != ".toml") continue;
    // Files whose data or weights this machine lacks cannot plan; the others must.
    const std::string text = read_text_file(entry.path());
    std::smatch m;
    if (std::regex_search(text, m, std::regex("\\npath = \"([^\"]+)\"")) && !fs::exists(m[1].str())) continue;
    if (std::regex_search(text, m, std::regex("\\nweights = \"([^\"]+)\"")) && !fs::exists(m[1].str())) continue;
    if (contains(text, "dataset = \"cifar10\"") || contains(text, "dataset = \"vqa_folder\"")) continue;
    SCOPED_TRACE(entry.path().string());
    const CliResult r = run_cli("", {entry.path().string(), "--dry-run", "--quiet"});
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(contains(r.out, "  threads      ")) << r.out;
    EXPECT_TRUE(contains(r.out, "threads = \"auto\"")) << "a shipped file fixes its threads: " << r.out;
    ++checked;
  }
  EXPECT_GE(checked, 3) << "too few shipped experiments could plan on this machine";
}

TEST_F(ThreadsCli, RunJsonHoldsPhaseSecondsThatFitTheWallTime) {
  const fs::path file = dir_ / "exp.toml";
  const fs::path out = dir_ / "out";
  // Pretraining on, cached inside the temp dir, so the run pretrains now.
  write_text_file(file, small_experiment(out) + "[pretrain]\nenabled = true\npublic_samples = 200\nepochs = 1\n"
                                                "batch_size = 50\ncache_dir = \"" +
                            (dir_ / "cache").string() + "\"\n");
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = run_cli("", {file.string(), "--quiet"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "phases: setup ")) << r.out;

  fs::path run_json;
  for (const auto& e : fs::recursive_directory_iterator(out))
    if (e.path().filename() == "run.json") run_json = e.path();
  ASSERT_FALSE(run_json.empty()) << "no run.json under " << out;
  const nlohmann::json j = nlohmann::json::parse(read_text_file(run_json));
  ASSERT_TRUE(j.contains("phase_seconds")) << j.dump(2);
  const nlohmann::json& p = j["phase_seconds"];
  double sum = 0;
  for (const char* key : {"setup", "pretraining", "rounds", "writing"}) {
    ASSERT_TRUE(p.contains(key) && p[key].is_number()) << key << " in " << p.dump();
    const double s = p[key].get<double>();
    EXPECT_GE(s, 0.0) << key;
    sum += s;
  }
  EXPECT_EQ(p.size(), 4u) << p.dump();
  EXPECT_GT(p["pretraining"].get<double>(), 0.0) << "this run pretrained: " << p.dump();
  EXPECT_GT(p["rounds"].get<double>(), 0.0) << p.dump();
  EXPECT_GT(p["writing"].get<double>(), 0.0) << "results and adapters were written: " << p.dump();
  EXPECT_LE(sum, wall) << p.dump() << " against " << wall << " s around the command";
  // The process also starts, parses and exits outside the phases, but not for long.
  EXPECT_GT(sum, 0.2 * wall) << p.dump() << " against " << wall << " s";
}

} // namespace
