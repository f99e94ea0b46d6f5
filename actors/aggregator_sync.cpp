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

namespace fedvlm {
namespace aggregator_detail {

std::chrono::milliseconds timeout_of(const AggregatorConfig& cfg) {
  return std::chrono::milliseconds(static_cast<int64_t>(cfg.federation.round_timeout_s * 1000.0));
}

bool is_central(const aggregator_state& st) { return strategy_spec(st.cfg.strategy).centralized; }
bool is_async(const aggregator_state& st) { return st.cfg.federation.mode == FederationMode::async; }

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
  st.cfg.clients[k] = st.cfg.respawn(id, st.progress.states[k]);
  self->monitor(st.cfg.clients[k]);
}

void finish_training_if_complete(aggregator_actor_t self);

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
  st.summary.global = tensor_map_clone(st.progress.global);
  if (!st.cfg.clients_keep_state)
    for (const auto& s : st.progress.states) st.summary.adapters.push_back(tensor_map_clone(s.adapters));
  st.done.deliver(st.summary);
}

void next_round_or_done(aggregator_actor_t self);

/// Clients on nodes (serve): each saves its own state after the round in its node's directory;
/// then the round goes on (a client that could not is said in the log: a resume refuses its node).
void save_on_nodes(aggregator_actor_t self) {
  auto& st = self->state;
  st.saved_round = st.r.round;
  st.save_waiting.clear();
  for (std::size_t id = 0; id < st.cfg.clients.size(); ++id)
    if (!st.lost.count(static_cast<int>(id))) st.save_waiting.insert(static_cast<int>(id));
  if (st.save_waiting.empty()) return next_round_or_done(self);
  const int round = st.r.round;
  const auto settle = [self, round](int id, const std::string& why) {
    auto& s = self->state;
    if (s.r.round != round || !s.save_waiting.erase(id)) return;
    if (!why.empty() && s.unsaved_said.insert(id).second)
      spdlog::warn("{}: round {}: client {} did not save its state on its node ({}): a resume from this round "
                   "or a later one refuses its node (said once)", s.cfg.run, round, id, why);
    if (s.save_waiting.empty()) next_round_or_done(self);
  };
  const std::set<int> ids = st.save_waiting;
  for (int id : ids)
    self->request(st.cfg.clients[static_cast<std::size_t>(id)], timeout_of(st.cfg), save_atom::value, round)
        .then([settle, id](bool saved) { settle(id, saved ? "" : "the node runs without --state"); },
              [settle, id](caf::error& err) { settle(id, describe_error(err)); });
}

/// The round's state is complete: hand it to the driver (adapters, checkpoint), then go on.
void next_round_or_done(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.over) return;
  if (st.cfg.clients_keep_state && st.saved_round != st.r.round &&
      checkpoint_due(st.r.round, st.cfg.node_save_every, st.cfg.federation.rounds))
    return save_on_nodes(self);
  if (st.r.round > 0 && st.cfg.on_round_state) {
    try {
      st.cfg.on_round_state(round_checkpoint(st.cfg, st.progress, st.r.round, st.cfg.resume_from.config_hash,
                                            !st.cfg.clients_keep_state));
    } catch (const std::exception& e) {
      abort_run(self, make_engine_error(EngineErrc::job_failed,
                                        "saving the state after round " + std::to_string(st.r.round) + " failed: " + e.what()));
      return;
    }
  }
  advance(self);
}

/// Every client's private state after the round, for checkpoints, adapters/ and respawns.
void collect_states(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.r.round == 0) {
    next_round_or_done(self);
    return;
  }
  std::vector<std::pair<int, client_actor>> targets;
  for (std::size_t id = 0; id < st.cfg.clients.size() && !st.cfg.clients_keep_state; ++id)
    if (!st.lost.count(static_cast<int>(id))) targets.emplace_back(static_cast<int>(id), st.cfg.clients[id]);
  if (is_central(st)) targets.emplace_back(-1, st.cfg.central_trainer);
  st.snapshot_waiting.clear();
  for (const auto& [id, target] : targets) st.snapshot_waiting.insert(id);
  if (targets.empty()) return next_round_or_done(self);
  const int round = st.r.round;
  for (const auto& [id, target] : targets) {
    self->request(target, timeout_of(st.cfg), snapshot_atom::value)
        .then(
            [self, id = id, round](AdapterSnapshot& snap) {
              auto& s = self->state;
              if (s.r.round != round || !s.snapshot_waiting.erase(id)) return;
              ClientCheckpoint& slot = id < 0 ? s.progress.central_state : s.progress.states[static_cast<std::size_t>(id)];
              // What did not change stays the tensor held before (or the global's): held once,
              // and the checkpoint sees at a glance what to leave out.
              share_unchanged(snap.adapters, slot.adapters, &s.progress.global);
              share_unchanged(snap.optimizer_state, slot.optimizer_state, nullptr);
              slot.adapters = std::move(snap.adapters);
              slot.optimizer_state = std::move(snap.optimizer_state);
              if (s.snapshot_waiting.empty()) next_round_or_done(self);
            },
            [self, id = id, round](caf::error& err) {
              auto& s = self->state;
              if (s.r.round != round || !s.snapshot_waiting.erase(id)) return;
              spdlog::warn("{}: round {}: no state from client {} ({}): keeping its previous one", s.cfg.run,
                           s.r.round, id, describe_error(err));
              if (s.snapshot_waiting.empty()) next_round_or_done(self);
            });
  }
}

void report_round(aggregator_actor_t self, const EvalResult* global_eval);

/// The round's evaluations are in: score the global model too where asked, then report.
void finish_round(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.over) return;
  if (st.cfg.global_test.empty()) return report_round(self, nullptr);
  EvalJobMsg msg;
  msg.client = -1;
  msg.round = st.r.round;
  msg.adapters = st.cfg.global_template;
  for (const auto& [name, t] : st.progress.global) msg.adapters[name] = t;
  msg.indices = st.cfg.global_test;
  self->request(st.cfg.scheduler, caf::infinite, std::move(msg))
      .then([self](EvalResult& r) { report_round(self, &r); },
            [self](caf::error& err) {
              if (stops_the_run(err)) return abort_run(self, err);
              spdlog::warn("{}: round {}: the global model was not scored: {}", self->state.cfg.run, self->state.r.round,
                           describe_error(err));
              report_round(self, nullptr);
            });
}

void report_round(aggregator_actor_t self, const EvalResult* global_eval) {
  auto& st = self->state;
  if (st.over) return;
  const double seconds = std::chrono::duration<double>(clock_type::now() - st.round_started).count();
  std::vector<ClientRoundRecord> records;
  for (const auto& [id, ev] : st.r.evals) {
    records.push_back(client_record(st.cfg, st.r, ev, seconds));
    if (st.cfg.observer) st.cfg.observer->client_evaluated(records.back());
  }
  const double before = st.virtual_now;
  if (st.async) st.virtual_now = st.async->now();
  else if (!is_async(st) && st.r.round > 0) st.virtual_now += st.r.virtual_duration;
  const std::optional<double> virtual_now = st.async || !is_async(st) ? std::optional<double>(st.virtual_now) : std::nullopt;
  RoundSummary sum = round_summary(st.cfg, st.r, records, global_eval, seconds, virtual_now);
  for (const ClientRoundRecord& rec : records) st.bytes_total += rec.bytes_up + rec.bytes_down;
  sum.cumulative_bytes = st.bytes_total;
  if (virtual_now) sum.round_virtual_seconds = st.virtual_now - before;
  if (st.cfg.wire_meter) {
    const WireBytes wire = st.cfg.wire_meter();
    sum.wire_bytes_sent = wire.sent;
    sum.wire_bytes_received = wire.received;
  }
  if (st.target && st.target->record(sum))
    spdlog::info("{}: round {}: the {} accuracy reached evaluation.target_accuracy = {} at round {:.2f}", st.cfg.run,
                 sum.round, st.target->watches_global() ? "global test" : "mean client", st.target->target(),
                 st.target->reached_at());
  if (st.cfg.observer) st.cfg.observer->round_finished(sum);
  if (st.r.round > 0) st.progress.rounds_completed = st.r.round;
  collect_states(self);
}

/// Sends every client its download for evaluation; finish_round once all have answered or failed.
void evaluate_all(aggregator_actor_t self) {
  auto& st = self->state;
  st.r.evals.clear();
  st.eval_waiting.clear();
  for (int id = 0; id < static_cast<int>(st.cfg.clients.size()); ++id)
    if (!st.lost.count(id)) st.eval_waiting.insert(id);
  if (st.eval_waiting.empty()) return finish_round(self);
  const int round = st.r.round;
  for (std::size_t id = 0; id < st.cfg.clients.size(); ++id) {
    if (st.lost.count(static_cast<int>(id))) continue;
    GlobalDown down;
    down.round = st.r.round;
    down.tensors = st.r.result.download_for(static_cast<int>(id));
    down.bytes = static_cast<int64_t>(tensor_map_bytes(down.tensors));
    self->request(st.cfg.clients[id], timeout_of(st.cfg), eval_atom::value, std::move(down))
        .then(
            [self, id, round](ClientEval& ev) {
              auto& s = self->state;
              if (s.r.round != round || !s.eval_waiting.erase(static_cast<int>(id))) return;
              s.r.evals.emplace(ev.client, std::move(ev));
              if (s.eval_waiting.empty()) finish_round(self);
            },
            [self, id, round](caf::error& err) {
              auto& s = self->state;
              if (stops_the_run(err)) return abort_run(self, err);
              if (s.r.round != round || !s.eval_waiting.erase(static_cast<int>(id))) return;
              spdlog::warn("{}: round {}: client {} did not evaluate: {}", s.cfg.run, s.r.round, id, describe_error(err));
              if (s.eval_waiting.empty()) finish_round(self);
            });
  }
}

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
          s.done.deliver(make_engine_error(EngineErrc::interrupted, "interrupted before the run started"));
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
