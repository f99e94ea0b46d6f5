// bench/scaling_bench.cpp — prints round time and memory as the client count grows (1 → 40).
//
// One frozen MobileNetV3-Small shared by every client, pLoRA on the classifier, Fashion-MNIST
// shards. For each client count, one-by-one and with scheduler.batch_clients = GROUP: seconds
// per round (evaluation of every client included) and of its training phase, training
// samples/s, the limit (one plain loop over the same samples with the batches of the clients
// that run together stacked into one batch and one adapter), training / limit, the peak
// resident memory (each configuration runs in a process of its own) and all the adapters.
// Last, one client holding all the samples of the largest client count ("1, all data"): the
// memory of the same data without the clients, to tell what the clients themselves cost.
// Every row runs twice: with the allocator fedvlm-sim picks (jemalloc where Debian's libjemalloc2
// is installed: support/allocator.hpp) and with glibc's malloc (FEDVLM_ALLOCATOR=system).
// Usage: scaling_bench [CLIENTS,...] [SAMPLES_PER_CLIENT] [ROUNDS] [GROUP]
//
// The population axis: scaling_bench --population [CLIENTS,...] [ROUNDS] [--set KEY=VALUE ...]
// (default 100,1000,10000,100000 and 3; each --set goes to fedvlm-sim as is, e.g.
// evaluation.clients_sample=10) runs the `fedvlm-sim` beside this binary on a tiny experiment (mlp_2nn
// with rank-4 pLoRA on a pool of 10,000 Fashion-MNIST images, each client drawing 5 of them
// (partition.scheme = "sampled": the pool is the same at every population, up to 100,000
// clients and beyond), 10 clients a round, results and
// checkpoints written as a user's run writes them) once with 2 rounds and once with 2 + ROUNDS,
// each in a process of its own, and prints seconds per round (the median time from one round's
// log line to the next from round 3 on: the round and the writing after it), the same from the
// difference of the two runs' wall times ("diff": noisy where a run creates many files, whose
// cost varies from run to run), bytes written per round from the difference (what is written
// once a run — setup, the first files, bringing adapters/ up to date at the end — cancels out;
// the write() bytes of the process, /proc/PID/io wchar: results, adapters/, checkpoints), then
// the setup phase (run.json), the peak resident memory and that memory per client above the
// first population's.
#include "actors/run_driver.hpp"
#include "support/allocator.hpp"
#include "support/usable_cores.hpp"
#include "fl/runtime/thread_plan.hpp"

#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace fedvlm;

/// Per round: the whole round's wall time, and its training phase alone (from the round's
/// start to the last client's finished training: what the limit loop does).
class RoundTimes : public RunObserverBase {
public:
  void round_started(const std::string&, int, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    started_ = std::chrono::steady_clock::now();
  }
  void client_finished_training(const std::string&, int, int) override {
    std::lock_guard<std::mutex> lock(mutex_);
    last_trained_ = std::chrono::steady_clock::now();
  }
  void round_finished(const RoundSummary& s) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (s.round == 0) return;
    seconds.push_back(s.seconds);
    training_seconds.push_back(std::chrono::duration<double>(last_trained_ - started_).count());
  }
  std::vector<double> seconds, training_seconds;

private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point started_, last_trained_;
};

double mean_of(const std::vector<double>& xs) {
  double sum = 0;
  for (double x : xs) sum += x;
  return xs.empty() ? 0 : sum / static_cast<double>(xs.size());
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

} // namespace

/// The limit: one plain training loop over the same samples, the batches of the clients that
/// run together stacked into one batch with one adapter (the same arithmetic, least overhead).
double limit_seconds_per_round(const RunSetup& setup, const ExperimentConfig& c, int together) {
  LocalTrainJob job;
  job.adapters = lora_init(setup.task->targets(), c.lora, 1);
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  for (const auto& split : setup.splits) job.indices.insert(job.indices.end(), split.train.begin(), split.train.end());
  job.seed = 1;
  TrainSettings ts = c.train;
  ts.batch_size = c.train.batch_size * together;
  const auto start = std::chrono::steady_clock::now();
  (void)setup.task->train(std::move(job), ts, c.lora);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// One configuration, in this process: prints its table row (peak RSS: this process's).
int run_one(int n, int batch, int per_client, int rounds, bool all_data = false) {
  DatasetCache datasets;
  ExperimentConfig c;
  c.name = "scaling_bench";
  c.data.max_samples = static_cast<int64_t>(n) * per_client;
  c.partition.scheme = PartitionScheme::shards;
  c.partition.shards_per_client = 2;
  c.partition.shards = 2 * n;
  c.federation.clients = n;
  c.federation.rounds = rounds;
  c.partition.clients = n;
  c.strategy = StrategyKind::plora;
  c.train.local_epochs = 1;
  c.scheduler.concurrency = 2;
  c.scheduler.batch_clients = batch;
  try {
    apply_thread_plan(thread_plan_for(c)); // as fedvlm-sim runs it: threads = "auto"
    const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
    RoundTimes times;
    const RunDone done = run_federation(c, "bench", setup, times);
    const double round_s = mean_of(times.seconds), train_s = mean_of(times.training_seconds);
    int64_t adapters = 0;
    for (const auto& a : done.adapters) adapters += static_cast<int64_t>(tensor_map_bytes(a));
    int64_t train_samples = 0;
    for (const auto& s : setup.splits) train_samples += static_cast<int64_t>(s.train.size());
    // One-by-one runs c.scheduler.concurrency clients at a time; batched, groups of `batch`.
    const int together = batch > 1 ? batch : c.scheduler.concurrency;
    at::set_num_threads(usable_cores()); // the limit: one loop alone, every core
    const double limit = limit_seconds_per_round(setup, c, together);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const std::string malloc_name = allocator_description().rfind("jemalloc", 0) == 0 ? "jemalloc" : "glibc";
    std::printf("%8d %8s %11s %9.3f %9.3f %11.0f %9.3f %11.2f %13.1f %12.2f\n", n, malloc_name.c_str(),
                all_data ? "all data" : batch > 1 ? ("batch " + std::to_string(batch)).c_str() : "one-by-one", round_s, train_s,
                static_cast<double>(train_samples) / train_s, limit, train_s / limit,
                static_cast<double>(usage.ru_maxrss) / 1024.0, static_cast<double>(adapters) / (1 << 20));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clients=%d: %s\n", n, e.what());
    return 1;
  }
}

/// One run of the CLI on the population experiment: wall seconds, write() bytes, peak RSS, setup,
/// and the median time from one round's log line to the next after round 2 (a round with the
/// writing after it; round 1 writes every client's first files and the first full checkpoint).
struct PopulationRun {
  double seconds = 0, setup_seconds = 0, round_seconds = 0;
  double bytes_written = 0;
  double peak_rss_mib = 0;
};

/// The median of the times between consecutive "round K/N" lines of a run's log, K >= 3
/// (timestamps "[YYYY-MM-DD HH:MM:SS.mmm]"); 0 without two such lines.
double median_round_interval(const std::filesystem::path& log) {
  std::ifstream in(log);
  std::vector<std::pair<int, double>> stamps;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("] round ");
    int hh = 0, mm = 0, round = 0, total = 0;
    double ss = 0;
    if (at == std::string::npos || line.size() < 25 ||
        std::sscanf(line.c_str() + 12, "%d:%d:%lf", &hh, &mm, &ss) != 3 ||
        std::sscanf(line.c_str() + at + 8, "%d/%d", &round, &total) != 2)
      continue;
    stamps.emplace_back(round, hh * 3600.0 + mm * 60.0 + ss);
  }
  std::vector<double> gaps;
  for (std::size_t i = 1; i < stamps.size(); ++i)
    if (stamps[i].first >= 3 && stamps[i].first == stamps[i - 1].first + 1)
      gaps.push_back(stamps[i].second - stamps[i - 1].second);
  if (gaps.empty()) return 0;
  std::sort(gaps.begin(), gaps.end());
  return gaps[gaps.size() / 2];
}

PopulationRun run_population(const std::filesystem::path& cli, const std::filesystem::path& dir, int clients, int rounds,
                             const std::vector<std::string>& sets) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path toml = dir / "population.toml";
  std::ofstream(toml) << "name = \"population\"\nseed = 0\n"
                      << "[model]\narch = \"mlp_2nn\"\n[pretrain]\nenabled = false\n"
                      << "[data]\ndataset = \"fashion_mnist\"\npath = \"/usr/share/datasets/fashion-mnist\"\n"
                      << "max_samples = 10000\ntest_fraction = 0.4\n"
                      << "[partition]\nscheme = \"sampled\"\nsamples_per_client = 5\n"
                      << "[federation]\nclients = " << clients << "\nrounds = " << rounds
                      << "\nclients_per_round = " << std::min(10, clients) << "\n"
                      << "[strategy]\nname = \"plora\"\n[lora]\nrank = 4\ntargets = [\"fc1\", \"fc2\", \"fc3\"]\n"
                      << "[train]\nlr = 0.01\nlocal_epochs = 1\nbatch_size = 10\n[scheduler]\nconcurrency = 2\n";
  const std::string out_dir = (dir / "out").string(), toml_s = toml.string(), cli_s = cli.string();
  const std::string log = (dir / "cli.log").string();
  std::vector<char*> argv = {const_cast<char*>(cli_s.c_str()), const_cast<char*>(toml_s.c_str()),
                             const_cast<char*>("--quiet"), const_cast<char*>("--output-dir"),
                             const_cast<char*>(out_dir.c_str())};
  for (const std::string& s : sets) argv.insert(argv.end(), {const_cast<char*>("--set"), const_cast<char*>(s.c_str())});
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const auto start = std::chrono::steady_clock::now();
  if (posix_spawn(&pid, cli_s.c_str(), &actions, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot start " + cli_s);
  posix_spawn_file_actions_destroy(&actions);
  // Wait without reaping, so that /proc/PID/io still holds the process's counters.
  siginfo_t info{};
  waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
  PopulationRun r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  for (std::string key; io >> key;) {
    double value = 0;
    io >> value;
    if (key == "wchar:") r.bytes_written = value;
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("clients=" + std::to_string(clients) + ": fedvlm-sim failed, see " + log);
  r.peak_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  const nlohmann::json run = nlohmann::json::parse(std::ifstream(dir / "out" / "population" / "run" / "run.json"));
  r.setup_seconds = run.at("phase_seconds").at("setup").get<double>();
  r.round_seconds = median_round_interval(dir / "out" / "population" / "run" / "fedvlm.log");
  return r;
}

int population_main(const std::vector<int>& counts, int rounds, const std::vector<std::string>& sets) {
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  const std::filesystem::path cli = self.parent_path() / "fedvlm-sim";
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("population_bench." + std::to_string(getpid()));
  std::printf("%8s %9s %9s %11s %9s %13s %14s\n", "clients", "s/round", "(diff)", "MB/round", "setup s",
              "peak RSS MiB", "KiB per client");
  std::fflush(stdout);
  double base_rss = 0;
  int base_clients = 0;
  for (const int n : counts) {
    const PopulationRun one = run_population(cli, dir, n, 2, sets);
    const PopulationRun more = run_population(cli, dir, n, 2 + rounds, sets);
    if (base_clients == 0) base_rss = more.peak_rss_mib, base_clients = n;
    const double per_client = n > base_clients ? (more.peak_rss_mib - base_rss) * 1024.0 / (n - base_clients) : 0.0;
    std::printf("%8d %9.3f %9.3f %11.3f %9.2f %13.1f %14.1f\n", n, more.round_seconds, (more.seconds - one.seconds) / rounds,
                (more.bytes_written - one.bytes_written) / rounds / 1e6, more.setup_seconds, more.peak_rss_mib, per_client);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(dir);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--population") {
    std::vector<std::string> positional, sets;
    for (int i = 2; i < argc; ++i) {
      if (std::string(argv[i]) != "--set") positional.emplace_back(argv[i]);
      else if (i + 1 < argc) sets.emplace_back(argv[++i]);
      else throw std::runtime_error("--set needs KEY=VALUE");
    }
    return population_main(parse_list(positional.size() > 0 ? positional[0] : "100,1000,10000,100000"),
                           positional.size() > 1 ? std::stoi(positional[1]) : 3, sets);
  }
  if ((argc == 6 || argc == 7) && std::string(argv[1]) == "--one") {
    allocator_reexec(argv); // as fedvlm-sim runs: jemalloc where installed, unless FEDVLM_ALLOCATOR=system
    return run_one(std::stoi(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]), std::stoi(argv[5]), argc == 7);
  }
  const std::vector<int> counts = parse_list(argc > 1 ? argv[1] : "1,2,4,8,16,40");
  const int per_client = argc > 2 ? std::stoi(argv[2]) : 200;
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 2;
  const int group = argc > 4 ? std::stoi(argv[4]) : 8;
  std::printf("%8s %8s %11s %9s %9s %11s %9s %11s %13s %12s\n", "clients", "malloc", "mode", "s/round", "train s", "samples/s",
              "limit s", "train/limit", "peak RSS MiB", "adapters MiB");
  std::fflush(stdout);
  // Each configuration in a fresh process, so its peak resident memory is its own.
  // Both allocators: the default (jemalloc where installed) and glibc's malloc.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (const std::string env : {"env -u FEDVLM_ALLOCATOR ",
                                "env -u LD_PRELOAD -u FEDVLM_ALLOCATOR_PRELOADED FEDVLM_ALLOCATOR=system "}) {
    for (int n : counts)
      for (const int batch : {1, std::min(n, group)}) {
        const std::string cmd = env + "'" + self + "' --one " + std::to_string(n) + " " + std::to_string(batch) + " " +
                                std::to_string(per_client) + " " + std::to_string(rounds);
        if (std::system(cmd.c_str()) != 0) return 1;
        if (std::min(n, group) == 1) break; // batches of one client: the same run again
      }
    const int most = *std::max_element(counts.begin(), counts.end());
    if (most > 1) {
      const std::string cmd = env + "'" + self + "' --one 1 1 " + std::to_string(most * per_client) + " " +
                              std::to_string(rounds) + " all-data";
      if (std::system(cmd.c_str()) != 0) return 1;
    }
  }
  return 0;
}
