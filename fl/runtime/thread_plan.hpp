// fl/runtime/thread_plan.hpp — how many LibTorch threads each scheduler worker gets, chosen from the cores this process may use.
//
// Several workers that each run an intra-op pool as wide as the machine oversubscribe the CPU:
// on small batches the pools spend their time synchronising (2 workers x 2 threads on 2 cores
// made a Fashion-MNIST round 4x slower than 2 x 1). The engine therefore splits the cores
// between the workers unless the experiment names a thread count.
#pragma once

#include <string>

namespace fedvlm {

/// The threads of one run.
struct ThreadPlan {
  int cores = 1;          ///< CPUs this process may run on (its affinity mask)
  int workers = 1;        ///< scheduler.concurrency: jobs that run at once
  bool automatic = true;  ///< threads = "auto" (the engine chose) or an explicit count
  int intra_op = 1;       ///< LibTorch intra-op threads of each worker
  /// Pretraining runs alone, before any worker starts: with "auto" it takes every core; an
  /// explicit count is kept, so a run with a fixed count stays reproducible.
  int pretrain = 1;
  /// LibTorch's own inter-op pool: the scheduler's workers already are the inter-op
  /// parallelism, so a pool on top would only add threads competing for the same cores.
  int inter_op = 1;

  /// An explicit threads x workers above the cores ("auto" gives 1 thread a worker at least,
  /// so more workers than cores is scheduler.concurrency's choice, not the threads').
  [[nodiscard]] bool oversubscribed() const { return !automatic && intra_op * workers > cores; }
  /// "1 intra-op per worker (2 cores / 2 workers)", with what pretraining takes.
  [[nodiscard]] std::string describe() const;
  /// The warning for an oversubscribed explicit count, naming both values ("" when none).
  [[nodiscard]] std::string warning() const;
};

/// The plan for `requested` threads (0 = "auto") and `workers` concurrent jobs on `cores` CPUs:
/// "auto" gives each worker max(1, cores / workers). Throws std::invalid_argument on a
/// negative request or fewer than one worker or core.
[[nodiscard]] ThreadPlan plan_threads(int requested, int workers, int cores);

/// Sets LibTorch's intra-op threads for this thread and for every thread that starts LibTorch
/// work afterwards (at::set_num_threads), and the inter-op pool's size once per process (LibTorch
/// refuses a second setting; later plans keep the first).
void apply_thread_plan(const ThreadPlan& plan);

/// Sets the intra-op threads for a stretch of work (pretraining) and puts the previous count
/// back on destruction.
class ScopedIntraOpThreads {
public:
  explicit ScopedIntraOpThreads(int threads);
  ~ScopedIntraOpThreads();
  ScopedIntraOpThreads(const ScopedIntraOpThreads&) = delete;
  ScopedIntraOpThreads& operator=(const ScopedIntraOpThreads&) = delete;

private:
  int previous_;
};

} // namespace fedvlm
