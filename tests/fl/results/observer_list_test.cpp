// tests/fl/results/observer_list_test.cpp — every RunObserver event reaches every observer of the list.
#include "fl/results/observer_list.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace fedvlm {
namespace {

// Counts each event by name. A RunObserver method the list does not forward stays at 0: the
// exporter behind the list would silently never see it (it happened to scheduler_memory).
// RunObserver's events are pure virtual, so a new event that this class (or ObserverList) does
// not override fails to compile instead of going uncounted.
class Counting final : public RunObserver {
public:
  std::map<std::string, int> calls;
  void run_started(const std::string&, const std::string&, int, int) override { ++calls["run_started"]; }
  void round_started(const std::string&, int, int) override { ++calls["round_started"]; }
  void client_evaluated(const ClientRoundRecord&) override { ++calls["client_evaluated"]; }
  void client_finished_training(const std::string&, int, int) override { ++calls["client_finished_training"]; }
  void round_finished(const RoundSummary&) override { ++calls["round_finished"]; }
  void run_finished(const std::string&) override { ++calls["run_finished"]; }
  void scheduler_queue(int) override { ++calls["scheduler_queue"]; }
  void scheduler_job(const std::string&, double, double) override { ++calls["scheduler_job"]; }
  void device_memory(int64_t, int64_t) override { ++calls["device_memory"]; }
  void process_memory(int64_t) override { ++calls["process_memory"]; }
  void scheduler_memory(int, int64_t, int64_t) override { ++calls["scheduler_memory"]; }
  void node_scheduler(const NodeSchedulerStats&) override { ++calls["node_scheduler"]; }
};

TEST(ObserverList, ForwardsEveryEventToEveryObserver) {
  Counting a, b;
  ObserverList list;
  list.add(&a);
  list.add(nullptr); // ignored
  list.add(&b);
  RunObserver& o = list;
  o.run_started("r", "plora", 2, 3);
  o.round_started("r", 1, 3);
  o.client_evaluated(ClientRoundRecord{});
  o.client_finished_training("r", 1, 0);
  o.round_finished(RoundSummary{});
  o.run_finished("r");
  o.scheduler_queue(2);
  o.scheduler_job("train", 0.1, 0.2);
  o.device_memory(1, 2);
  o.process_memory(3);
  o.scheduler_memory(1, 4, 5);
  o.node_scheduler(NodeSchedulerStats{});
  for (const Counting* c : {&a, &b}) {
    EXPECT_EQ(c->calls.size(), 12u);
    for (const auto& [event, n] : c->calls) EXPECT_EQ(n, 1) << event;
  }
}

} // namespace
} // namespace fedvlm
