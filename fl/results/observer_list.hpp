// fl/results/observer_list.hpp — forwards every run event to several observers (results, metrics, progress).
#pragma once

#include "fl/results/run_records.hpp"

#include <vector>

namespace fedvlm {

class ObserverList final : public RunObserver {
public:
  void add(RunObserver* observer) {
    if (observer != nullptr) observers_.push_back(observer);
  }
  void run_started(const std::string& run, const std::string& strategy, int clients, int rounds) override {
    for (auto* o : observers_) o->run_started(run, strategy, clients, rounds);
  }
  void round_started(const std::string& run, int round, int total_rounds) override {
    for (auto* o : observers_) o->round_started(run, round, total_rounds);
  }
  void client_evaluated(const ClientRoundRecord& record) override {
    for (auto* o : observers_) o->client_evaluated(record);
  }
  void client_finished_training(const std::string& run, int round, int client) override {
    for (auto* o : observers_) o->client_finished_training(run, round, client);
  }
  void round_finished(const RoundSummary& summary) override {
    for (auto* o : observers_) o->round_finished(summary);
  }
  void run_finished(const std::string& run) override {
    for (auto* o : observers_) o->run_finished(run);
  }
  void scheduler_queue(int depth) override {
    for (auto* o : observers_) o->scheduler_queue(depth);
  }
  void scheduler_job(const std::string& kind, double queued_seconds, double run_seconds) override {
    for (auto* o : observers_) o->scheduler_job(kind, queued_seconds, run_seconds);
  }
  void device_memory(int64_t bytes_in_use, int64_t peak_bytes) override {
    for (auto* o : observers_) o->device_memory(bytes_in_use, peak_bytes);
  }
  void process_memory(int64_t resident_bytes) override {
    for (auto* o : observers_) o->process_memory(resident_bytes);
  }
  void scheduler_memory(int running_jobs, int64_t budget_bytes, int64_t projected_bytes) override {
    for (auto* o : observers_) o->scheduler_memory(running_jobs, budget_bytes, projected_bytes);
  }
  void node_scheduler(const NodeSchedulerStats& stats) override {
    for (auto* o : observers_) o->node_scheduler(stats);
  }

private:
  std::vector<RunObserver*> observers_; // not owned; the observers are set up before any actor
};

} // namespace fedvlm
