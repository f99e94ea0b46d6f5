// tests/fl/runtime/memory_admission_test.cpp — byte sizes, the admission rule, and the scheduler keeping jobs under a budget.
#include "actors/messages.hpp"
#include "actors/scheduler_actor.hpp"
#include "support/byte_size.hpp"
#include "fl/runtime/memory_admission.hpp"
#include "fl/runtime/resident_memory.hpp"

#include <ATen/ATen.h>
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace fedvlm {
namespace {

constexpr int64_t MiB = int64_t{1} << 20;

TEST(ByteSize, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_byte_size("20GiB"), 20 * 1024 * MiB);
  EXPECT_EQ(parse_byte_size("512 MiB"), 512 * MiB);
  EXPECT_EQ(parse_byte_size("1.5gb"), 1500000000);
  EXPECT_EQ(parse_byte_size("4096"), 4096);
  EXPECT_EQ(parse_byte_size("0"), 0);
  EXPECT_EQ(parse_byte_size("3kB"), 3000);
  for (int64_t b : {int64_t{0}, int64_t{1000}, 1536 * MiB, 20 * 1024 * MiB, int64_t{12345}})
    EXPECT_EQ(parse_byte_size(byte_size_text(b)), b) << byte_size_text(b);
  EXPECT_EQ(byte_size_text(1536 * MiB), "1536MiB");
  EXPECT_EQ(byte_size_text(20 * 1024 * MiB), "20GiB");
}

TEST(ByteSize, BadTextSaysWhatWasExpected) {
  for (const char* bad : {"", "GiB", "-1GiB", "20 gigs", "1e400"}) {
    try {
      (void)parse_byte_size(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("expected a size such as \"20GiB\""), std::string::npos) << e.what();
    }
  }
}

TEST(MemoryAdmission, UnmeasuredKindsRunAloneThenTheBudgetDecides) {
  MemoryAdmission a(100 * MiB, 20 * MiB);
  EXPECT_TRUE(a.admit("train", {}));         // nothing runs: always
  EXPECT_FALSE(a.admit("train", {"train"})); // not measured yet: alone
  a.observe_job("train", 30 * MiB);
  // 20 + 30·k ≤ 100: two trainings fit, a third does not.
  EXPECT_TRUE(a.admit("train", {"train"}));
  EXPECT_FALSE(a.admit("train", {"train", "train"}));
  EXPECT_FALSE(a.admit("eval", {"train"})); // eval not measured yet
  a.observe_job("eval", 10 * MiB);
  EXPECT_TRUE(a.admit("eval", {"train", "train"})); // 20 + 60 + 10 = 90
  EXPECT_FALSE(a.admit("eval", {"train", "train", "eval", "eval"}));
  EXPECT_EQ(a.projected({"train", "eval"}), 60 * MiB);
  a.observe_job("train", 5 * MiB); // the estimate keeps the largest
  EXPECT_EQ(a.cost("train"), 30 * MiB);
}

TEST(MemoryAdmission, NoBudgetAdmitsEverythingAndTooSmallABudgetIsRefused) {
  const MemoryAdmission none(0, 1024 * MiB);
  EXPECT_TRUE(none.admit("train", {"train", "train", "train"}));
  try {
    MemoryAdmission tight(10 * MiB, 64 * MiB);
    ADD_FAILURE() << "accepted a budget below the shared base";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("10MiB is smaller than what every job shares"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("64MiB"), std::string::npos) << e.what();
  }
}

TEST(ResidentMemory, SamplerSeesAPeakThatIsGoneByTheEnd) {
  PeakResidentSampler sampler(1);
  {
    at::Tensor big = at::ones({64 * MiB / 4}); // 64 MiB, touched, freed before stop()
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  const int64_t peak = sampler.stop();
  EXPECT_GE(peak, 56 * MiB) << peak;
  EXPECT_LT(peak, 256 * MiB) << peak;
}

// A task whose every training holds `job_bytes` for a while and counts how many run at once.
class MemoryHungryTask : public FederatedTask {
public:
  explicit MemoryHungryTask(int64_t job_bytes) : job_bytes_(job_bytes) {}
  const std::map<std::string, AdaptableLayer>& targets() const override { return targets_; }
  int64_t size() const override { return 8; }
  int64_t shared_bytes() const override { return 4 * MiB; }
  std::string cache_summary() const override { return ""; }
  const TensorMap& base_weights() const override { return base_; }
  LocalTrainResult train(LocalTrainJob job, const TrainSettings&, const LoraSettings&) const override {
    const int now = ++running_;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      max_running_ = std::max(max_running_, now);
    }
    {
      at::Tensor held = at::ones({job_bytes_ / 4});
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
    --running_;
    LocalTrainResult r;
    r.adapters = std::move(job.adapters);
    return r;
  }
  EvalResult evaluate(const TensorMap&, const std::vector<int64_t>&, const LoraSettings&, int64_t) const override {
    return {};
  }
  int max_running() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_running_;
  }

private:
  int64_t job_bytes_;
  std::map<std::string, AdaptableLayer> targets_;
  TensorMap base_;
  mutable std::atomic<int> running_{0};
  mutable std::mutex mutex_;
  mutable int max_running_ = 0;
};

class AdmissionLog : public RunObserverBase {
public:
  void scheduler_memory(int running, int64_t budget, int64_t projected) override {
    std::lock_guard<std::mutex> lock(mutex_);
    max_running = std::max(max_running, running);
    max_projected = std::max(max_projected, projected);
    this->budget = budget;
  }
  std::mutex mutex_;
  int max_running = 0;
  int64_t max_projected = 0, budget = 0;
};

// Runs `jobs` trainings through a scheduler with 3 workers; returns the most that ran at once.
int most_at_once(const std::shared_ptr<MemoryHungryTask>& task, int64_t budget, int jobs, AdmissionLog& log,
                 int batch_clients = 1) {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  SchedulerConfig sc;
  sc.task = task;
  sc.limits.concurrency = 3;
  sc.limits.memory_budget = budget;
  sc.observer = &log;
  sc.limits.batch_clients = batch_clients;
  scheduler_actor scheduler = spawn_scheduler(system, sc);
  caf::scoped_actor self{system};
  std::vector<int> plan(static_cast<std::size_t>(jobs));
  std::iota(plan.begin(), plan.end(), 0);
  self->send(scheduler, plan_atom::value, 1, plan); // the round's clients, for grouping
  for (int i = 0; i < jobs; ++i) {
    TrainJobMsg msg;
    msg.client = i;
    msg.round = 1;
    msg.job.adapters = {{"head.lora_A", at::zeros({2, 4})}, {"head.lora_B", at::zeros({3, 2})}};
    msg.job.trainable = {"head.lora_A", "head.lora_B"};
    msg.job.indices = {0, 1};
    self->send(scheduler, std::move(msg)); // the scheduler's answer arrives as a message
  }
  for (int i = 0; i < jobs; ++i)
    self->receive([](TrainDoneMsg&) {}, [](caf::error& e) { ADD_FAILURE() << caf::to_string(e); },
                  caf::after(std::chrono::seconds(60)) >> [i] { ADD_FAILURE() << "no answer for job " << i << " in 60 s"; });
  self->send_exit(scheduler, caf::exit_reason::user_shutdown);
  return task->max_running();
}

TEST(SchedulerMemoryBudget, JobsThatWouldNotFitWaitInTheQueue) {
  // Each job holds 48 MiB: with 4 MiB shared, a budget of 80 MiB fits one at a time.
  auto task = std::make_shared<MemoryHungryTask>(48 * MiB);
  AdmissionLog log;
  EXPECT_EQ(most_at_once(task, 80 * MiB, 6, log), 1);
  EXPECT_EQ(log.max_running, 1);
  EXPECT_EQ(log.budget, 80 * MiB);
  EXPECT_LE(log.max_projected, 80 * MiB);
}

TEST(SchedulerMemoryBudget, AGenerousBudgetLetsTheWorkersRunTogether) {
  // The first job runs alone to be measured; then three 48 MiB jobs fit in 1 GiB.
  auto task = std::make_shared<MemoryHungryTask>(48 * MiB);
  AdmissionLog log;
  EXPECT_EQ(most_at_once(task, 1024 * MiB, 7, log), 3);
  EXPECT_EQ(log.max_running, 3);
}

// Groups of clients (scheduler.batch_clients) under a budget: a group starts when nothing else
// runs even before its cost is known, so the queue never stalls.
TEST(SchedulerMemoryBudget, GroupsOfClientsStartUnderABudget) {
  auto task = std::make_shared<MemoryHungryTask>(8 * MiB);
  AdmissionLog log;
  (void)most_at_once(task, 64 * MiB, 7, log, /*batch_clients=*/3); // chunks {0,1,2} {3,4,5} {6}
  EXPECT_GE(log.max_running, 3); // a group of 3 counts as 3 jobs
}

TEST(SchedulerMemoryBudget, ABudgetBelowTheSharedBaseIsRefusedBeforeAnyJob) {
  auto task = std::make_shared<MemoryHungryTask>(MiB);
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  SchedulerConfig sc;
  sc.task = task;
  sc.limits.memory_budget = 2 * MiB;
  EXPECT_THROW((void)spawn_scheduler(system, sc), std::invalid_argument);
}

} // namespace
} // namespace fedvlm
