// actors/aggregator_round_end.cpp — the end of a synchronous round as message handlers: evaluation, the round's report, the clients' states, the hand-off to the driver.
#include "actors/aggregator_actor.hpp"

#include "actors/aggregator_state.hpp"
#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "fl/aggregation/round_aggregation.hpp"
#include "fl/federation/round.hpp"
#include "fl/runtime/random_streams.hpp"
#include "fl/results/client_checkpoint.hpp"
#include "fl/results/incremental_checkpoint.hpp"
#include "fl/runtime/interrupt.hpp"
#include "support/join.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <set>

namespace fedvlm {
namespace aggregator_detail {

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

namespace {
/// Whether idle clients' kept states take this round's download when next read (bring_up_to_date)
/// rather than now: where downloads replace whole tensors and every client gets the same one.
bool merges_later(const aggregator_state& st) { return defers_downloads(st) && st.r.result.personal.empty(); }

/// What the driver is handed after the round: every client's state the first time (and
/// wherever the server merged every download itself), afterwards only the clients asked for
/// their state and the download the others merged (the broadcast: empty without quorum).
RoundStateChange round_state_change(aggregator_state& st) {
  const bool partial = st.handed_whole && merges_later(st) && st.lost.empty();
  RoundStateChange change;
  change.whole = !partial;
  if (!partial) {
    for (std::size_t id = 0; id < st.progress.states.size(); ++id) bring_up_to_date(st, static_cast<int>(id));
    change.state = round_checkpoint(st.cfg, st.progress, st.r.round, st.cfg.resume_from.config_hash, !st.cfg.clients_keep_state);
    st.handed_whole = !st.cfg.clients_keep_state;
    return change;
  }
  change.state = round_checkpoint(st.cfg, st.progress, st.r.round, st.cfg.resume_from.config_hash, false);
  for (const int id : st.changed) change.state.clients.push_back(st.progress.states[static_cast<std::size_t>(id)]);
  change.download = st.r.result.broadcast;
  change.clients = st.progress.states.size();
  return change;
}
} // namespace

/// The round's state is complete: hand it to the driver (adapters, checkpoint), then go on.
void next_round_or_done(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.over) return;
  if (st.cfg.clients_keep_state && st.saved_round != st.r.round &&
      checkpoint_due(st.r.round, st.cfg.node_save_every, st.cfg.federation.rounds))
    return save_on_nodes(self);
  if (st.r.round > 0 && st.cfg.on_round_state) {
    try {
      st.cfg.on_round_state(round_state_change(st));
    } catch (const std::exception& e) {
      abort_run(self, make_engine_error(EngineErrc::job_failed,
                                        "saving the state after round " + std::to_string(st.r.round) + " failed: " + e.what()));
      return;
    }
  }
  advance(self);
}

namespace {
/// Merges `download` into client `id`'s kept state, as the client merged it.
void merge_into_state(aggregator_state& st, int id, const TensorMap& download) {
  ClientCheckpoint& slot = st.progress.states[static_cast<std::size_t>(id)];
  const StrategySpec spec = spec_in_round(strategy_spec(st.cfg.strategy), std::max(st.r.round, 1));
  if (apply_download(spec, slot.adapters, download, job_seed(st.cfg.seed, id, st.r.round, Stream::adapter_init)))
    slot.optimizer_state.clear();
}
} // namespace

void bring_up_to_date(aggregator_state& st, int id) {
  const auto k = static_cast<std::size_t>(id);
  if (id < 0 || k >= st.server_behind.size() || !st.server_behind[k]) return;
  st.server_behind[k] = 0;
  merge_into_state(st, id, st.server_download);
}

/// Every client's private state after the round, for checkpoints, adapters/ and respawns: asked
/// of those whose state changed beyond the download (or is not known), merged here for the rest.
void collect_states(aggregator_actor_t self) {
  auto& st = self->state;
  if (st.r.round == 0) {
    next_round_or_done(self);
    return;
  }
  std::vector<std::pair<int, client_actor>> targets;
  const bool ask_all = st.cfg.collect_every_state || is_async(st);
  std::vector<int> trained = st.r.selected;
  std::sort(trained.begin(), trained.end());
  // Where downloads replace whole tensors, an idle client's kept state merges the download
  // when it is next read (a round costs its participants, not the population).
  const bool lazy = merges_later(st);
  const TensorMap& download = st.r.result.broadcast;
  st.changed.clear();
  for (std::size_t k = 0; k < st.cfg.clients.size() && !st.cfg.clients_keep_state; ++k) {
    const int id = static_cast<int>(k);
    if (!st.lost.empty() && st.lost.count(id)) continue;
    if (ask_all || !st.merged[k] || std::binary_search(trained.begin(), trained.end(), id) ||
        (!st.respawned.empty() && st.respawned.count(id))) {
      bring_up_to_date(st, id); // what it keeps should its answer not come
      targets.emplace_back(id, st.cfg.clients[k]);
      st.changed.push_back(id);
    } else if (lazy) {
      if (!download.empty()) st.server_behind[k] = 1;
    } else {
      bring_up_to_date(st, id);
      merge_into_state(st, id, st.r.result.download_for(id));
    }
  }
  if (lazy && !download.empty()) st.server_download = download;
  st.respawned.clear();
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
              slot.residual = std::move(snap.residual);
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
void score_global(aggregator_actor_t self);

/// evaluation.holdout_clients: the scheduler scores each new client (global tensors, fresh
/// private ones) before and after adapting; then the global model.
void score_holdout(aggregator_actor_t self) {
  auto& st = self->state;
  st.holdout_scores.clear();
  st.holdout_waiting.clear();
  if (st.cfg.holdout.empty() || !holdout_due(st.r.round, st.cfg.holdout_every, st.cfg.federation.rounds))
    return score_global(self);
  for (const HoldoutClient& h : st.cfg.holdout) st.holdout_waiting.insert(h.settings.id);
  const int round = st.r.round;
  for (const HoldoutClient& h : st.cfg.holdout) {
    const int id = h.settings.id;
    self->request(st.cfg.scheduler, caf::infinite, newcomer_job(h, st.progress.global, st.cfg.adapt_steps, round))
        .then(
            [self, id, round](NewcomerScore& score) {
              auto& s = self->state;
              if (s.r.round != round || !s.holdout_waiting.erase(id)) return;
              s.holdout_scores.push_back(std::move(score));
              if (s.holdout_waiting.empty()) score_global(self);
            },
            [self, id, round](caf::error& err) {
              auto& s = self->state;
              if (stops_the_run(err)) return abort_run(self, err);
              if (s.r.round != round || !s.holdout_waiting.erase(id)) return;
              spdlog::warn("{}: round {}: holdout client {} was not scored: {}", s.cfg.run, round, id, describe_error(err));
              if (s.holdout_waiting.empty()) score_global(self);
            });
  }
}

/// The round's evaluations are in: score the holdout clients and the global model too where
/// asked, then report.
void finish_round(aggregator_actor_t self) {
  if (self->state.over) return;
  score_holdout(self);
}

void score_global(aggregator_actor_t self) {
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
  summarize_holdout(st.holdout_scores, sum);
  for (const ClientRoundRecord& rec : records) st.bytes_total += rec.bytes_up + rec.bytes_down;
  st.bytes_total += st.r.unrecorded_bytes_down; // downloads of clients outside evaluation.clients_sample
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

/// Whether a round's download may wait for the clients it does not evaluate (clients_sample):
/// when every download replaces the shared tensors whole (FedAvg of whole tensors, the same in
/// every round, one rank for all, no fresh adapters), the newest download alone brings a client
/// up to date, so only the clients that train or are evaluated are sent anything.
bool defers_downloads(const aggregator_state& st) {
  if (is_async(st) || is_central(st) || st.cfg.clients_keep_state || st.cfg.collect_every_state) return false;
  const StrategySpec& spec = strategy_spec(st.cfg.strategy);
  const StrategySpec first = spec_in_round(spec, 1), second = spec_in_round(spec, 2);
  const bool same_every_round = first.share_a == second.share_a && first.share_b == second.share_b;
  const bool one_rank = std::adjacent_find(st.cfg.client_ranks.begin(), st.cfg.client_ranks.end(),
                                           std::not_equal_to<>()) == st.cfg.client_ranks.end();
  return spec.rule == AggregationRule::average && !spec.fresh_adapters && same_every_round && one_rank;
}

/// Sends every client its download for evaluation (or, where downloads are deferred, the
/// clients it evaluates); finish_round once all have answered or failed.
void evaluate_all(aggregator_actor_t self) {
  auto& st = self->state;
  st.r.evals.clear();
  st.r.unrecorded_bytes_down = 0;
  st.eval_waiting.clear();
  std::fill(st.merged.begin(), st.merged.end(), 0);
  const int clients = static_cast<int>(st.cfg.clients.size());
  // Every client gets the round's download (pLoRA's B_g changes every model); those outside
  // evaluation.clients_sample only merge it, now or, deferred, before they next train.
  const std::vector<int> scored = clients_to_evaluate(st.cfg, st.r, clients, st.lost);
  const bool defer = defers_downloads(st) && scored.size() < static_cast<std::size_t>(clients);
  const bool download_empty = st.r.result.broadcast.empty() && st.r.result.personal.empty();
  if (defer && !download_empty) {
    st.deferred.round = st.r.round;
    st.deferred.tensors = st.r.result.broadcast;
    st.deferred.bytes = static_cast<int64_t>(tensor_map_bytes(st.deferred.tensors));
    st.deferred.evaluate = false;
  }
  for (int id = 0; id < clients; ++id) {
    if (!st.lost.empty() && st.lost.count(id)) continue;
    if (defer && !std::binary_search(scored.begin(), scored.end(), id)) {
      // Counted as downloaded, as if sent now: the files are those of a run that sends it.
      st.r.unrecorded_bytes_down += download_empty ? 0 : st.deferred.bytes;
      if (!download_empty) st.stale[static_cast<std::size_t>(id)] = 1;
      st.merged[static_cast<std::size_t>(id)] = 1;
      continue;
    }
    st.stale[static_cast<std::size_t>(id)] = 0; // this round's download supersedes any deferred one
    st.eval_waiting.insert(id);
  }
  if (st.eval_waiting.empty()) return finish_round(self);
  const int round = st.r.round;
  const std::set<int> targets = st.eval_waiting;
  for (int id : targets) {
    GlobalDown down;
    down.round = st.r.round;
    down.tensors = st.r.result.download_for(id);
    down.bytes = static_cast<int64_t>(tensor_map_bytes(down.tensors));
    down.evaluate = std::binary_search(scored.begin(), scored.end(), id);
    self->request(st.cfg.clients[static_cast<std::size_t>(id)], timeout_of(st.cfg), eval_atom::value, std::move(down))
        .then(
            [self, id, round](ClientEval& ev) {
              auto& s = self->state;
              if (s.r.round != round || !s.eval_waiting.erase(id)) return;
              s.merged[static_cast<std::size_t>(id)] = 1;
              if (ev.evaluated) s.r.evals.emplace(ev.client, std::move(ev));
              else s.r.unrecorded_bytes_down += s.r.result.bytes_for(id);
              if (s.eval_waiting.empty()) finish_round(self);
            },
            [self, id, round](caf::error& err) {
              auto& s = self->state;
              if (stops_the_run(err)) return abort_run(self, err);
              if (node_gone(s.cfg, err)) return stop_for_lost_node(self, static_cast<int>(id), describe_error(err));
              if (s.r.round != round || !s.eval_waiting.erase(static_cast<int>(id))) return;
              spdlog::warn("{}: round {}: client {} did not evaluate: {}", s.cfg.run, s.r.round, id, describe_error(err));
              if (s.eval_waiting.empty()) finish_round(self);
            });
  }
}

} // namespace aggregator_detail
} // namespace fedvlm
