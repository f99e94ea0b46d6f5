// bench/fedavg_fmnist_bench.cpp — experiments/fedavg_fmnist.toml end to end against a plain LibTorch loop over the same sample-steps.
//
// The limit a simulator can approach: one cnn_mnist trained with torch::optim::SGD over exactly
// the sample-steps the run's clients train (10 rounds × 10 sampled clients × 5 epochs × 600
// images, batch 10), with nothing else — no actors, no per-client copies, no aggregation, no
// evaluation — in two forms: one batch of 10 at a time (intra-op threads = the cores of the
// affinity mask), and the K sampled clients' batches stacked into one batch of K·10 (the fewest,
// widest kernel calls for the same sample-steps), timed with all the cores and with one thread:
// the faster is the limit. Beside it, the one-by-one floor: one plain batch-10 loop per worker of
// the simulation, at once, each on its own model with the worker's threads — the least a run can
// take that trains every client on its own batches (so its results stay those of one-by-one
// training, bit for bit). The simulation runs the file
// as given, with its default threads ("auto" unless the file sets them). Usage:
//   fedavg_fmnist_bench [EXPERIMENT.toml] [ROUNDS] [BATCH_CLIENTS]
// (default experiments/fedavg_fmnist.toml, its rounds, and a second simulation with
// scheduler.batch_clients = the clients per round: their models stacked; 0 skips it).
// Everything runs under glibc's malloc, as a plain LibTorch program does: the stacked loop with 2
// threads took 12.7 s under it and 18.2 s under jemalloc (what fedvlm-sim preloads; the simulation
// itself took 20.6 and 20.0 s), and the limit is the fastest loop there is.
// The figures are only as quiet as the machine: run it alone.
#include "actors/run_driver.hpp"
#include "support/usable_cores.hpp"
#include "fl/config/experiment_toml.hpp"
#include "fl/runtime/thread_plan.hpp"
#include "model/classic_nets.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace fedvlm;
using clock_type = std::chrono::steady_clock;

class Rounds : public RunObserverBase {
public:
  void round_finished(const RoundSummary& s) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (s.round > 0) last_global = s.global_accuracy;
  }
  double last_global = 0;

private:
  std::mutex mutex_;
};

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

/// One model, SGD over `steps` batches of `batch` images drawn from `images`: the same arithmetic
/// as the run's local training, with the least overhead. With `batch` = K clients' batch size and
/// steps / K steps, it is the K clients' batches stacked into one.
double plain_loop(const ImageDataset& data, int64_t steps, int64_t batch, double lr, double momentum) {
  auto model = make_classic_net("cnn_mnist", data.num_classes(), 0);
  std::vector<at::Tensor> params;
  for (auto& [name, t] : model->mutable_state()) {
    t.requires_grad_(true);
    params.push_back(t);
  }
  torch::optim::SGD opt(params, torch::optim::SGDOptions(lr).momentum(momentum));
  ForwardContext ctx;
  ctx.dropout_active = true;
  const auto start = clock_type::now();
  const int64_t n = data.size();
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t begin = (s * batch) % (n - batch);
    const at::Tensor x = data.images.slice(0, begin, begin + batch);
    const at::Tensor y = data.labels.slice(0, begin, begin + batch);
    opt.zero_grad();
    at::cross_entropy_loss(model->forward(x, ctx), y).backward();
    opt.step();
  }
  return seconds_since(start);
}

/// The floor for training each client on its own batches (what keeps results those of one-by-one
/// training): `loops` plain loops at once, as many as the simulation has workers, each its own
/// model with `threads` intra-op threads, sharing `steps` batch steps.
double one_by_one_floor(const ImageDataset& data, int64_t steps, int loops, int threads, const TrainSettings& t) {
  std::vector<std::thread> pool;
  const auto start = clock_type::now();
  for (int i = 0; i < loops; ++i)
    pool.emplace_back([&, i] {
      at::set_num_threads(threads);
      (void)plain_loop(data, steps / loops + (i < steps % loops ? 1 : 0), t.batch_size, t.lr, t.momentum);
    });
  for (auto& th : pool) th.join();
  return seconds_since(start);
}

} // namespace

int main(int argc, char** argv) {
  const std::string file = argc > 1 ? argv[1] : std::string(FEDVLM_BENCH_SOURCE_DIR) + "/experiments/fedavg_fmnist.toml";
  ExperimentConfig c = load_experiment(file).runs.at(0);
  if (argc > 2) c.federation.rounds = std::stoi(argv[2]);
  c.output_dir = "/tmp/fedavg_fmnist_bench";
  c.monitoring.prometheus.clear();

  // As a user runs it: the engine's thread plan for this file (fedvlm-sim applies the same).
  const ThreadPlan threads = thread_plan_for(c);
  apply_thread_plan(threads);
  DatasetCache datasets;
  const auto setup_start = clock_type::now();
  const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
  const double setup_s = seconds_since(setup_start);
  Rounds rounds;
  const auto run_start = clock_type::now();
  (void)run_federation(c, c.name + "/bench", setup, rounds, RunHooks{});
  const double run_s = seconds_since(run_start);
  const int per_round = c.federation.clients_per_round > 0 ? c.federation.clients_per_round : c.federation.clients;
  const int batch_clients = argc > 3 ? std::stoi(argv[3]) : per_round;
  double batched_s = 0;
  Rounds batched_rounds;
  if (batch_clients > 1) {
    ExperimentConfig b = c;
    b.scheduler.batch_clients = batch_clients;
    const auto start = clock_type::now();
    (void)run_federation(b, c.name + "/bench-batched", setup, batched_rounds, RunHooks{});
    batched_s = seconds_since(start);
  }

  // The run's sample-steps: per round the sampled clients' local epochs over their data.
  const int64_t per_client = static_cast<int64_t>(setup.splits.front().train.size());
  const int64_t steps_per_client = c.train.local_epochs * ((per_client + c.train.batch_size - 1) / c.train.batch_size);
  const int64_t steps = static_cast<int64_t>(c.federation.rounds) * per_round * steps_per_client;
  const auto train = datasets.train_split(c.data);
  const int cores = usable_cores();
  at::set_num_threads(cores);
  const double plain_s = plain_loop(*train, steps, c.train.batch_size, c.train.lr, c.train.momentum);
  // The limit with the intra-op threads that suit this machine best: all the cores, or one.
  const double stacked_all_s =
      plain_loop(*train, steps / per_round, per_round * c.train.batch_size, c.train.lr, c.train.momentum);
  double stacked_one_s = stacked_all_s;
  if (cores > 1) {
    at::set_num_threads(1);
    stacked_one_s = plain_loop(*train, steps / per_round, per_round * c.train.batch_size, c.train.lr, c.train.momentum);
  }
  const int loops = std::max(1, threads.workers);
  const double floor_s = one_by_one_floor(*train, steps, loops, threads.intra_op, c.train);
  const double stacked_s = std::min(stacked_all_s, stacked_one_s);
  const int stacked_threads = stacked_all_s <= stacked_one_s ? cores : 1;

  std::printf("fedavg_fmnist: %d rounds x %d clients x %lld steps of batch %lld (%lld steps)\n", c.federation.rounds,
              per_round, static_cast<long long>(steps_per_client), static_cast<long long>(c.train.batch_size),
              static_cast<long long>(steps));
  std::printf("  machine: %d cores in the affinity mask; simulation threads: %s\n", cores, threads.describe().c_str());
  std::printf("  setup (data, partition, feature pool)     : %8.2f s\n", setup_s);
  std::printf("  simulation, %d rounds incl. global test   : %8.2f s   (final global test accuracy %.4f)\n",
              c.federation.rounds, run_s, rounds.last_global);
  if (batch_clients > 1)
    std::printf("  the same with scheduler.batch_clients = %d : %8.2f s   (final global test accuracy %.4f)\n",
                batch_clients, batched_s, batched_rounds.last_global);
  std::printf("  plain LibTorch loop, batch %lld, %d threads : %8.2f s\n", static_cast<long long>(c.train.batch_size),
              cores, plain_s);
  std::printf("  %d clients' batches stacked (batch %lld, %lld steps): %8.2f s with %d threads, %8.2f s with 1\n",
              per_round, static_cast<long long>(per_round * c.train.batch_size), static_cast<long long>(steps / per_round),
              stacked_all_s, cores, stacked_one_s);
  std::printf("  %d plain loops at once, batch %lld, %d thread each: %8.2f s   (one-by-one floor: each model its own steps)\n",
              loops, static_cast<long long>(c.train.batch_size), threads.intra_op, floor_s);
  std::printf("  limit (the faster of the two, %d threads)  : %8.2f s\n", stacked_threads, stacked_s);
  std::printf("  simulation / plain loop                   : %8.2f x\n", run_s / plain_s);
  std::printf("  simulation / one-by-one floor             : %8.2f x\n", run_s / floor_s);
  std::printf("  simulation / stacked limit                : %8.2f x   (goal <= 1.2x)\n", run_s / stacked_s);
  if (batch_clients > 1)
    std::printf("  batch_clients = %d / stacked limit          : %8.2f x\n", batch_clients, batched_s / stacked_s);
  return 0;
}
