// bench/scaling_bench.cpp — prints round time and memory as the client count grows (2 → 40).
//
// One frozen MobileNetV3-Small shared by every client, pLoRA on the classifier, Fashion-MNIST
// shards. For each client count: seconds per round, resident memory, the base model's bytes
// and what all the adapters add. Usage: scaling_bench [CLIENTS,...] [SAMPLES_PER_CLIENT] [ROUNDS]
#include "actors/run_driver.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace fedvlm;

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t total = 0, resident = 0;
  statm >> total >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

class RoundTimes : public RunObserver {
public:
  void round_finished(const RoundSummary& s) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (s.round > 0) seconds.push_back(s.seconds);
  }
  std::vector<double> seconds;

private:
  std::mutex mutex_;
};

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

} // namespace

int main(int argc, char** argv) {
  const std::vector<int> counts = parse_list(argc > 1 ? argv[1] : "2,4,8,16,40");
  const int per_client = argc > 2 ? std::stoi(argv[2]) : 200;
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 2;
  DatasetCache datasets;
  std::printf("%8s %10s %12s %14s %14s %14s\n", "clients", "s/round", "samples/s", "RSS MiB", "base MiB",
              "adapters MiB");
  for (int n : counts) {
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
    try {
      const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
      RoundTimes times;
      const RunDone done = run_federation(c, "bench", setup, times);
      double mean = 0;
      for (double s : times.seconds) mean += s / static_cast<double>(times.seconds.size());
      int64_t adapters = 0;
      for (const auto& a : done.adapters) adapters += static_cast<int64_t>(tensor_map_bytes(a));
      int64_t train_samples = 0;
      for (const auto& s : setup.splits) train_samples += static_cast<int64_t>(s.train.size());
      // "base": the one frozen model and pool, whatever the client count; "adapters": all clients'.
      std::printf("%8d %10.3f %12.0f %14.1f %14.1f %14.2f\n", n, mean, static_cast<double>(train_samples) / mean,
                  static_cast<double>(resident_bytes()) / (1 << 20),
                  static_cast<double>(setup.task->shared_bytes()) / (1 << 20), static_cast<double>(adapters) / (1 << 20));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "clients=%d: %s\n", n, e.what());
      return 1;
    }
  }
  return 0;
}
