// actors/aggregator_sync.cpp — the aggregator actor: its behavior and the synchronous round loop as message handlers; what a round decides is fl/federation/round.
#include "actors/aggregator_actor.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "actors/aggregator_state.hpp"
#include "fl/federation/async_server.hpp"
#include "fl/federation/round.hpp"
#include "fl/results/client_checkpoint.hpp"
#include "fl/results/incremental_checkpoint.hpp"
#include "fl/runtime/interrupt.hpp"
#include "support/join.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <set>
#include <utility>

namespace fedvlm {
namespace aggregator_detail {

std::chrono::milliseconds timeout_of(const AggregatorConfig& cfg) {
  return std::chrono::milliseconds(static_cast<int64_t>(cfg.federation.round_timeout_s * 1000.0));
}

void train_round(aggregator_actor_t self, int round);

/// Ends the run with `err`: a job failed for real, or the state could not be saved.
void abort_run(aggregator_actor_t self, caf::error err) {
  auto& st = self->state;
  if (st.over) return;
  st.over = true;
  if (engine_error_code(err) == static_cast<uint8_t>(EngineErrc::interrupted))
    spdlog::warn("{}: round {}: stopping the run: {}", st.cfg.run, st.r.round, describe_error(err));
  else
    spdlog::error("{}: round {}: stopping the run: {}", st.cfg.run, st.r.round, describe_error(err));
  st.done.deliver(std::move(err));
}

/// A client actor died: put a new one in its place, from its state after the last finished round.
void respawn_client(aggregator_actor_t self, int id, const std::string& reason) {
  auto& st = self->state;
  const auto k = static_cast<std::size_t>(id);
  ++st.progress.crashes[k];
  if (!st.cfg.respawn) {
    spdlog::warn("{}: round {}: client {} is down ({}): left out until a node takes it back", st.cfg.run, st.r.round,
                 id, reason);
    st.lost.insert(id);
    return;
  }
  spdlog::warn("{}: round {}: client {} crashed ({}): respawned from its state after round {}", st.cfg.run,
               st.r.round, id, reason, st.progress.rounds_completed);
  bring_up_to_date(st, id);
  st.cfg.clients[k] = st.cfg.respawn(id, st.progress.states[k]);
  st.respawned.insert(id);
  st.stale[k] = 0; // respawned from its state after the last round, downloads merged
  self->monitor(st.cfg.clients[k]);
}

void finish_training_if_complete(aggregator_actor_t self);

bool node_gone(const AggregatorConfig& cfg, const caf::error& err) {
  return cfg.on_node_lost && err == caf::exit_reason::remote_link_unreachable;
}

/// A client's node was lost and the driver rolls the run back (AggregatorConfig::on_node_lost):
/// the round in flight stops here, nothing of it is reported or saved.
void stop_for_lost_node(aggregator_actor_t self, int client, const std::string& why) {
  auto& st = self->state;
  if (st.over) return;
  st.over = true;
  spdlog::warn("{}: round {}: client {} is down with its node ({}): stopping the round to roll back", st.cfg.run,
               st.r.round, client, why);
  st.cfg.on_node_lost(client, st.r.round);
  st.stop_error = make_engine_error(EngineErrc::node_lost, "client " + std::to_string(client) +
                                                               "'s node was lost in round " + std::to_string(st.r.round));
  st.done.deliver(st.stop_error); // before start_atom came: answered there
}

/// One selected client will not send an update this round.
void client_failed(aggregator_actor_t self, int id, const std::string& why) {
  auto& st = self->state;
  if (!st.training || st.r.updates.count(id) || !st.r.failed.insert(id).second) return;
  spdlog::warn("{}: round {}: client {} left out of this round: {}", st.cfg.run, st.r.round, id, why);
  finish_training_if_complete(self);
}

/// The next round, or RunDone after the last (or before a round that would exceed the privacy budget).
void advance(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.over) return;
  if (st.r.round < st.cfg.federation.rounds && st.cfg.stop_at_target && st.target && st.target->reached()) {
    st.summary.note = fmt::format("stopped after round {} of {} (evaluation.stop_at_target): the {} accuracy reached "
                                  "evaluation.target_accuracy = {} at round {:.2f}",
                                  st.r.round, st.cfg.federation.rounds, st.target->watches_global() ? "global test" : "mean client",
                                  st.target->target(), st.target->reached_at());
    spdlog::info("{}: {}", st.cfg.run, st.summary.note);
  } else if (const std::optional<std::string> stop = budget_stop(st.cfg, st.r.round)) {
    st.summary.note = *stop;
    spdlog::warn("{}: {}", st.cfg.run, st.summary.note);
  } else if (st.r.round < st.cfg.federation.rounds) {
    if (is_async(st)) async_round(self);
    else train_round(self, st.r.round + 1);
    return;
  }
  st.over = true;
  st.summary.rounds_completed = st.progress.rounds_completed;
  st.summary.rounds_without_quorum = st.progress.rounds_without_quorum;
  // The tensors themselves, not copies: nothing changes a held tensor in place, and copies of
  // 100,000 clients' adapters made the end of a run its peak of memory.
  st.summary.global = st.progress.global;
  if (!st.cfg.clients_keep_state)
    for (std::size_t id = 0; id < st.progress.states.size(); ++id) {
      bring_up_to_date(st, static_cast<int>(id));
      st.summary.adapters.push_back(st.progress.states[id].adapters);
    }
  st.done.deliver(st.summary);
}

void next_round_or_done(aggregator_actor_t self);

void close_training(aggregator_actor_t self) {
  auto& st = self->state;
  st.training = false;
  if (!is_central(st)) {
    // The virtual clock decides who made it: nothing waited for a simulated straggler.
    const RoundTiming timing = clock_round(st.cfg, *st.clock, st.r, st.virtual_now);
    for (const auto& [id, why] : timing.dropped)
      spdlog::warn("{}: round {}: client {} left out of this round: {}", st.cfg.run, st.r.round, id, why);
  }
  if (const std::string why = is_central(st) ? "" : nobody_answered(st.r, st.progress.silent_rounds, st.cfg.federation.rounds);
      !why.empty())
    return abort_run(self, make_engine_error(EngineErrc::job_failed, why));
  std::string measure_warning;
  const QuorumOutcome quorum = close_training_round(st.cfg, st.r, st.progress.global, &measure_warning);
  if (!quorum.met) {
    ++st.progress.rounds_without_quorum;
    spdlog::warn("{}: round {}: {} of {} selected clients answered, quorum is {}: keeping the previous "
                 "global matrices",
                 st.cfg.run, st.r.round, st.r.updates.size(), st.r.selected.size(), quorum.needed);
  } else if (!measure_warning.empty()) {
    spdlog::warn("{}: round {}: aggregation error not measured: {}", st.cfg.run, st.r.round, measure_warning);
  }
  evaluate_all(self);
}

void finish_training_if_complete(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.training && st.r.updates.size() + st.r.failed.size() == st.r.selected.size()) close_training(self);
}

void train_round(aggregator_actor_t self, int round) {
  auto& st = self->state;
  if (interrupt_requested())
    return abort_run(self, make_engine_error(EngineErrc::interrupted, "interrupted before round " + std::to_string(round)));
  st.r.round = round;
  st.training = true;
  st.round_started = clock_type::now();
  st.r.updates.clear();
  st.r.failed.clear();
  st.r.measure = AggregationMeasure{};
  st.r.virtual_duration = 0;
  if (st.cfg.observer) st.cfg.observer->round_started(st.cfg.run, round, st.cfg.federation.rounds);
  const bool central = is_central(st);
  select_round(st.cfg, *st.clock, st.r, round, st.virtual_now);
  if (!central) // who will send a training job: the scheduler groups them in this order
    caf::anon_send(st.cfg.scheduler, plan_atom::value, round, training_plan(st.cfg, round, st.r.selected, st.lost));
  if (st.r.selected.empty()) { // no client available on the virtual clock: the round closes empty
    spdlog::warn("{}: round {}: no client is available at {} simulated s (network.trace windows)", st.cfg.run, round,
                 st.virtual_now);
    return finish_training_if_complete(self);
  }
  for (int id : st.r.selected) {
    if (st.lost.count(id)) {
      client_failed(self, id, "down since an earlier round (its node was lost)");
      continue;
    }
    const client_actor target = central ? st.cfg.central_trainer : st.cfg.clients[static_cast<std::size_t>(id)];
    // A download deferred while the client was not evaluated: merged first (messages between
    // two actors arrive in order). Its failure shows in the training request that follows.
    if (!central && std::exchange(st.stale[static_cast<std::size_t>(id)], 0))
      self->request(target, timeout_of(st.cfg), eval_atom::value, st.deferred).then([](ClientEval&) {}, [](caf::error&) {});
    self->request(target, timeout_of(st.cfg), train_atom::value, round)
        .then(
            [self, round](ClientUpdate& up) {
              auto& s = self->state;
              if (s.over || !s.training || s.r.round != round || s.r.failed.count(up.client)) return;
              if (s.cfg.observer) s.cfg.observer->client_finished_training(s.cfg.run, round, up.client);
              s.r.updates.emplace(up.client, std::move(up));
              finish_training_if_complete(self);
            },
            [self, id, round, target](caf::error& err) {
              auto& s = self->state;
              if (s.over || s.r.round != round) return;
              if (stops_the_run(err)) return abort_run(self, err);
              if (node_gone(s.cfg, err)) return stop_for_lost_node(self, id, describe_error(err));
              const uint8_t code = engine_error_code(err);
              // Not one of ours and not a timeout: the client's actor died. Respawn it now, so
              // it is back before this round's evaluation.
              if (code == 0 && !is_request_timeout(err) && id >= 0 &&
                  s.cfg.clients[static_cast<std::size_t>(id)] == target)
                respawn_client(self, id, describe_error(err));
              client_failed(self, id, describe_error(err));
            });
  }
}

/// The state the run starts from: the clients' and the global's (fresh or resumed), the
/// crash counts, and the virtual clock and byte count going on from the last finished round.
void start_from_resume_point(aggregator_state& st) {
  st.progress.states = st.cfg.initial_states;
  st.progress.states.resize(st.cfg.clients.size());
  st.progress.central_state = st.cfg.central_state;
  st.progress.global = st.cfg.resume_from.global;
  st.progress.rounds_completed = st.cfg.resume_from.round;
  st.progress.rounds_without_quorum = st.cfg.resume_from.rounds_without_quorum;
  st.progress.crashes = st.cfg.resume_from.crashes;
  st.progress.crashes.resize(st.cfg.clients.size(), 0);
  st.merged.assign(st.cfg.clients.size(), 0);
  st.stale.assign(st.cfg.clients.size(), 0);
  st.server_behind.assign(st.cfg.clients.size(), 0);
  std::vector<int64_t> samples = st.cfg.train_samples; // a client without a size counts as the first's
  if (samples.size() < st.cfg.clients.size()) samples.resize(st.cfg.clients.size(), samples.empty() ? 1 : samples.front());
  st.clock = std::make_unique<ClientClock>(st.cfg.federation, st.cfg.network, st.cfg.local_epochs, st.cfg.faults, st.cfg.seed,
                                          std::move(samples));
  // A resumed run's clock and byte count go on from its last finished round's summary.
  for (const RoundSummary& prev : st.cfg.previous_rounds)
    if (prev.round == st.cfg.resume_from.round && st.cfg.resume_from.round > 0) {
      if (std::isfinite(prev.virtual_seconds)) st.virtual_now = prev.virtual_seconds;
      st.bytes_total = prev.cumulative_bytes;
    }
}

aggregator_actor::behavior_type aggregator(aggregator_actor_t self, AggregatorConfig cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  start_from_resume_point(st);
  if (st.cfg.target_accuracy > 0) st.target.emplace(st.cfg.target_accuracy, !st.cfg.global_test.empty(), st.cfg.previous_rounds);
  for (const auto& c : st.cfg.clients) self->monitor(c);
  // A bug that throws here must still answer the driver, which would otherwise wait forever.
  self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    caf::error err = make_engine_error(EngineErrc::job_failed, "aggregator: " + what);
    abort_run(self, err);
    return err;
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (s.over) return;
    for (std::size_t id = 0; id < s.cfg.clients.size(); ++id) {
      if (s.cfg.clients[id].address() != dm.source) continue;
      const std::string why = describe_error(dm.reason);
      const int client = static_cast<int>(id);
      if (s.cfg.on_node_lost && dm.reason == caf::exit_reason::remote_link_unreachable)
        return stop_for_lost_node(self, client, why);
      respawn_client(self, client, why);
      client_failed(self, client, why);
      if (!s.lost.count(client)) continue;
      // Requests in flight to a lost client would only end at their timeout: settle them now.
      if (s.eval_waiting.erase(client)) {
        spdlog::warn("{}: round {}: client {} did not evaluate: {}", s.cfg.run, s.r.round, client, why);
        if (s.eval_waiting.empty()) finish_round(self);
      }
      if (s.snapshot_waiting.erase(client) && s.snapshot_waiting.empty()) next_round_or_done(self);
    }
  });
  return {
      [self](start_atom) -> caf::result<RunDone> {
        auto& s = self->state;
        s.done = self->make_response_promise<RunDone>();
        if (s.over) {
          // The interrupt came first (the signal arrived while the run was being set up): its
          // abort had no promise to answer, so this one is answered now, or the driver would
          // wait forever.
          s.done.deliver(s.stop_error ? s.stop_error
                                      : make_engine_error(EngineErrc::interrupted, "interrupted before the run started"));
          return s.done;
        }
        s.r.round = s.cfg.resume_from.round;
        if (s.r.round > 0) {
          // Resumed: the rounds up to this one are on disk; go on with the next.
          spdlog::info("{}: resuming after round {} of {}", s.cfg.run, s.r.round, s.cfg.federation.rounds);
          advance(self);
          return s.done;
        }
        s.round_started = clock_type::now();
        s.r.selected.clear();
        s.r.updates.clear();
        s.r.result = RoundAggregate{};
        evaluate_all(self);
        return s.done;
      },
      [self](rejoin_atom, std::vector<int>& ids, std::vector<client_actor>& actors) {
        auto& s = self->state;
        if (s.over || ids.size() != actors.size()) return;
        std::vector<int> back;
        for (std::size_t i = 0; i < ids.size(); ++i) {
          const int id = ids[i];
          if (id < 0 || id >= static_cast<int>(s.cfg.clients.size()) || !actors[i]) continue;
          s.cfg.clients[static_cast<std::size_t>(id)] = actors[i];
          self->monitor(actors[i]);
          s.lost.erase(id);
          back.push_back(id);
        }
        spdlog::info("{}: round {}: clients {} are back on a node that rejoined: asked again from the next round, "
                     "from their starting state and the current global", s.cfg.run, s.r.round, join(back));
      },
      // Not an exit message: a killed actor would leave the start request unanswered (CAF 0.17
      // drops an undelivered promise silently) and the driver waiting forever.
      [self](interrupt_atom) {
        abort_run(self, make_engine_error(EngineErrc::interrupted,
                                          "interrupted in round " + std::to_string(self->state.r.round)));
      },
  };
}

} // namespace aggregator_detail

aggregator_actor spawn_aggregator(caf::actor_system& system, AggregatorConfig config) {
  return system.spawn(aggregator_detail::aggregator, std::move(config));
}

} // namespace fedvlm
