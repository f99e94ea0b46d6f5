// fl/runtime/thread_plan.cpp — threads per worker from the affinity mask; LibTorch's pools set from the plan.
#include "fl/runtime/thread_plan.hpp"

#include <ATen/Parallel.h>


#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace fedvlm {

namespace {

std::string plural(int n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

} // namespace

std::string ThreadPlan::describe() const {
  std::string s = std::to_string(intra_op) + " intra-op per worker (";
  if (automatic)
    s += plural(cores, "core") + " / " + plural(workers, "worker") + ", threads = \"auto\")";
  else
    s += "threads = " + std::to_string(intra_op) + " as set; " + plural(cores, "core") + ", " +
         plural(workers, "worker") + ")";
  s += ", pretraining " + std::to_string(pretrain) + ", inter-op " + std::to_string(inter_op);
  return s;
}

std::string ThreadPlan::warning() const {
  if (!oversubscribed()) return "";
  return "threads = " + std::to_string(intra_op) + " x scheduler.concurrency = " + std::to_string(workers) + " is " +
         std::to_string(intra_op * workers) + " threads on " + plural(cores, "core") +
         ": the workers' pools compete for the cores and mostly wait on each other (threads = \"auto\" gives " +
         std::to_string(std::max(1, cores / workers)) + ")";
}

ThreadPlan plan_threads(int requested, int workers, int cores) {
  if (requested < 0) throw std::invalid_argument("threads must be \"auto\" or >= 1, got " + std::to_string(requested));
  if (workers < 1) throw std::invalid_argument("scheduler.concurrency must be >= 1, got " + std::to_string(workers));
  if (cores < 1) throw std::invalid_argument("cores must be >= 1, got " + std::to_string(cores));
  ThreadPlan p;
  p.cores = cores;
  p.workers = workers;
  p.automatic = requested == 0;
  p.intra_op = p.automatic ? std::max(1, cores / workers) : requested;
  p.pretrain = p.automatic ? cores : requested;
  p.inter_op = 1;
  return p;
}

void apply_thread_plan(const ThreadPlan& plan) {
  at::set_num_threads(plan.intra_op);
  static std::once_flag inter_op_once;
  std::call_once(inter_op_once, [&] {
    try {
      at::set_num_interop_threads(plan.inter_op);
    } catch (const std::exception&) {
      // Something already started the pool (or set it): LibTorch keeps its size for the process.
    }
  });
}

ScopedIntraOpThreads::ScopedIntraOpThreads(int threads) : previous_(at::get_num_threads()) {
  at::set_num_threads(std::max(1, threads));
}

ScopedIntraOpThreads::~ScopedIntraOpThreads() { at::set_num_threads(previous_); }

} // namespace fedvlm
