// actors/run_clients.cpp — builds the scheduler's settings and each client's actor from the run's configuration.
#include "actors/run_clients.hpp"

#include "actors/client_actor.hpp"
#include "fl/federation/starting_state.hpp"

#include <algorithm>

namespace fedvlm {

SchedulerConfig scheduler_config(const ExperimentConfig& c, const RunSetup& setup, RunObserver* observer) {
  SchedulerConfig sched;
  sched.task = setup.task;
  sched.train = c.train;
  sched.lora = c.lora;
  sched.concurrency = c.scheduler.concurrency;
  sched.memory_budget = c.scheduler.memory_budget;
  sched.batch_clients = c.scheduler.batch_clients;
  sched.observer = observer;
  return sched;
}

client_actor spawn_run_client(caf::actor_system& system, const ExperimentConfig& c, const RunSetup& setup,
                            caf::actor scheduler, int id, const ClientCheckpoint& state, bool on_node,
                            std::function<void(int, const ClientCheckpoint&)> save_state) {
  ClientConfig cc;
  cc.id = id;
  if (id == kSharedInit) {
    for (const auto& s : setup.splits) cc.split.train.insert(cc.split.train.end(), s.train.begin(), s.train.end());
    std::sort(cc.split.train.begin(), cc.split.train.end());
  } else {
    cc.split = setup.splits[static_cast<std::size_t>(id)];
    cc.faults = c.faults;
    cc.privacy = c.privacy;
  }
  cc.initial_adapters = state.adapters;
  cc.initial_optimizer_state = state.optimizer_state;
  cc.strategy = c.strategy;
  cc.run_seed = c.seed;
  cc.lora_alpha = c.lora.alpha;
  cc.keeps_factors = on_node;
  cc.save_state = std::move(save_state);
  cc.scheduler = std::move(scheduler);
  return spawn_client(system, std::move(cc));
}

} // namespace fedvlm
