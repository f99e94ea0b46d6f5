// tests/cli/end_to_end_test.cpp — the fedvlm-sim binary as a user runs it: quickstart learning, live Prometheus, an evaluation sample.
#include "fl/results/results_reader.hpp"
#include "tests/prometheus_harness.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

namespace {

using namespace fedvlm;
using namespace fedvlm::testing;

const std::filesystem::path kFashion = "/usr/share/datasets/fashion-mnist";

struct CommandResult {
  int status = -1;
  std::string output;
};

CommandResult run_cli(const std::string& args) {
  CommandResult r;
  const std::string cmd = std::string(FEDVLM_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(EndToEnd, QuickstartShowsLearningAndNeverOverwritesResults) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TempDir dir("fedvlm-quickstart");
  // The user's file, with results redirected; the pretrained backbone is shared with ./run.sh's
  // cache so CI pretrains once.
  std::string toml = read_file(std::filesystem::path(FEDVLM_SOURCE_DIR) / "experiments/quickstart.toml");
  toml = std::regex_replace(toml, std::regex("output_dir = \"results\""),
                            "output_dir = \"" + dir.path().string() + "\"");
  toml = std::regex_replace(toml, std::regex("\\[pretrain\\]"),
                            "[pretrain]\ncache_dir = \"" +
                                (std::filesystem::path(FEDVLM_SOURCE_DIR) / "results/.cache").string() + "\"");
  write_text_file(dir.path() / "quickstart.toml", toml);

  const auto first = run_cli((dir.path() / "quickstart.toml").string() + " --quiet");
  ASSERT_EQ(first.status, 0) << first.output;
  const auto run_dir = dir.path() / "quickstart" / "run";
  for (const char* f : {"config.toml", "run.json", "metrics.jsonl", "metrics.csv", "rounds.jsonl", "fedvlm.log",
                        "adapters/client_0.safetensors", "adapters/global.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(run_dir / f)) << f;

  const RunResults res = load_run(run_dir);
  EXPECT_EQ(res.status, "completed");
  std::map<int, double> before, after;
  int last_round = 0;
  for (const auto& r : res.records) last_round = std::max(last_round, r.round);
  for (const auto& r : res.records) {
    if (r.round == 0) before[r.client] = r.accuracy;
    if (r.round == last_round) after[r.client] = r.accuracy;
  }
  ASSERT_EQ(before.size(), 6u);
  ASSERT_EQ(after.size(), 6u);
  double mean_before = 0, mean_after = 0;
  int improved = 0;
  for (const auto& [k, a] : before) {
    mean_before += a / 6.0;
    mean_after += after[k] / 6.0;
    improved += after[k] > a;
  }
  EXPECT_GT(mean_after, mean_before + 0.08) << "before " << mean_before << ", after " << mean_after;
  EXPECT_GE(improved, 5);
  EXPECT_NE(first.output.find("accuracy before"), std::string::npos) << first.output;

  // A rerun starts from the cached backbone and writes a new directory beside the first.
  const std::string metrics_before = read_file(run_dir / "metrics.csv");
  const auto second = run_cli((dir.path() / "quickstart.toml").string() + " --quiet");
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "quickstart" / "run.2" / "metrics.csv"));
  EXPECT_EQ(read_file(run_dir / "metrics.csv"), metrics_before);
  EXPECT_EQ(second.output.find("pretrain epoch"), std::string::npos) << "the cached backbone was not reused";
  // Same seed, same data: the rerun's metrics equal the first run's except for timings.
  const RunResults again = load_run(dir.path() / "quickstart" / "run.2");
  ASSERT_EQ(again.records.size(), res.records.size());
  for (std::size_t i = 0; i < res.records.size(); ++i) {
    EXPECT_EQ(again.records[i].accuracy, res.records[i].accuracy);
    EXPECT_EQ(again.records[i].loss, res.records[i].loss);
  }
}

TEST(EndToEnd, HoldoutClientsAreScoredAsNewClientsInTheRoundFilesAndCompare) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TempDir dir("fedvlm-holdout");
  // Three clients, the last held out: clients 0 and 1 train; client 2 is scored after rounds
  // 0, 2 and 3 (holdout_every = 2 and the last), before and after 4 local steps.
  write_text_file(dir.path() / "holdout.toml",
                  "name = \"holdout\"\noutput_dir = \"" + dir.path().string() + "\"\nseed = 2\n"
                  "[model]\narch = \"mlp_2nn\"\n[data]\npath = \"" + kFashion.string() + "\"\nmax_samples = 450\n"
                  "[partition]\nscheme = \"shards\"\nshards_per_client = 2\n"
                  "[federation]\nclients = 3\nrounds = 3\n[strategy]\nname = \"plora\"\n"
                  "[lora]\ntargets = [\"fc2\", \"fc3\"]\n[train]\nbatch_size = 20\nlr = 0.05\n"
                  "[evaluation]\nholdout_clients = 1\nholdout_every = 2\nadapt_steps = 4\n");
  const auto plan = run_cli((dir.path() / "holdout.toml").string() + " --dry-run");
  ASSERT_EQ(plan.status, 0) << plan.output;
  EXPECT_NE(plan.output.find(" (holdout: never trains; scored as a new client, holdout_every = 2, adapt_steps = 4)"),
            std::string::npos) << plan.output;
  const auto ran = run_cli((dir.path() / "holdout.toml").string() + " --quiet");
  ASSERT_EQ(ran.status, 0) << ran.output;
  const auto run_dir = dir.path() / "holdout" / "run";
  const RunResults res = load_run(run_dir);
  for (const auto& r : res.records) EXPECT_LT(r.client, 2) << "the holdout client was evaluated as a training client";
  EXPECT_EQ(res.records.size(), 2u * 4u);
  ASSERT_EQ(res.rounds.size(), 4u);
  for (const auto& s : res.rounds) {
    const bool due = s.round != 1;
    EXPECT_EQ(std::isfinite(s.holdout_accuracy), due) << "round " << s.round;
    EXPECT_EQ(std::isfinite(s.holdout_adapted_accuracy), due) << "round " << s.round;
    if (!due) continue;
    EXPECT_GE(s.holdout_accuracy, 0.0);
    EXPECT_LE(s.holdout_adapted_accuracy, 1.0);
    EXPECT_LE(s.clients_selected, 2);
  }
  // One line per round in rounds.jsonl, one column in rounds.csv.
  std::istringstream lines(read_file(run_dir / "rounds.jsonl"));
  std::string line;
  int with_fields = 0;
  while (std::getline(lines, line))
    with_fields += line.find("\"holdout_accuracy\":") != std::string::npos &&
                   line.find("\"holdout_adapted_accuracy\":") != std::string::npos;
  EXPECT_EQ(with_fields, 4);
  const std::string csv = read_file(run_dir / "rounds.csv");
  EXPECT_NE(csv.substr(0, csv.find('\n')).find("holdout_accuracy,holdout_adapted_accuracy"), std::string::npos) << csv;
  const auto cmp = run_cli("compare " + run_dir.string());
  ASSERT_EQ(cmp.status, 0) << cmp.output;
  EXPECT_NE(cmp.output.find("new client acc"), std::string::npos) << cmp.output;
  EXPECT_NE(cmp.output.find("new client adapted"), std::string::npos) << cmp.output;
}

TEST(EndToEnd, RealPrometheusScrapesOneAccuracySeriesPerClient) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  if (!PrometheusServer::available()) GTEST_SKIP() << "prometheus is not installed";
  TempDir dir("fedvlm-prom-e2e");
  const int port = free_port();
  const std::string target = "127.0.0.1:" + std::to_string(port);
  write_text_file(dir.path() / "exp.toml",
                  "name = \"prom\"\noutput_dir = \"" + dir.path().string() +
                      "\"\n[data]\nmax_samples = 600\n[partition]\nscheme = \"iid\"\n"
                      "[federation]\nclients = 3\nrounds = 2\n[monitoring]\nprometheus = \"" +
                      target + "\"\nlinger_seconds = 20\n");
  PrometheusServer prometheus({target}, 1);
  ChildProcess sim({FEDVLM_CLI, (dir.path() / "exp.toml").string(), "--quiet"}, dir.path() / "sim.log");

  nlohmann::json series;
  const bool seen = wait_until(
      [&] {
        series = prometheus.query_vector("fedvlm_client_accuracy{phase=\"round\",run=\"prom/run\"}");
        return series.size() == 3;
      },
      std::chrono::seconds(90), std::chrono::milliseconds(500));
  ASSERT_TRUE(seen) << "series: " << series.dump() << "\nsimulator log:\n" << sim.log_tail();
  std::set<std::string> clients;
  for (const auto& s : series) clients.insert(s["metric"]["client"].get<std::string>());
  EXPECT_EQ(clients, (std::set<std::string>{"0", "1", "2"}));

  // While it lingers, its exposition passes promtool.
  const auto scrape = http_get("http://" + target + "/metrics", 5);
  ASSERT_TRUE(scrape.ok());
  write_text_file(dir.path() / "metrics.txt", scrape.body);
  if (executable_exists(kPromtoolBinary)) {
    const std::string cmd = std::string(kPromtoolBinary) + " check metrics < " + (dir.path() / "metrics.txt").string() +
                            " > " + (dir.path() / "promtool.txt").string() + " 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << read_file(dir.path() / "promtool.txt");
  }
  sim.stop();
}

// evaluation.clients_sample: the same run evaluating 2 of the clients that did not train each
// round. Every client still merges each download, so every row it writes is the row the run
// that evaluates everyone wrote for that client and round, and the adapters are the same.
TEST(EndToEnd, AnEvaluationSampleWritesASubsetOfTheSameRows) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TempDir dir("fedvlm-eval-sample");
  const auto run = [&](const std::string& name, int sample) {
    write_text_file(dir.path() / (name + ".toml"),
                    "name = \"" + name + "\"\noutput_dir = \"" + dir.path().string() + "\"\nseed = 3\n[model]\narch = \"mlp_2nn\"\n"
                    "[pretrain]\nenabled = false\n[data]\npath = \"" + kFashion.string() + "\"\nmax_samples = 240\n"
                    "[partition]\nscheme = \"iid\"\n[federation]\nclients = 8\nrounds = 3\nclients_per_round = 2\n"
                    "[strategy]\nname = \"plora\"\n[lora]\nrank = 4\ntargets = [\"fc1\", \"fc2\", \"fc3\"]\n"
                    "[evaluation]\nclients_sample = " + std::to_string(sample) + "\n");
    const auto r = run_cli((dir.path() / (name + ".toml")).string() + " --quiet");
    EXPECT_EQ(r.status, 0) << r.output;
    return dir.path() / name / "run";
  };
  const RunResults all = load_run(run("all", 0));
  const std::filesystem::path sampled_dir = run("sampled", 2);
  const RunResults sampled = load_run(sampled_dir);
  ASSERT_EQ(all.records.size(), 8u * 4u);
  // Round 0: 2 clients; rounds 1-3: the 2 that trained and 2 others.
  ASSERT_EQ(sampled.records.size(), 2u + 3u * 4u);
  std::map<std::pair<int, int>, const ClientRoundRecord*> full;
  for (const auto& r : all.records) full[{r.client, r.round}] = &r;
  std::map<int, int> per_round, trained;
  for (const auto& r : sampled.records) {
    ++per_round[r.round];
    trained[r.round] += r.participated;
    const ClientRoundRecord& f = *full.at({r.client, r.round});
    EXPECT_EQ(r.accuracy, f.accuracy) << r.client << "@" << r.round;
    EXPECT_EQ(r.loss, f.loss) << r.client << "@" << r.round;
    EXPECT_EQ(r.participated, f.participated) << r.client << "@" << r.round;
    EXPECT_EQ(r.bytes_down, f.bytes_down) << r.client << "@" << r.round;
  }
  for (int round = 1; round <= 3; ++round) {
    EXPECT_EQ(per_round[round], 4) << round;
    EXPECT_EQ(trained[round], 2) << round; // every client that trained has its row
  }
  ASSERT_EQ(sampled.rounds.size(), all.rounds.size());
  for (std::size_t i = 0; i < all.rounds.size(); ++i) {
    const RoundSummary &a = all.rounds[i], &b = sampled.rounds[i];
    EXPECT_EQ(a.clients_answered, b.clients_answered);
    EXPECT_EQ(a.cumulative_bytes, b.cumulative_bytes) << "every download counts, evaluated or not";
    double sum = 0;
    int n = 0;
    for (const auto& r : sampled.records)
      if (r.round == b.round) sum += r.accuracy, ++n;
    EXPECT_DOUBLE_EQ(b.mean_accuracy, sum / n) << "round " << b.round << ": the mean is over the evaluated clients";
  }
  for (const std::string f : {"client_0", "client_5", "global"})
    EXPECT_EQ(read_file(dir.path() / "all" / "run" / "adapters" / (f + ".safetensors")),
              read_file(sampled_dir / "adapters" / (f + ".safetensors"))) << f;
}

} // namespace
