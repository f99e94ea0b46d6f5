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
// Usage: scaling_bench [CLIENTS,...] [SAMPLES_PER_CLIENT] [ROUNDS] [GROUP]
#include "actors/run_driver.hpp"
#include "support/usable_cores.hpp"
#include "fl/runtime/thread_plan.hpp"

#include <ATen/Parallel.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>
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
    std::printf("%8d %11s %9.3f %9.3f %11.0f %9.3f %11.2f %13.1f %12.2f\n", n,
                all_data ? "all data" : batch > 1 ? ("batch " + std::to_string(batch)).c_str() : "one-by-one", round_s, train_s,
                static_cast<double>(train_samples) / train_s, limit, train_s / limit,
                static_cast<double>(usage.ru_maxrss) / 1024.0, static_cast<double>(adapters) / (1 << 20));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clients=%d: %s\n", n, e.what());
    return 1;
  }
}

int main(int argc, char** argv) {
  if ((argc == 6 || argc == 7) && std::string(argv[1]) == "--one")
    return run_one(std::stoi(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]), std::stoi(argv[5]), argc == 7);
  const std::vector<int> counts = parse_list(argc > 1 ? argv[1] : "1,2,4,8,16,40");
  const int per_client = argc > 2 ? std::stoi(argv[2]) : 200;
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 2;
  const int group = argc > 4 ? std::stoi(argv[4]) : 8;
  std::printf("%8s %11s %9s %9s %11s %9s %11s %13s %12s\n", "clients", "mode", "s/round", "train s", "samples/s",
              "limit s", "train/limit", "peak RSS MiB", "adapters MiB");
  std::fflush(stdout);
  // Each configuration in a fresh process, so its peak resident memory is its own.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (int n : counts)
    for (const int batch : {1, std::min(n, group)}) {
      const std::string cmd = "'" + self + "' --one " + std::to_string(n) + " " + std::to_string(batch) + " " +
                              std::to_string(per_client) + " " + std::to_string(rounds);
      if (std::system(cmd.c_str()) != 0) return 1;
      if (std::min(n, group) == 1) break; // batches of one client: the same run again
    }
  const int most = *std::max_element(counts.begin(), counts.end());
  if (most > 1) {
    const std::string cmd = "'" + self + "' --one 1 1 " + std::to_string(most * per_client) + " " +
                            std::to_string(rounds) + " all-data";
    if (std::system(cmd.c_str()) != 0) return 1;
  }
  return 0;
}
