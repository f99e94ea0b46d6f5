// tests/fl/runtime/thread_plan_test.cpp — threads per worker from cores and concurrency; the affinity mask as the kernel reports it.
#include "fl/runtime/thread_plan.hpp"
#include "support/usable_cores.hpp"
#include "tests/test_support.hpp"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace fedvlm {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(ThreadPlan, AutoSplitsTheCoresBetweenTheWorkers) {
  struct Case {
    int cores, workers, intra_op;
  };
  // intra-op = max(1, cores / workers), rounded down so that the workers never exceed the cores.
  for (const Case k : {Case{2, 2, 1}, Case{2, 1, 2}, Case{2, 3, 1}, Case{1, 1, 1}, Case{16, 4, 4}, Case{16, 3, 5},
                       Case{8, 16, 1}, Case{64, 1, 64}}) {
    SCOPED_TRACE(std::to_string(k.cores) + " cores, " + std::to_string(k.workers) + " workers");
    const ThreadPlan p = plan_threads(0, k.workers, k.cores);
    EXPECT_TRUE(p.automatic);
    EXPECT_EQ(p.intra_op, k.intra_op);
    EXPECT_EQ(p.cores, k.cores);
    EXPECT_EQ(p.workers, k.workers);
    EXPECT_EQ(p.pretrain, k.cores) << "pretraining runs alone: every core";
    EXPECT_EQ(p.inter_op, 1);
    EXPECT_FALSE(p.oversubscribed()) << "auto never warns";
    EXPECT_TRUE(p.warning().empty());
    if (k.workers <= k.cores) EXPECT_LE(p.intra_op * p.workers, k.cores);
  }
}

TEST(ThreadPlan, DescribeSaysWhatWasChosenAndWhy) {
  const std::string d = plan_threads(0, 2, 2).describe();
  EXPECT_TRUE(contains(d, "1 intra-op per worker (2 cores / 2 workers")) << d;
  EXPECT_TRUE(contains(d, "\"auto\"")) << d;
  EXPECT_TRUE(contains(d, "pretraining 2")) << d;
  const std::string one = plan_threads(0, 1, 1).describe();
  EXPECT_TRUE(contains(one, "1 intra-op per worker (1 core / 1 worker,")) << one;
  const std::string fixed = plan_threads(3, 2, 8).describe();
  EXPECT_TRUE(contains(fixed, "3 intra-op per worker (threads = 3 as set")) << fixed;
  EXPECT_TRUE(contains(fixed, "pretraining 3")) << fixed; // a fixed count stays fixed everywhere
}

TEST(ThreadPlan, AnExplicitCountAboveTheCoresWarnsNamingBothValues) {
  const ThreadPlan over = plan_threads(2, 2, 2);
  EXPECT_FALSE(over.automatic);
  EXPECT_EQ(over.intra_op, 2);
  EXPECT_TRUE(over.oversubscribed());
  const std::string w = over.warning();
  EXPECT_TRUE(contains(w, "threads = 2")) << w;
  EXPECT_TRUE(contains(w, "scheduler.concurrency = 2")) << w;
  EXPECT_TRUE(contains(w, "2 cores")) << w;
  EXPECT_TRUE(contains(w, "\"auto\" gives 1")) << w;
  // At or below the cores: no warning.
  EXPECT_FALSE(plan_threads(1, 2, 2).oversubscribed());
  EXPECT_TRUE(plan_threads(1, 2, 2).warning().empty());
  EXPECT_FALSE(plan_threads(4, 4, 16).oversubscribed());
  EXPECT_TRUE(plan_threads(5, 4, 16).oversubscribed());
}

TEST(ThreadPlan, RefusesImpossibleInputs) {
  EXPECT_THROW((void)plan_threads(-1, 1, 2), std::invalid_argument);
  EXPECT_THROW((void)plan_threads(0, 0, 2), std::invalid_argument);
  EXPECT_THROW((void)plan_threads(0, 1, 0), std::invalid_argument);
}

// Counts the CPUs of a kernel list such as "0-3,8,10-11".
int count_cpu_list(const std::string& list) {
  int n = 0;
  std::istringstream in(list);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (part.empty()) continue;
    const auto dash = part.find('-');
    if (dash == std::string::npos) ++n;
    else n += std::stoi(part.substr(dash + 1)) - std::stoi(part.substr(0, dash)) + 1;
  }
  return n;
}

TEST(ThreadPlan, AffinityCoresMatchTheKernelsAllowedList) {
  // /proc/self/status is the kernel's own account of the mask (what Python's
  // os.sched_getaffinity returns), read here without sched_getaffinity.
  std::istringstream status(testing::read_text_file("/proc/self/status"));
  std::string line;
  int allowed = 0;
  while (std::getline(status, line))
    if (line.rfind("Cpus_allowed_list:", 0) == 0) allowed = count_cpu_list(line.substr(line.find(':') + 1));
  if (allowed == 0) GTEST_SKIP() << "/proc/self/status has no Cpus_allowed_list";
  EXPECT_EQ(usable_cores(), allowed);
  EXPECT_EQ(count_cpu_list(" 0-3,8,10-11"), 7); // the counter itself
}

TEST(ThreadPlan, ApplyAndScopedThreadsSetLibTorchsPool) {
  const int before = at::get_num_threads();
  apply_thread_plan(plan_threads(1, 1, 1));
  EXPECT_EQ(at::get_num_threads(), 1);
  {
    const ScopedIntraOpThreads wide(2);
    EXPECT_EQ(at::get_num_threads(), 2);
    // A thread that starts LibTorch work afterwards takes the count too (the scheduler's workers).
    int seen = 0;
    std::thread([&] { seen = at::get_num_threads(); }).join();
    EXPECT_EQ(seen, 2);
  }
  EXPECT_EQ(at::get_num_threads(), 1);
  at::set_num_threads(before);
}

} // namespace
} // namespace fedvlm
