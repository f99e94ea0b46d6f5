// actors/run_clients.cpp — builds the scheduler's settings and each client's actor from the run's configuration.
#include "actors/run_clients.hpp"

#include "actors/client_actor.hpp"
#include "fl/federation/starting_state.hpp"


namespace fedvlm {

SchedulerConfig scheduler_config(const ExperimentConfig& c, const RunSetup& setup, RunObserver* observer) {
  SchedulerConfig sched;
  sched.task = setup.task;
  sched.train = c.train;
  sched.lora = c.lora;
  sched.limits = c.scheduler;
  sched.observer = observer;
  return sched;
}

client_actor spawn_run_client(caf::actor_system& system, const ExperimentConfig& c, const RunSetup& setup,
                            scheduler_actor scheduler, int id, const ClientCheckpoint& state, bool on_node,
                            std::function<void(int, const ClientCheckpoint&)> save_state,
                            std::function<std::optional<ClientCheckpoint>(int)> load_state) {
  ClientConfig cc;
  static_cast<ClientSettings&>(cc) = client_settings(c, setup.splits, id, on_node);
  cc.initial_adapters = state.adapters;
  cc.initial_optimizer_state = state.optimizer_state;
  cc.initial_residual = state.residual;
  cc.save_state = std::move(save_state);
  cc.load_state = std::move(load_state);
  cc.scheduler = std::move(scheduler);
  return spawn_client(system, std::move(cc));
}

} // namespace fedvlm
