// actors/run_driver.cpp — wires the actors of one run and waits for the aggregator's RunDone.
#include "actors/run_driver.hpp"
#include "support/join.hpp"
#include "actors/message_types.hpp"
#include "actors/messages.hpp"

#include "actors/aggregator_actor.hpp"
#include "actors/client_actor.hpp"
#include "actors/engine_errors.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/tasks/full_fine_tuning.hpp"
#include "fl/runtime/interrupt.hpp"
#include "fl/tasks/local_training.hpp"
#include "fl/runtime/random_streams.hpp"
#include "model/name_affixes.hpp"

#include <ATen/ATen.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace fedvlm {

namespace {

/// Tells the aggregator when a stop signal arrives, so the round in flight is abandoned and the
/// start request is answered at once.
class InterruptWatcher {
public:
  explicit InterruptWatcher(caf::actor target)
      : thread_([this, target] {
          std::unique_lock<std::mutex> lock(mutex_);
          while (!done_) {
            if (interrupt_requested()) {
              caf::anon_send(target, interrupt_atom::value);
              return;
            }
            wake_.wait_for(lock, std::chrono::milliseconds(50));
          }
        }) {}
  ~InterruptWatcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;
};

/// Each client's state at the start (and the centralized trainer's into `central_state`): fresh,
/// or from the checkpoint resumed. Served: the clients' states come from the nodes' own
/// checkpoints, a centralized trainer's (it runs here) from the server's; a served run's
/// checkpoint resumed in one process is refused, saying how to resume it.
std::vector<ClientCheckpoint> run_starting_states(const ExperimentConfig& c, const RunSetup& setup, const RunHooks& hooks,
                                                  ClientCheckpoint& central_state) {
  const RunCheckpoint& from = hooks.resume_from;
  const bool without_clients =
      std::none_of(from.clients.begin(), from.clients.end(), [](const ClientCheckpoint& cs) { return cs.id >= 0; });
  if (!hooks.serve && from.round > 0 && without_clients)
    throw std::runtime_error("the checkpoint of round " + std::to_string(from.round) +
                             " holds no client's state: this was a served run, whose clients' states are on its "
                             "nodes; resume it with fedvlm-sim serve EXPERIMENT.toml --resume (the nodes with their "
                             "--state)");
  // Served: the clients' states come from the nodes' own checkpoints; a centralized trainer's
  // (it runs here) from the server's.
  std::vector<ClientCheckpoint> states = starting_states(c, setup, hooks.serve ? RunCheckpoint{} : from, central_state);
  if (hooks.serve)
    for (const auto& cs : from.clients)
      if (cs.id == kSharedInit) central_state = cs;
  return states;
}

} // namespace

RunInterrupted::RunInterrupted(int signal_number)
    : std::runtime_error(std::string("interrupted by ") + (signal_number == SIGTERM ? "SIGTERM" : "SIGINT")),
      signal_(signal_number) {}

RunDone run_federation(const ExperimentConfig& c, const std::string& run_id, const RunSetup& setup,
                       RunObserver& observer, const RunHooks& hooks) {
  if (!setup.task) throw std::logic_error("run_federation needs a setup prepared in execute mode");
  const StrategySpec& spec = strategy_spec(c.strategy);
  ClientCheckpoint central_state;
  const std::vector<ClientCheckpoint> states = run_starting_states(c, setup, hooks, central_state);

  caf::actor_system_config sys_cfg;
  // Heavy work runs on the scheduler's detached workers; the cooperative threads only relay.
  sys_cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  register_message_types(sys_cfg);
  if (hooks.serve) load_network(sys_cfg, hooks.serve->tls);
  caf::actor_system system{sys_cfg};

  caf::actor scheduler = spawn_scheduler(system, scheduler_config(c, setup, &observer));

  // Every client actor ever spawned, respawns included, so that all are stopped at the end.
  std::mutex spawned_mutex;
  std::vector<client_actor> spawned;
  auto spawn_with_state = [&](int id, const ClientCheckpoint& state) {
    client_actor a = spawn_run_client(system, c, setup, scheduler, id, state);
    std::lock_guard<std::mutex> lock(spawned_mutex);
    spawned.push_back(a);
    return a;
  };

  AggregatorConfig agg;
  static_cast<RoundSettings&>(agg) = round_settings(c, run_id, setup);
  agg.global_test = setup.global_test;
  if (!agg.global_test.empty()) agg.global_template = initial_adapters(c, setup, kSharedInit);
  agg.holdout = holdout_clients(c, setup);
  agg.holdout_every = c.evaluation.holdout_every;
  agg.adapt_steps = c.evaluation.adapt_steps;
  agg.target_accuracy = c.evaluation.target_accuracy;
  agg.stop_at_target = c.evaluation.stop_at_target;
  agg.previous_rounds = hooks.previous_rounds;
  agg.scheduler = scheduler;
  agg.observer = &observer;
  agg.resume_from = hooks.resume_from;
  agg.initial_states = states;
  agg.central_state = central_state;
  agg.on_round_state = hooks.on_round_state;
  // Clients on other processes (serve), or here.
  const RemoteClients cluster =
      hooks.serve ? gather_remote_clients(system, *hooks.serve, c.resolved_toml, training_clients(c),
                                          run_setup_fingerprint(setup), &observer, hooks.resume_from.round)
                  : RemoteClients{};
  const std::vector<client_actor>& remote = cluster.clients;
  if (remote.empty()) agg.respawn = spawn_with_state; // a remote client that dies stays down until its node rejoins
  agg.clients_keep_state = !remote.empty();          // private state stays on the nodes
  if (!remote.empty()) agg.node_save_every = c.checkpoint.every; // each node saves its clients' states
  if (!remote.empty())
    agg.wire_meter = [meter = std::make_shared<WireTrafficMeter>(cluster.port)] { return meter->take(); };
  for (int k = 0; k < training_clients(c); ++k)
    agg.clients.push_back(remote.empty() ? spawn_with_state(k, states[static_cast<std::size_t>(k)])
                                         : remote[static_cast<std::size_t>(k)]);
  if (spec.centralized) agg.central_trainer = spawn_with_state(kSharedInit, central_state);
  aggregator_actor aggregator = spawn_aggregator(system, std::move(agg));
  if (cluster.registry)
    caf::anon_send(cluster.registry, aggregator_atom::value, caf::actor_cast<caf::actor>(aggregator));

  observer.run_started(run_id, spec.name, c.federation.clients, c.federation.rounds);
  RunDone done;
  std::string failure;
  {
    InterruptWatcher watcher(caf::actor_cast<caf::actor>(aggregator));
    caf::scoped_actor self{system};
    self->request(aggregator, caf::infinite, start_atom::value)
        .receive([&](RunDone& d) { done = std::move(d); },
                 [&](caf::error& err) { failure = describe_error(err); });
    self->send_exit(aggregator, caf::exit_reason::user_shutdown);
    self->send_exit(scheduler, caf::exit_reason::user_shutdown);
    std::lock_guard<std::mutex> lock(spawned_mutex);
    for (const auto& a : spawned) self->send_exit(a, caf::exit_reason::user_shutdown);
    if (cluster.registry) self->send_exit(cluster.registry, caf::exit_reason::user_shutdown); // nodes stop
  }
  observer.run_finished(run_id);
  if (const int sig = interrupt_signal()) throw RunInterrupted(sig);
  if (!failure.empty()) throw std::runtime_error("run " + run_id + " failed: " + failure);
  if (!cluster.restarted.empty()) // serve --resume --restart-missing-clients: said in run.json's message
    done.note += (done.note.empty() ? "" : "; ") + std::string("clients ") + join(cluster.restarted) +
                 " started again from their starting state at the resume after round " +
                 std::to_string(hooks.resume_from.round) + " (their node had no saved state)";
  return done;
}

} // namespace fedvlm
