// actors/run_driver.cpp — wires the actors of one run and waits for the aggregator's RunDone.
#include "actors/run_driver.hpp"

#include "actors/aggregator_actor.hpp"
#include "actors/client_actor.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/local_training.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <stdexcept>

namespace fedvlm {

namespace {

constexpr uint64_t kAdapterInitStream = 3;
constexpr int kSharedInit = -1;

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

} // namespace

TensorMap initial_adapters(const ExperimentConfig& c, const RunSetup& setup, int client) {
  const int stream = strategy_spec(c.strategy).common_a_init ? kSharedInit : client;
  return lora_init(setup.targets, c.lora, job_seed(c.seed, stream, 0, kAdapterInitStream));
}

RunDone run_federation(const ExperimentConfig& c, const std::string& run_id, const RunSetup& setup,
                       RunObserver& observer) {
  if (!setup.task) throw std::logic_error("run_federation needs a setup prepared in execute mode");
  const StrategySpec& spec = strategy_spec(c.strategy);

  caf::actor_system_config sys_cfg;
  // Heavy work runs on the scheduler's detached workers; the cooperative threads only relay.
  sys_cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  caf::actor_system system{sys_cfg};

  SchedulerConfig sched;
  sched.task = setup.task;
  sched.train = c.train;
  sched.lora = c.lora;
  sched.concurrency = c.scheduler.concurrency;
  sched.observer = &observer;
  caf::actor scheduler = spawn_scheduler(system, sched);

  auto adapters_for = [&](int client) { return initial_adapters(c, setup, client); };

  AggregatorConfig agg;
  agg.run = run_id;
  agg.strategy = c.strategy;
  agg.federation = c.federation;
  agg.seed = c.seed;
  agg.observer = &observer;
  for (int k = 0; k < c.federation.clients; ++k) {
    ClientConfig cc;
    cc.id = k;
    cc.split = setup.splits[static_cast<std::size_t>(k)];
    cc.initial_adapters = adapters_for(k);
    cc.strategy = c.strategy;
    cc.run_seed = c.seed;
    cc.fails = contains(c.faults.failing_clients, k);
    cc.delay_seconds = contains(c.faults.slow_clients, k) ? c.faults.slow_seconds : 0.0;
    cc.scheduler = scheduler;
    agg.clients.push_back(spawn_client(system, std::move(cc)));
  }
  if (spec.centralized) {
    ClientConfig cc;
    cc.id = -1;
    for (const auto& s : setup.splits) cc.split.train.insert(cc.split.train.end(), s.train.begin(), s.train.end());
    std::sort(cc.split.train.begin(), cc.split.train.end());
    cc.initial_adapters = adapters_for(kSharedInit);
    cc.strategy = c.strategy;
    cc.run_seed = c.seed;
    cc.scheduler = scheduler;
    agg.central_trainer = spawn_client(system, std::move(cc));
  }
  const std::vector<caf::actor> agg_clients = agg.clients;
  std::vector<caf::actor> all = agg.clients;
  all.push_back(scheduler);
  if (agg.central_trainer) all.push_back(agg.central_trainer);
  caf::actor aggregator = spawn_aggregator(system, std::move(agg));
  all.push_back(aggregator);

  observer.run_started(run_id, spec.name, c.federation.clients, c.federation.rounds);
  RunDone done;
  std::string failure;
  {
    caf::scoped_actor self{system};
    self->request(aggregator, caf::infinite, start_atom::value)
        .receive([&](RunDone& d) { done = d; },
                 [&](caf::error& err) { failure = system.render(err); });
    for (std::size_t k = 0; failure.empty() && k < agg_clients.size(); ++k) {
      self->request(agg_clients[k], caf::infinite, snapshot_atom::value)
          .receive([&](AdapterSnapshot& snap) { done.adapters.push_back(std::move(snap.adapters)); },
                   [&](caf::error& err) { failure = system.render(err); });
    }
    for (const auto& a : all) self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  observer.run_finished(run_id);
  if (!failure.empty()) throw std::runtime_error("run " + run_id + " failed: " + failure);
  return done;
}

} // namespace fedvlm
