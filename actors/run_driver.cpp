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

namespace {

/// The aggregator's settings for a run that starts (or goes on) from `from`.
AggregatorConfig aggregator_config(const ExperimentConfig& c, const std::string& run_id, const RunSetup& setup,
                                   RunObserver& observer, scheduler_actor scheduler, const RunCheckpoint& from,
                                   const std::vector<RoundSummary>& previous, const RunHooks& hooks) {
  AggregatorConfig agg;
  static_cast<RoundSettings&>(agg) = round_settings(c, run_id, setup);
  agg.global_test = setup.global_test;
  if (!agg.global_test.empty()) agg.global_template = initial_adapters(c, setup, kSharedInit);
  agg.holdout = holdout_clients(c, setup);
  agg.holdout_every = c.evaluation.holdout_every;
  agg.adapt_steps = c.evaluation.adapt_steps;
  agg.target_accuracy = c.evaluation.target_accuracy;
  agg.stop_at_target = c.evaluation.stop_at_target;
  agg.previous_rounds = previous;
  agg.scheduler = std::move(scheduler);
  agg.observer = &observer;
  agg.resume_from = from;
  agg.on_round_state = hooks.on_round_state;
  agg.collect_every_state = hooks.collect_every_state;
  return agg;
}

/// The run's actor system: heavy work runs on the scheduler's detached workers, so two
/// cooperative threads only relay; a served run's network (TLS where set).
void configure_actor_system(caf::actor_system_config& cfg, const RunHooks& hooks) {
  cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  register_message_types(cfg);
  if (hooks.serve) load_network(cfg, hooks.serve->tls);
}

/// The node lost in a served run that rolls back: one of its clients and the round it was lost in.
struct LostNode {
  int client = -1;
  int round = 0;
};

/// Runs the aggregator until RunDone (into `done`); the error that stopped it otherwise.
std::string run_aggregator(caf::actor_system& system, AggregatorConfig agg, const RemoteClients& cluster,
                           RunDone& done) {
  aggregator_actor aggregator = spawn_aggregator(system, std::move(agg));
  if (cluster.registry)
    caf::anon_send(cluster.registry, aggregator_atom::value, caf::actor_cast<caf::actor>(aggregator));
  std::string failure;
  InterruptWatcher watcher(caf::actor_cast<caf::actor>(aggregator));
  caf::scoped_actor self{system};
  self->request(aggregator, caf::infinite, start_atom::value)
      .receive([&](RunDone& d) { done = std::move(d); }, [&](caf::error& err) { failure = describe_error(err); });
  self->send_exit(aggregator, caf::exit_reason::user_shutdown);
  return failure;
}

/// A served centralized run's trainer state in `from` (it runs on the server), else `initial`.
ClientCheckpoint central_state_of(const RunCheckpoint& from, const ClientCheckpoint& initial) {
  for (const auto& cs : from.clients)
    if (cs.id == kSharedInit) return cs;
  return initial;
}

/// The end of a run: the scheduler, every client spawned here and the registry (the nodes stop).
void stop_actors(caf::actor_system& system, const scheduler_actor& scheduler, const std::vector<client_actor>& spawned,
                 const registry_actor& registry) {
  caf::scoped_actor self{system};
  self->send_exit(scheduler, caf::exit_reason::user_shutdown);
  for (const auto& a : spawned) self->send_exit(a, caf::exit_reason::user_shutdown);
  if (registry) {
    // The nodes' last figures reach the exporter before the nodes stop.
    self->request(registry, std::chrono::seconds(3), final_stats_atom::value).receive([](int) {}, [](caf::error&) {});
    self->send_exit(registry, caf::exit_reason::user_shutdown); // nodes stop
  }
}

/// What run.json's message says of a served run: its roll-backs after a lost node, and the clients
/// that serve --resume --restart-missing-clients started again.
void add_served_notes(RunDone& done, const std::vector<std::string>& rolled_back, const std::vector<int>& restarted,
                      int resume_round) {
  std::vector<std::string> notes;
  if (!done.note.empty()) notes.push_back(done.note);
  if (!rolled_back.empty()) notes.push_back(join(rolled_back, "; ") + " (its clients' states restored)");
  if (!restarted.empty())
    notes.push_back("clients " + join(restarted) + " started again from their starting state at the resume after round " +
                    std::to_string(resume_round) + " (their node had no saved state)");
  done.note = join(notes, "; ");
}

} // namespace

RunDone run_federation(const ExperimentConfig& c, const std::string& run_id, const RunSetup& setup,
                       RunObserver& observer, const RunHooks& hooks) {
  if (!setup.task) throw std::logic_error("run_federation needs a setup prepared in execute mode");
  const StrategySpec& spec = strategy_spec(c.strategy);
  ClientCheckpoint central_state;
  const std::vector<ClientCheckpoint> states = run_starting_states(c, setup, hooks, central_state);
  const ClientCheckpoint initial_central = central_state;

  caf::actor_system_config sys_cfg;
  configure_actor_system(sys_cfg, hooks);
  caf::actor_system system{sys_cfg};

  scheduler_actor scheduler = spawn_scheduler(system, scheduler_config(c, setup, &observer));

  // Every client actor ever spawned, respawns included, so that all are stopped at the end.
  std::mutex spawned_mutex;
  std::vector<client_actor> spawned;
  auto spawn_with_state = [&](int id, const ClientCheckpoint& state) {
    client_actor a = spawn_run_client(system, c, setup, scheduler, id, state);
    std::lock_guard<std::mutex> lock(spawned_mutex);
    spawned.push_back(a);
    return a;
  };

  // Clients on other processes (serve), or here. A served synchronous run rolls back when a node
  // keeping its clients' states is lost (the registry holds a node that joins meanwhile).
  std::optional<ServeSettings> serve = hooks.serve;
  if (serve) serve->roll_back_lost_nodes = hooks.roll_back && c.federation.mode == FederationMode::sync;
  RemoteClients cluster = serve ? gather_remote_clients(system, *serve, c.resolved_toml, training_clients(c),
                                                        run_setup_fingerprint(setup), &observer, hooks.resume_from.round)
                                : RemoteClients{};
  const bool served = static_cast<bool>(cluster.registry);
  std::vector<client_actor> local;
  if (!served)
    for (int k = 0; k < training_clients(c); ++k) local.push_back(spawn_with_state(k, states[static_cast<std::size_t>(k)]));
  const auto wire_meter = served ? std::make_shared<WireTrafficMeter>(cluster.port) : nullptr;

  observer.run_started(run_id, spec.name, c.federation.clients, c.federation.rounds);
  RunDone done;
  std::string failure;
  std::vector<std::string> rolled_back; // one line per roll-back, for run.json
  RunCheckpoint from = hooks.resume_from;
  std::vector<RoundSummary> previous = hooks.previous_rounds;
  for (;;) {
    AggregatorConfig agg = aggregator_config(c, run_id, setup, observer, scheduler, from, previous, hooks);
    agg.initial_states = states;
    agg.central_state = central_state;
    agg.clients = served ? cluster.clients : local;
    if (!served) agg.respawn = spawn_with_state; // a remote client that dies stays down until its node rejoins
    agg.clients_keep_state = served;                      // private state stays on the nodes
    if (served) agg.node_save_every = c.checkpoint.every; // each node saves its clients' states
    if (wire_meter) agg.wire_meter = [wire_meter] { return wire_meter->take(); };
    if (spec.centralized) agg.central_trainer = spawn_with_state(kSharedInit, central_state);
    LostNode lost;
    if (serve && serve->roll_back_lost_nodes && cluster.nodes_keep_state)
      agg.on_node_lost = [&lost](int client, int round) { lost = LostNode{client, round}; };
    failure = run_aggregator(system, std::move(agg), cluster, done);
    if (lost.client < 0 || interrupt_signal()) break;
    try { // back to the newest round every node saved, once a node took the lost clients
      const RollBackPoint point = hooks.roll_back();
      roll_back_remote_clients(system, cluster, lost.client, lost.round, point.checkpoint.round, serve->wait_seconds);
      rolled_back.push_back("a node was lost in round " + std::to_string(lost.round) + ", the run rolled back to round " +
                            std::to_string(point.checkpoint.round));
      from = point.checkpoint;
      previous = point.rounds;
      central_state = central_state_of(from, initial_central);
    } catch (const Interrupted&) {
      break;
    } catch (const std::exception& e) {
      failure = e.what();
      break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(spawned_mutex);
    stop_actors(system, scheduler, spawned, cluster.registry);
  }
  observer.run_finished(run_id);
  if (const int sig = interrupt_signal()) throw RunInterrupted(sig);
  if (!failure.empty()) throw std::runtime_error("run " + run_id + " failed: " + failure);
  add_served_notes(done, rolled_back, cluster.restarted, hooks.resume_from.round);
  return done;
}

} // namespace fedvlm
