// tests/cli/resume_cli_test.cpp — runs that survive, as a user meets them: kill -9 and resume, Ctrl-C, SIGTERM, changed configs, sweeps.
#include "fl/results/results_reader.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#ifndef FEDVLM_CLI
#error "FEDVLM_CLI must name the fedvlm-sim binary"
#endif

namespace {

namespace fs = std::filesystem;
using namespace fedvlm;
using fedvlm::testing::read_text_file;
using fedvlm::testing::TempDir;
using fedvlm::testing::write_text_file;

const fs::path kFashion = "/usr/share/datasets/fashion-mnist";

/// fedvlm-sim started in the background, output to a file; the test can signal and reap it.
class Cli {
public:
  Cli(const std::vector<std::string>& args, const fs::path& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const int null_in = ::open("/dev/null", O_RDONLY);
      ::dup2(null_in, 0);
      std::vector<char*> argv;
      std::string bin = FEDVLM_CLI;
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Cli() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Exit status, or 128 + signal for a process killed by a signal.
  int wait() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    reaped_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

int run_to_end(const std::vector<std::string>& args, const fs::path& log) {
  Cli cli(args, log);
  return cli.wait();
}

bool wait_for(const fs::path& file, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (fs::exists(file)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(read_text_file(p)); }

/// metrics.jsonl / rounds.jsonl lines without the wall-clock fields, which no two runs share.
std::vector<nlohmann::json> lines_without_times(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_text_file(p));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    j.erase("round_seconds");
    j.erase("seconds");
    out.push_back(j);
  }
  return out;
}

class Resume : public ::testing::Test {
protected:
  void SetUp() override {
    if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  /// 4 clients, 4 rounds, two workers; client 0 answers `slow` seconds late every round, which
  /// leaves a window to stop the run inside a round without changing any result.
  fs::path experiment(const std::string& name, const std::string& strategy, double slow = 0.8,
                      const std::string& extra = "") const {
    std::ostringstream os;
    os << "name = \"" << name << "\"\noutput_dir = \"" << (dir_.path() / "out").string() << "\"\nseed = 5\n"
       << "[data]\npath = \"" << kFashion.string() << "\"\nmax_samples = 600\n"
       << "[partition]\nscheme = \"shards\"\nshards_per_client = 2\n"
       << "[federation]\nclients = 4\nrounds = 4\n"
       << "[strategy]\nname = \"" << strategy << "\"\n"
       << "[train]\nlr = 0.05\n[scheduler]\nconcurrency = 2\n"
       << "[faults]\nslow_clients = [0]\nslow_seconds = " << slow << "\n"
       << extra;
    const fs::path file = dir_.path() / (name + ".toml");
    write_text_file(file, os.str());
    return file;
  }
  fs::path log(const std::string& name) const { return dir_.path() / (name + ".log"); }
  TempDir dir_{"fedvlm-resume"};
};

TEST_F(Resume, KillNineInRoundThreeThenResumeGivesIdenticalResults) {
  // plora_topk: top-k updates with error feedback, whose residuals (what each client has not sent
  // yet) are in the checkpoint: a resume that restarted them at zero would send other updates.
  const std::string topk = "[compression]\nup = \"topk\"\ntopk_fraction = 0.2\n";
  for (const auto& [label, strategy, extra] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"plora", "plora", ""}, {"flora", "flora", ""}, {"plora_topk", "plora", topk}}) {
    const std::string whole_name = "whole_" + label, killed_name = "killed_" + label;
    ASSERT_EQ(run_to_end({experiment(whole_name, strategy, 0.8, extra).string(), "--quiet"}, log(whole_name)), 0)
        << read_text_file(log(whole_name));
    const fs::path whole = dir_.path() / "out" / whole_name / "run";

    const fs::path killed = dir_.path() / "out" / killed_name / "run";
    {
      Cli cli({experiment(killed_name, strategy, 0.8, extra).string(), "--quiet"}, log(killed_name));
      // The checkpoint of round 2 is written before round 3 starts; client 0 holds every round
      // open for 0.8 s, so the kill lands inside round 3.
      ASSERT_TRUE(wait_for(killed / "checkpoints" / "round_000002.ckpt", 120)) << read_text_file(log(killed_name));
      cli.signal(SIGKILL);
      EXPECT_EQ(cli.wait(), 128 + SIGKILL);
    }
    EXPECT_EQ(read_json(killed / "run.json")["status"], "running"); // what kill -9 leaves
    EXPECT_EQ(read_json(killed / "run.json")["last_finished_round"], 2);
    EXPECT_FALSE(fs::exists(killed / "checkpoints" / "round_000003.ckpt"));
    EXPECT_TRUE(fs::exists(killed / "adapters" / "client_3.safetensors"));
    // The resume starts from a delta (checkpoint.full_every = 10: round 1 is full, round 2 holds
    // what changed since), so it is tested across an incremental checkpoint.
    const std::string round2 = read_text_file(killed / "checkpoints" / "round_000002.ckpt");
    EXPECT_EQ(stored_checkpoint_decode(round2, "round 2").info.base_round, 1);
    EXPECT_LT(round2.size(), read_text_file(killed / "checkpoints" / "round_000001.ckpt").size());
    // The log was flushed line by line: round 2's summary is on disk although the process
    // never got to close the file.
    EXPECT_NE(read_text_file(killed / "fedvlm.log").find("round 2/4"), std::string::npos);

    const fs::path resumed_log = log(killed_name + "_resume");
    ASSERT_EQ(run_to_end({"resume", killed.string(), "--quiet"}, resumed_log), 0) << read_text_file(resumed_log);
    EXPECT_NE(read_text_file(resumed_log).find("resuming " + killed_name + "/run after round 2 of 4"), std::string::npos)
        << read_text_file(resumed_log);
    EXPECT_EQ(read_json(killed / "run.json")["status"], "completed");
    EXPECT_EQ(read_json(killed / "run.json")["resumed_from_round"], 2);

    // Every metric of every client and round, and every adapter byte, as if never stopped
    // (the run names differ by design: compare without them).
    auto strip_run = [](std::vector<nlohmann::json> v) {
      for (auto& j : v) j.erase("run");
      return v;
    };
    const auto a = strip_run(lines_without_times(whole / "metrics.jsonl"));
    const auto b = strip_run(lines_without_times(killed / "metrics.jsonl"));
    ASSERT_EQ(a.size(), 4u * 5u);
    EXPECT_EQ(a, b) << label;
    EXPECT_EQ(strip_run(lines_without_times(whole / "rounds.jsonl")), strip_run(lines_without_times(killed / "rounds.jsonl")));
    for (int k = 0; k < 4; ++k) {
      const std::string f = "adapters/client_" + std::to_string(k) + ".safetensors";
      EXPECT_EQ(read_text_file(whole / f), read_text_file(killed / f)) << label << " " << f;
    }
    EXPECT_EQ(read_text_file(whole / "adapters/global.safetensors"), read_text_file(killed / "adapters/global.safetensors"));
    // The log goes on in the same file, and nothing was written to a RUN.2.
    EXPECT_NE(read_text_file(killed / "fedvlm.log").find("resuming after round 2"), std::string::npos);
    EXPECT_FALSE(fs::exists(killed.parent_path() / "run.2"));
  }
}

void expect_interrupted(const fs::path& run, int exit_status, int expected_status) {
  EXPECT_EQ(exit_status, expected_status);
  const auto j = read_json(run / "run.json");
  EXPECT_EQ(j["status"], "interrupted");
  ASSERT_TRUE(j["last_finished_round"].is_number());
  const int last = j["last_finished_round"].get<int>();
  EXPECT_GE(last, 1);
  EXPECT_LT(last, 4);
  EXPECT_EQ(j["resume_command"], "fedvlm-sim resume " + run.string());
  // Whole rounds only, and every file parses.
  const RunResults res = load_run(run);
  EXPECT_EQ(res.records.size(), 4u * static_cast<std::size_t>(last + 1));
  for (const auto& r : res.records) EXPECT_LE(r.round, last);
  EXPECT_EQ(res.incomplete_note(), "interrupted at round " + std::to_string(last) + " of 4");
  for (int k = 0; k < 4; ++k) EXPECT_TRUE(fs::exists(run / ("adapters/client_" + std::to_string(k) + ".safetensors")));
  // The log was flushed as it went, up to the interruption.
  EXPECT_NE(read_text_file(run / "fedvlm.log").find("interrupted"), std::string::npos);
}

TEST_F(Resume, CtrlCAndSigtermLeaveCompleteFilesAndAResumableRun) {
  for (int sig : {SIGINT, SIGTERM}) {
    const std::string name = sig == SIGINT ? "ctrl_c" : "sigterm";
    const fs::path run = dir_.path() / "out" / name / "run";
    int status = -1;
    {
      Cli cli({experiment(name, "plora").string(), "--quiet"}, log(name));
      ASSERT_TRUE(wait_for(run / "checkpoints" / "round_000001.ckpt", 120)) << read_text_file(log(name));
      cli.signal(sig);
      status = cli.wait();
    }
    expect_interrupted(run, status, 128 + sig);
    EXPECT_NE(read_text_file(log(name)).find("resume with: fedvlm-sim resume"), std::string::npos);

    // compare says the run did not complete and where it stopped.
    const fs::path cmp = log(name + "_compare");
    ASSERT_EQ(run_to_end({"compare", run.string()}, cmp), 0) << read_text_file(cmp);
    EXPECT_NE(read_text_file(cmp).find("incomplete runs"), std::string::npos) << read_text_file(cmp);
    if (sig == SIGINT && fs::exists("/usr/bin/gnuplot")) {
      // plot says it too, in the per-run titles (the .gp script is what gnuplot drew).
      ASSERT_EQ(run_to_end({"plot", run.string(), "--out", (dir_.path() / "plots").string()}, log("plot")), 0)
          << read_text_file(log("plot"));
      EXPECT_NE(read_text_file(dir_.path() / "plots" / "plots.gp").find("(interrupted at round"), std::string::npos);
    }

    ASSERT_EQ(run_to_end({"resume", run.string(), "--quiet"}, log(name + "_resume")), 0)
        << read_text_file(log(name + "_resume"));
    const RunResults done = load_run(run);
    EXPECT_EQ(done.status, "completed");
    EXPECT_EQ(done.records.size(), 4u * 5u);
    EXPECT_EQ(done.incomplete_note(), "");
  }
}

TEST_F(Resume, SecondCtrlCExitsAtOnceWithCompleteFiles) {
  const fs::path run = dir_.path() / "out" / "twice" / "run";
  // A long straggler delay: the first Ctrl-C alone would still take a moment to wind down.
  Cli cli({experiment("twice", "plora", 3.0).string(), "--quiet"}, log("twice"));
  ASSERT_TRUE(wait_for(run / "checkpoints" / "round_000001.ckpt", 120)) << read_text_file(log("twice"));
  cli.signal(SIGINT);
  cli.signal(SIGINT);
  EXPECT_EQ(cli.wait(), 128 + SIGINT);
  const RunResults res = load_run(run); // parses: every file is whole
  EXPECT_GE(res.last_round(), 1);
}

TEST_F(Resume, CtrlCDuringPretrainingStopsItPromptly) {
  // Pretraining long enough that it is surely still running when the signal comes.
  const fs::path file = experiment("pretraining", "plora", 0.0,
                                   "[pretrain]\nenabled = true\npublic_samples = 4000\nepochs = 50\ncache_dir = \"" +
                                       (dir_.path() / "cache").string() + "\"\n");
  Cli cli({file.string(), "--quiet"}, log("pretraining"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (read_text_file(log("pretraining")).find("pretraining mobilenet") == std::string::npos &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(read_text_file(log("pretraining")).find("pretraining mobilenet"), std::string::npos);
  const auto sent = std::chrono::steady_clock::now();
  cli.signal(SIGINT);
  EXPECT_EQ(cli.wait(), 130) << read_text_file(log("pretraining"));
  // It stopped at the next batch, not after 50 epochs (a generous bound for a loaded machine).
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count(), 30.0);
  const auto j = read_json(dir_.path() / "out" / "pretraining" / "run" / "run.json");
  EXPECT_EQ(j["status"], "interrupted");
  EXPECT_NE(j["message"].get<std::string>().find("before the first round"), std::string::npos);
  // No half-trained backbone was cached for the next run to pick up.
  if (fs::exists(dir_.path() / "cache"))
    for (const auto& e : fs::directory_iterator(dir_.path() / "cache"))
      EXPECT_NE(e.path().extension(), ".safetensors") << e.path();
}

TEST_F(Resume, ChangedConfigurationIsRefusedNamingTheKeysUnlessForced) {
  const fs::path run = dir_.path() / "out" / "changed" / "run";
  {
    Cli cli({experiment("changed", "plora", 0.5).string(), "--quiet"}, log("changed"));
    ASSERT_TRUE(wait_for(run / "checkpoints" / "round_000001.ckpt", 120)) << read_text_file(log("changed"));
    cli.signal(SIGINT);
    ASSERT_EQ(cli.wait(), 130);
  }
  const fs::path refused = log("refused");
  EXPECT_EQ(run_to_end({"resume", run.string(), "--set", "federation.rounds=6", "--set", "train.lr=0.1"}, refused), 1);
  const std::string msg = read_text_file(refused);
  EXPECT_NE(msg.find("federation.rounds: 4 -> 6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.lr: 0.05 -> 0.1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--force"), std::string::npos) << msg;
  EXPECT_EQ(read_json(run / "run.json")["status"], "interrupted"); // nothing was touched

  // The experiment file edited, then --resume: refused the same way.
  const fs::path edited = experiment("changed", "plora", 0.5, "[lora]\nrank = 2\n");
  EXPECT_EQ(run_to_end({edited.string(), "--resume", "--quiet"}, log("edited")), 1);
  EXPECT_NE(read_text_file(log("edited")).find("lora.rank: 4 -> 2"), std::string::npos) << read_text_file(log("edited"));

  // A run written by an older version lacks the keys added since (strict, the target keys): they
  // read as their defaults, so only the key really changed is named.
  {
    const std::string current = read_text_file(run / "config.toml");
    std::string older;
    std::istringstream lines(current);
    int dropped = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("strict = ", 0) == 0 || line.rfind("target_accuracy = ", 0) == 0 ||
          line.rfind("stop_at_target = ", 0) == 0) {
        ++dropped;
        continue;
      }
      older += line + "\n";
    }
    ASSERT_EQ(dropped, 3) << current;
    write_text_file(run / "config.toml", older);
    EXPECT_EQ(run_to_end({"resume", run.string(), "--set", "train.lr=0.1"}, log("older")), 1);
    const std::string m = read_text_file(log("older"));
    EXPECT_NE(m.find("train.lr: 0.05 -> 0.1"), std::string::npos) << m;
    EXPECT_EQ(m.find("strict"), std::string::npos) << m;
    EXPECT_EQ(m.find("target_accuracy"), std::string::npos) << m;
    write_text_file(run / "config.toml", current);
  }

  // A change of what the saved state means is refused even with --force, naming the key.
  for (const std::string set : {"strategy.name=flora", "data.max_samples=300", "partition.scheme=iid", "lora.rank=2"}) {
    const fs::path l = log("forced-" + set.substr(0, set.find('=')));
    EXPECT_EQ(run_to_end({"resume", run.string(), "--set", set, "--force", "--quiet"}, l), 1) << read_text_file(l);
    const std::string m = read_text_file(l);
    EXPECT_NE(m.find("even with --force"), std::string::npos) << m;
    EXPECT_NE(m.find(set.substr(0, set.find('=')) + ": "), std::string::npos) << m;
  }
  EXPECT_EQ(read_json(run / "run.json")["status"], "interrupted"); // still untouched

  // More rounds, accepted with --force: the run goes on to round 6.
  ASSERT_EQ(run_to_end({"resume", run.string(), "--set", "federation.rounds=6", "--force", "--quiet"}, log("forced")), 0)
      << read_text_file(log("forced"));
  const RunResults res = load_run(run);
  EXPECT_EQ(res.status, "completed");
  EXPECT_EQ(res.last_round(), 6);
  EXPECT_NE(read_text_file(run / "config.toml").find("rounds = 6"), std::string::npos);
}

TEST_F(Resume, SweepResumeSkipsCompletedRunsAndWritesNoCopies) {
  const fs::path file = experiment("sweep", "plora", 0.0, "");
  std::string text = read_text_file(file);
  text.replace(text.find("rounds = 4"), 10, "rounds = 2");
  text.replace(text.find("name = \"plora\""), 14, "name = [\"plora\", \"local\"]");
  write_text_file(file, text);
  ASSERT_EQ(run_to_end({file.string(), "--quiet"}, log("sweep1")), 0) << read_text_file(log("sweep1"));
  ASSERT_EQ(run_to_end({file.string(), "--resume", "--quiet"}, log("sweep2")), 0) << read_text_file(log("sweep2"));
  const std::string out = read_text_file(log("sweep2"));
  EXPECT_NE(out.find("sweep/strategy=plora: completed already, skipped"), std::string::npos) << out;
  EXPECT_NE(out.find("sweep/strategy=local: completed already, skipped"), std::string::npos) << out;
  for (const auto& e : fs::directory_iterator(dir_.path() / "out" / "sweep"))
    EXPECT_EQ(e.path().filename().string().find(".2"), std::string::npos) << e.path();
}

TEST_F(Resume, ResumingSomethingElseSaysWhat) {
  EXPECT_EQ(run_to_end({"resume", (dir_.path() / "nowhere").string()}, log("nowhere")), 2);
  EXPECT_NE(read_text_file(log("nowhere")).find("nowhere"), std::string::npos);
  EXPECT_EQ(run_to_end({"resume"}, log("noarg")), 2);
}

} // namespace
