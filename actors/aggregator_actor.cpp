// actors/aggregator_actor.cpp — the round loop as message handlers; averaging is fl/aggregation/aggregate.
#include "actors/aggregator_actor.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "fl/aggregation/aggregate.hpp"
#include "fl/aggregation/aggregation_error.hpp"
#include "fl/federation/async_federation.hpp"
#include "fl/federation/client_faults.hpp"
#include "fl/privacy/differential_privacy.hpp"
#include "fl/runtime/interrupt.hpp"
#include "fl/privacy/privacy_budget.hpp"
#include "fl/runtime/random_streams.hpp"
#include "fl/results/record_fields.hpp"
#include "fl/aggregation/round_aggregation.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <set>

namespace fedvlm {

std::vector<int> select_clients(int clients, int per_round, uint64_t seed, int round) {
  std::vector<int> ids(static_cast<std::size_t>(clients));
  std::iota(ids.begin(), ids.end(), 0);
  if (per_round <= 0 || per_round >= clients) return ids;
  std::mt19937_64 rng(job_seed(seed, -1, round, Stream::selection));
  for (std::size_t i = ids.size() - 1; i > 0; --i) {
    std::uniform_int_distribution<std::size_t> pick(0, i);
    std::swap(ids[i], ids[pick(rng)]);
  }
  ids.resize(static_cast<std::size_t>(per_round));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::size_t quorum_needed(std::size_t selected, double quorum) {
  const auto n = static_cast<std::size_t>(std::ceil(quorum * static_cast<double>(selected) - 1e-9));
  return std::max<std::size_t>(1, n);
}

namespace {

using clock_type = std::chrono::steady_clock;

struct aggregator_state {
  AggregatorConfig cfg;
  caf::typed_response_promise<RunDone> done;
  bool over = false; ///< RunDone or an error was delivered: ignore late answers
  RunDone summary;
  TensorMap global;
  std::vector<ClientCheckpoint> states; ///< each client's state after the last finished round
  ClientCheckpoint central_state;
  std::vector<int> crashes;
  /// Clients down for good (their node was lost, nothing to respawn them): asked nothing more,
  /// counted failed at once instead of after a request timeout each round.
  std::set<int> lost;
  // -- the round in flight ---------------------------------------------------
  int round = 0;
  bool training = false;
  clock_type::time_point round_started;
  std::vector<int> selected;
  std::map<int, ClientUpdate> updates;
  std::set<int> failed;
  std::map<int, ClientEval> evals;
  std::set<int> eval_waiting; ///< clients asked to evaluate this round that have not answered
  RoundAggregate result; ///< the round's aggregation: what each client downloads
  AggregationMeasure measure;
  std::set<int> snapshot_waiting; ///< clients asked for their state that have not answered
  // -- asynchronous mode -------------------------------------------------------
  std::unique_ptr<ClientClock> clock;
  AsyncTimeline timeline;
  std::vector<int> jobs_started;                   ///< per client
  std::map<std::pair<int, int>, std::optional<ClientUpdate>> arrived; ///< (client, job) → update, or none (failed)
  std::map<int, TensorMap> base;                   ///< the global each client's job started from
  struct Committed {
    ClientUpdate update;
    TensorMap base;
    int staleness = 0;
  };
  std::vector<Committed> buffer;
  std::set<int> idle;                              ///< clients not training (concurrency < clients)
  int64_t commits = 0;
  int version = 0; ///< aggregations so far: the global's version
  static inline const char* name = "fedvlm.aggregator";
};

using aggregator_actor_t = caf::stateful_actor<aggregator_state>;

std::chrono::milliseconds timeout_of(const AggregatorConfig& cfg) {
  return std::chrono::milliseconds(static_cast<int64_t>(cfg.federation.round_timeout_s * 1000.0));
}

bool is_timeout(const caf::error& err) {
  return err.category() == caf::atom("system") && err.code() == static_cast<uint8_t>(caf::sec::request_timeout);
}

/// A job that failed for real (non-finite loss, an exception) or saw a stop signal: the round
/// must not be reported as if those clients had merely failed.
bool stops_the_run(const caf::error& err) {
  const uint8_t code = engine_error_code(err);
  return code == static_cast<uint8_t>(EngineErrc::non_finite_loss) || code == static_cast<uint8_t>(EngineErrc::job_failed) ||
         code == static_cast<uint8_t>(EngineErrc::interrupted);
}

/// Normalised FedAvg weights of this round's updates, in ascending client order (as aggregate()).
std::vector<double> aggregation_weights(const aggregator_state& st) {
  int64_t total = 0;
  for (const auto& [id, up] : st.updates) total += up.samples;
  std::vector<double> w;
  for (const auto& [id, up] : st.updates)
    w.push_back(fedavg_weight(up.samples, total, st.updates.size(), st.cfg.federation.weighting));
  return w;
}

bool is_central(const aggregator_state& st) { return strategy_spec(st.cfg.strategy).centralized; }
bool is_async(const aggregator_state& st) { return st.cfg.federation.mode == FederationMode::async; }
void async_round(aggregator_actor_t* self);

void train_round(aggregator_actor_t* self, int round);

/// Ends the run with `err`: a job failed for real, or the state could not be saved.
void abort_run(aggregator_actor_t* self, caf::error err) {
  auto& st = self->state;
  if (st.over) return;
  st.over = true;
  if (engine_error_code(err) == static_cast<uint8_t>(EngineErrc::interrupted))
    spdlog::warn("{}: round {}: stopping the run: {}", st.cfg.run, st.round, describe_error(err));
  else
    spdlog::error("{}: round {}: stopping the run: {}", st.cfg.run, st.round, describe_error(err));
  st.done.deliver(std::move(err));
}

/// A client actor died: put a new one in its place, from its state after the last finished round.
void respawn_client(aggregator_actor_t* self, int id, const std::string& reason) {
  auto& st = self->state;
  const auto k = static_cast<std::size_t>(id);
  ++st.crashes[k];
  if (!st.cfg.respawn) {
    spdlog::warn("{}: round {}: client {} is down ({}): left out until a node takes it back", st.cfg.run, st.round,
                 id, reason);
    st.lost.insert(id);
    return;
  }
  spdlog::warn("{}: round {}: client {} crashed ({}): respawned from its state after round {}", st.cfg.run,
               st.round, id, reason, st.summary.rounds_completed);
  st.cfg.clients[k] = st.cfg.respawn(id, st.states[k]);
  self->monitor(st.cfg.clients[k]);
}

void finish_training_if_complete(aggregator_actor_t* self);

/// One selected client will not send an update this round.
void client_failed(aggregator_actor_t* self, int id, const std::string& why) {
  auto& st = self->state;
  if (!st.training || st.updates.count(id) || !st.failed.insert(id).second) return;
  spdlog::warn("{}: round {}: client {} left out of this round: {}", st.cfg.run, st.round, id, why);
  finish_training_if_complete(self);
}

RunCheckpoint current_checkpoint(const aggregator_state& st) {
  RunCheckpoint ck;
  ck.run = st.cfg.run;
  ck.config_hash = st.cfg.resume_from.config_hash;
  ck.round = st.round;
  ck.total_rounds = st.cfg.federation.rounds;
  ck.rounds_without_quorum = st.summary.rounds_without_quorum;
  ck.global = st.global;
  if (is_central(st)) ck.clients.push_back(st.central_state);
  if (!st.cfg.clients_keep_state) ck.clients.insert(ck.clients.end(), st.states.begin(), st.states.end());
  ck.crashes = st.crashes;
  return ck;
}

/// The next round, or RunDone after the last (or before a round that would exceed the privacy budget).
void advance(aggregator_actor_t* self) {
  auto& st = self->state;
  if (st.over) return;
  const int last_allowed = rounds_within_budget(st.cfg.privacy, st.cfg.federation);
  if (st.round < st.cfg.federation.rounds && st.round >= last_allowed) {
    st.summary.note = "stopped after round " + std::to_string(st.round) + " of " + std::to_string(st.cfg.federation.rounds) +
                      ": round " + std::to_string(st.round + 1) + " would spend epsilon = " +
                      std::to_string(epsilon_after_rounds(st.cfg.privacy, st.cfg.federation, st.round + 1)) +
                      " > privacy.target_epsilon = " + std::to_string(st.cfg.privacy.target_epsilon);
    spdlog::warn("{}: {}", st.cfg.run, st.summary.note);
  } else if (st.round < st.cfg.federation.rounds) {
    if (is_async(st)) async_round(self);
    else train_round(self, st.round + 1);
    return;
  }
  st.over = true;
  st.summary.global = tensor_map_clone(st.global);
  if (!st.cfg.clients_keep_state)
    for (const auto& s : st.states) st.summary.adapters.push_back(tensor_map_clone(s.adapters));
  st.done.deliver(st.summary);
}

/// The round's state is complete: hand it to the driver (adapters, checkpoint), then go on.
void next_round_or_done(aggregator_actor_t* self) {
  auto& st = self->state;
  if (st.over) return;
  if (st.round > 0 && st.cfg.on_round_state) {
    try {
      st.cfg.on_round_state(current_checkpoint(st));
    } catch (const std::exception& e) {
      abort_run(self, make_engine_error(EngineErrc::job_failed,
                                        "saving the state after round " + std::to_string(st.round) + " failed: " + e.what()));
      return;
    }
  }
  advance(self);
}

/// Every client's private state after the round, for checkpoints, adapters/ and respawns.
void collect_states(aggregator_actor_t* self) {
  auto& st = self->state;
  if (st.round == 0) {
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
  const int round = st.round;
  for (const auto& [id, target] : targets) {
    self->request(target, timeout_of(st.cfg), snapshot_atom::value)
        .then(
            [self, id = id, round](AdapterSnapshot& snap) {
              auto& s = self->state;
              if (s.round != round || !s.snapshot_waiting.erase(id)) return;
              ClientCheckpoint& slot = id < 0 ? s.central_state : s.states[static_cast<std::size_t>(id)];
              slot.adapters = std::move(snap.adapters);
              slot.optimizer_state = std::move(snap.optimizer_state);
              if (s.snapshot_waiting.empty()) next_round_or_done(self);
            },
            [self, id = id, round](caf::error& err) {
              auto& s = self->state;
              if (s.round != round || !s.snapshot_waiting.erase(id)) return;
              spdlog::warn("{}: round {}: no state from client {} ({}): keeping its previous one", s.cfg.run,
                           s.round, id, describe_error(err));
              if (s.snapshot_waiting.empty()) next_round_or_done(self);
            });
  }
}

ClientRoundRecord client_record(const aggregator_state& st, const ClientEval& ev, double seconds) {
  ClientRoundRecord r;
  r.run = st.cfg.run;
  r.strategy = to_string(st.cfg.strategy);
  r.client = ev.client;
  r.round = st.round;
  r.phase = st.round == 0 ? kPhaseBefore : kPhaseRound;
  r.accuracy = ev.result.metrics.accuracy;
  r.precision = ev.result.metrics.macro_precision;
  r.recall = ev.result.metrics.macro_recall;
  r.f1 = ev.result.metrics.macro_f1;
  r.loss = ev.result.loss;
  if (ev.test_samples == 0) // no local test split (data.test_fraction = 0): nothing was measured
    r.accuracy = r.precision = r.recall = r.f1 = r.loss = std::numeric_limits<double>::quiet_NaN();
  for (const auto& [name, value] : ev.result.task_metrics) {
    if (!valid_task_metric_name(name)) // a task's bug: its files would be unreadable
      throw std::logic_error("task metric name '" + name + "': expected [a-z][a-z0-9_]*, not a record field's name");
    if (ev.test_samples > 0 && !std::isnan(value)) r.task_metrics[name] = value;
  }
  r.test_samples = ev.test_samples;
  r.train_samples = ev.train_samples;
  r.bytes_down = st.result.bytes_for(ev.client);
  r.round_seconds = seconds;
  if (auto it = st.updates.find(ev.client); it != st.updates.end()) {
    r.participated = true;
    r.bytes_up = it->second.bytes;
    r.train_loss = it->second.train_loss;
  }
  if (auto it = st.measure.drift_by_client.find(ev.client); it != st.measure.drift_by_client.end()) r.drift = it->second;
  else if (r.participated && std::isfinite(ev.drift)) r.drift = ev.drift; // measured on the client's node
  if (is_async(st)) {
    double total = 0;
    int n = 0;
    for (const auto& c : st.buffer)
      if (c.update.client == ev.client) {
        total += c.staleness;
        ++n;
      }
    if (n > 0) r.staleness = total / n;
  }
  return r;
}

void report_round(aggregator_actor_t* self, const EvalResult* global_eval);

/// The round's evaluations are in: score the global model too where asked, then report.
void finish_round(aggregator_actor_t* self) {
  auto& st = self->state;
  if (st.over) return;
  if (st.cfg.global_test.empty()) return report_round(self, nullptr);
  EvalJobMsg msg;
  msg.client = -1;
  msg.round = st.round;
  msg.adapters = st.cfg.global_template;
  for (const auto& [name, t] : st.global) msg.adapters[name] = t;
  msg.indices = st.cfg.global_test;
  self->request(st.cfg.scheduler, caf::infinite, std::move(msg))
      .then([self](EvalResult& r) { report_round(self, &r); },
            [self](caf::error& err) {
              if (stops_the_run(err)) return abort_run(self, err);
              spdlog::warn("{}: round {}: the global model was not scored: {}", self->state.cfg.run, self->state.round,
                           describe_error(err));
              report_round(self, nullptr);
            });
}

void report_round(aggregator_actor_t* self, const EvalResult* global_eval) {
  auto& st = self->state;
  if (st.over) return;
  const double seconds = std::chrono::duration<double>(clock_type::now() - st.round_started).count();
  RoundSummary sum;
  sum.run = st.cfg.run;
  sum.strategy = to_string(st.cfg.strategy);
  sum.round = st.round;
  sum.total_rounds = st.cfg.federation.rounds;
  sum.clients_selected = st.round == 0 ? 0 : static_cast<int>(st.selected.size());
  sum.clients_answered = static_cast<int>(st.updates.size());
  sum.clients_failed = static_cast<int>(st.failed.size());
  for (const auto& [id, up] : st.updates)
    if (up.delay_seconds > 0) ++sum.clients_late;
  sum.seconds = seconds;
  if (st.cfg.wire_meter) {
    const WireBytes wire = st.cfg.wire_meter();
    sum.wire_bytes_sent = wire.sent;
    sum.wire_bytes_received = wire.received;
  }
  sum.aggregation_error = st.measure.error;
  if (st.round > 0) sum.epsilon = epsilon_after_rounds(st.cfg.privacy, st.cfg.federation, st.round);
  sum.aggregation_error_by_layer = st.measure.error_by_layer;
  if (is_async(st) && st.round > 0) {
    sum.virtual_seconds = st.timeline.now();
    double total = 0, most = 0;
    for (const auto& c : st.buffer) {
      total += c.staleness;
      most = std::max<double>(most, c.staleness);
    }
    if (!st.buffer.empty()) {
      sum.mean_staleness = total / static_cast<double>(st.buffer.size());
      sum.max_staleness = most;
      sum.clients_selected = sum.clients_answered = static_cast<int>(st.buffer.size());
    }
  }
  if (global_eval != nullptr) {
    sum.global_accuracy = global_eval->metrics.accuracy;
    sum.global_loss = global_eval->loss;
  }
  double acc_sum = 0;
  int scored = 0;
  sum.min_accuracy = 1;
  sum.max_accuracy = 0;
  for (const auto& [id, ev] : st.evals) {
    const ClientRoundRecord r = client_record(st, ev, seconds);
    if (st.cfg.observer) st.cfg.observer->client_evaluated(r);
    if (r.test_samples == 0) continue; // data.test_fraction = 0: the global test scores the model
    acc_sum += r.accuracy;
    ++scored;
    sum.min_accuracy = std::min(sum.min_accuracy, r.accuracy);
    sum.max_accuracy = std::max(sum.max_accuracy, r.accuracy);
  }
  if (scored > 0) {
    sum.mean_accuracy = acc_sum / scored;
  } else {
    const double none = st.evals.empty() ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    sum.mean_accuracy = sum.min_accuracy = sum.max_accuracy = none;
  }
  if (st.cfg.observer) st.cfg.observer->round_finished(sum);
  if (st.round > 0) st.summary.rounds_completed = st.round;
  collect_states(self);
}

/// Sends every client its download for evaluation; finish_round once all have answered or failed.
void evaluate_all(aggregator_actor_t* self) {
  auto& st = self->state;
  st.evals.clear();
  st.eval_waiting.clear();
  for (int id = 0; id < static_cast<int>(st.cfg.clients.size()); ++id)
    if (!st.lost.count(id)) st.eval_waiting.insert(id);
  if (st.eval_waiting.empty()) return finish_round(self);
  const int round = st.round;
  for (std::size_t id = 0; id < st.cfg.clients.size(); ++id) {
    if (st.lost.count(static_cast<int>(id))) continue;
    GlobalDown down;
    down.round = st.round;
    down.tensors = st.result.download_for(static_cast<int>(id));
    down.bytes = static_cast<int64_t>(tensor_map_bytes(down.tensors));
    self->request(st.cfg.clients[id], timeout_of(st.cfg), eval_atom::value, std::move(down))
        .then(
            [self, id, round](ClientEval& ev) {
              auto& s = self->state;
              if (s.round != round || !s.eval_waiting.erase(static_cast<int>(id))) return;
              s.evals.emplace(ev.client, std::move(ev));
              if (s.eval_waiting.empty()) finish_round(self);
            },
            [self, id, round](caf::error& err) {
              auto& s = self->state;
              if (stops_the_run(err)) return abort_run(self, err);
              if (s.round != round || !s.eval_waiting.erase(static_cast<int>(id))) return;
              spdlog::warn("{}: round {}: client {} did not evaluate: {}", s.cfg.run, s.round, id, describe_error(err));
              if (s.eval_waiting.empty()) finish_round(self);
            });
  }
}

/// The aggregation rule of this round. Central DP: noise of std σ·C/K on the average of the K
/// updates that arrived (each moves the uniform average by at most C/K, so σ stays the ratio of
/// noise to sensitivity), from the round's own server-side stream.
RoundRule round_rule(const aggregator_state& st) {
  RoundRule rule;
  rule.spec = spec_in_round(strategy_spec(st.cfg.strategy), st.round);
  rule.weighting = st.cfg.federation.weighting;
  rule.lora_alpha = st.cfg.lora_alpha;
  rule.client_ranks = st.cfg.client_ranks;
  const PrivacySettings& p = st.cfg.privacy;
  if (p.accounted() && p.mode == PrivacyMode::central) {
    rule.noise_stddev = central_noise_stddev(p.noise_multiplier, p.clip_norm, static_cast<int>(st.updates.size()));
    rule.noise_seed = job_seed(st.cfg.seed, -1, st.round, Stream::privacy_noise);
  }
  return rule;
}

/// The aggregation error or each client's drift, with the aggregation's own weights.
AggregationMeasure measure_round(const aggregator_state& st) {
  const std::vector<double> weights = aggregation_weights(st);
  std::vector<TrainedClient> trained;
  std::size_t i = 0;
  for (const auto& [id, up] : st.updates) {
    if (!up.measured.empty()) trained.push_back({id, weights[i], &up.measured});
    ++i;
  }
  try {
    return measure_aggregation(spec_in_round(strategy_spec(st.cfg.strategy), st.round), trained, st.result, st.cfg.lora_alpha);
  } catch (const std::exception& e) {
    spdlog::warn("{}: round {}: aggregation error not measured: {}", st.cfg.run, st.round, e.what());
    return {};
  }
}

void close_training(aggregator_actor_t* self) {
  auto& st = self->state;
  st.training = false;
  st.result = RoundAggregate{};
  const std::size_t needed = quorum_needed(st.selected.size(), st.cfg.federation.quorum);
  if (st.updates.size() < needed) {
    ++st.summary.rounds_without_quorum;
    spdlog::warn("{}: round {}: {} of {} selected clients answered, quorum is {}: keeping the previous "
                 "global matrices",
                 st.cfg.run, st.round, st.updates.size(), st.selected.size(), needed);
  } else {
    std::vector<ClientContribution> parts;
    for (const auto& [id, up] : st.updates) parts.push_back({id, up.samples, &up.tensors});
    st.result = aggregate_round(round_rule(st), parts, st.global);
    st.global = st.result.global;
    st.measure = measure_round(st);
  }
  evaluate_all(self);
}

void finish_training_if_complete(aggregator_actor_t* self) {
  auto& st = self->state;
  if (st.training && st.updates.size() + st.failed.size() == st.selected.size()) close_training(self);
}

void train_round(aggregator_actor_t* self, int round) {
  auto& st = self->state;
  if (interrupt_requested())
    return abort_run(self, make_engine_error(EngineErrc::interrupted, "interrupted before round " + std::to_string(round)));
  st.round = round;
  st.training = true;
  st.round_started = clock_type::now();
  st.updates.clear();
  st.failed.clear();
  st.measure = AggregationMeasure{};
  if (st.cfg.observer) st.cfg.observer->round_started(st.cfg.run, round, st.cfg.federation.rounds);
  const bool central = is_central(st);
  st.selected = central ? std::vector<int>{-1}
                        : select_clients(static_cast<int>(st.cfg.clients.size()),
                                         st.cfg.federation.clients_per_round, st.cfg.seed, round);
  if (!central) { // who will send a training job: the scheduler groups them in this order
    std::vector<int> plan;
    for (int id : st.selected) {
      const ClientRoundFaults f = draw_client_faults(st.cfg.faults, st.cfg.seed, id, round);
      if (!f.crashes && !f.fails && !f.drops_out && !st.lost.count(id)) plan.push_back(id);
    }
    self->send(st.cfg.scheduler, plan_atom::value, round, std::move(plan));
  }
  for (int id : st.selected) {
    if (st.lost.count(id)) {
      client_failed(self, id, "down since an earlier round (its node was lost)");
      continue;
    }
    const client_actor target = central ? st.cfg.central_trainer : st.cfg.clients[static_cast<std::size_t>(id)];
    self->request(target, timeout_of(st.cfg), train_atom::value, round)
        .then(
            [self, round](ClientUpdate& up) {
              auto& s = self->state;
              if (s.over || !s.training || s.round != round || s.failed.count(up.client)) return;
              if (s.cfg.observer) s.cfg.observer->client_finished_training(s.cfg.run, round, up.client);
              s.updates.emplace(up.client, std::move(up));
              finish_training_if_complete(self);
            },
            [self, id, round, target](caf::error& err) {
              auto& s = self->state;
              if (s.over || s.round != round) return;
              if (stops_the_run(err)) return abort_run(self, err);
              const uint8_t code = engine_error_code(err);
              // Not one of ours and not a timeout: the client's actor died. Respawn it now, so
              // it is back before this round's evaluation.
              if (code == 0 && !is_timeout(err) && id >= 0 &&
                  s.cfg.clients[static_cast<std::size_t>(id)] == target)
                respawn_client(self, id, describe_error(err));
              client_failed(self, id, describe_error(err));
            });
  }
}

// -- asynchronous mode (FedBuff on a virtual clock) ----------------------------------------------

void drain(aggregator_actor_t* self);

/// Starts `client`'s next local training from the latest global, at the virtual clock's now.
void dispatch(aggregator_actor_t* self, int client) {
  auto& st = self->state;
  const auto k = static_cast<std::size_t>(client);
  const int job = ++st.jobs_started[k];
  const int version = st.version;
  st.timeline.start({client, job, version, st.timeline.now() + st.clock->duration(client, job)});
  st.base[client] = st.global;
  GlobalDown latest;
  latest.round = version;
  latest.tensors = st.global;
  latest.bytes = static_cast<int64_t>(tensor_map_bytes(latest.tensors));
  self->request(st.cfg.clients[k], timeout_of(st.cfg), async_train_atom::value, job, std::move(latest))
      .then(
          [self, client, job](ClientUpdate& up) {
            auto& s = self->state;
            if (s.over) return;
            if (s.cfg.observer) s.cfg.observer->client_finished_training(s.cfg.run, s.round, client);
            s.arrived[{client, job}] = std::move(up);
            drain(self);
          },
          [self, client, job](caf::error& err) {
            auto& s = self->state;
            if (s.over) return;
            if (stops_the_run(err)) return abort_run(self, err);
            spdlog::warn("{}: job {} of client {} failed: {}; it starts again from the latest global", s.cfg.run, job,
                         client, describe_error(err));
            s.arrived[{client, job}] = std::nullopt;
            drain(self);
          });
}

/// The client that starts next after a commit: the one that finished when all clients train at
/// once, otherwise one of the idle clients drawn from the selection stream.
int next_client(aggregator_state& st, int finished) {
  st.idle.insert(finished);
  const int concurrency = st.cfg.federation.clients_per_round;
  if (concurrency <= 0 || concurrency >= static_cast<int>(st.cfg.clients.size())) {
    st.idle.erase(finished);
    return finished;
  }
  std::mt19937_64 rng(job_seed(st.cfg.seed, -2, static_cast<int>(st.commits), Stream::selection));
  auto it = st.idle.begin();
  std::advance(it, static_cast<long>(rng() % st.idle.size()));
  const int pick = *it;
  st.idle.erase(it);
  return pick;
}

/// FedBuff's server step over the full buffer; then the round's evaluation, as in sync mode.
void aggregate_buffer(aggregator_actor_t* self) {
  auto& st = self->state;
  st.training = false;
  std::vector<BufferedUpdate> buffer;
  st.updates.clear();
  for (const auto& c : st.buffer) {
    buffer.push_back({c.update.client, c.update.samples, c.staleness, &c.update.tensors, &c.base});
    st.updates[c.update.client] = c.update; // the last one per client, for its record
  }
  st.global = fedbuff_step(st.global, buffer, st.cfg.federation);
  ++st.version;
  st.result = RoundAggregate{};
  st.result.global = st.result.broadcast = st.global;
  evaluate_all(self);
}

/// Commits, in virtual-time order, every finished job whose result has arrived.
void drain(aggregator_actor_t* self) {
  auto& st = self->state;
  while (st.training && !st.over) {
    const std::optional<AsyncJob> next = st.timeline.next();
    if (!next) return;
    auto it = st.arrived.find({next->client, next->job});
    if (it == st.arrived.end()) return; // the earliest job is still computing: wait for it
    st.timeline.pop();
    std::optional<ClientUpdate> update = std::move(it->second);
    st.arrived.erase(it);
    ++st.commits;
    const bool full = update.has_value() &&
                      static_cast<int>(st.buffer.size()) + 1 >= effective_buffer_size(st.cfg.federation);
    if (update) {
      self->send(st.cfg.clients[static_cast<std::size_t>(next->client)], commit_atom::value, next->job);
      st.buffer.push_back({std::move(*update), std::move(st.base[next->client]), st.version - next->version});
    }
    const int starts = next_client(st, next->client);
    if (full) {
      // Evaluations are sent before the next job, so the client evaluates its committed state.
      aggregate_buffer(self);
      dispatch(self, starts);
      return;
    }
    dispatch(self, starts);
  }
}

/// The next asynchronous aggregation: the first starts every client (or clients_per_round).
void async_round(aggregator_actor_t* self) {
  auto& st = self->state;
  if (interrupt_requested())
    return abort_run(self, make_engine_error(EngineErrc::interrupted, "interrupted before round " + std::to_string(st.round + 1)));
  if (st.cfg.resume_from.round > 0)
    return abort_run(self, make_engine_error(EngineErrc::job_failed, "asynchronous runs cannot be resumed from a checkpoint "
                                                                     "(the jobs in flight are not saved); start it again"));
  st.round = st.summary.rounds_completed + 1;
  st.training = true;
  st.round_started = clock_type::now();
  st.buffer.clear();
  st.measure = AggregationMeasure{};
  if (st.cfg.observer) st.cfg.observer->round_started(st.cfg.run, st.round, st.cfg.federation.rounds);
  if (!st.clock) {
    st.clock = std::make_unique<ClientClock>(st.cfg.federation, st.cfg.local_epochs, st.cfg.faults, st.cfg.seed, st.cfg.train_samples);
    st.jobs_started.assign(st.cfg.clients.size(), 0);
    st.version = st.summary.rounds_completed;
    // Version 0 of the shared tensors: what every client starts with (B = 0, or the common A).
    if (st.global.empty() && !st.states.empty())
      st.global = tensor_map_clone(shared_part(strategy_spec(st.cfg.strategy), st.states.front().adapters));
    const int n = static_cast<int>(st.cfg.clients.size());
    const std::vector<int> first = select_clients(n, st.cfg.federation.clients_per_round, st.cfg.seed, 0);
    for (int id = 0; id < n; ++id) st.idle.insert(id);
    for (int id : first) {
      st.idle.erase(id);
      dispatch(self, id);
    }
    return;
  }
  drain(self);
}

caf::behavior aggregator(aggregator_actor_t* self, AggregatorConfig cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.states = st.cfg.initial_states;
  st.states.resize(st.cfg.clients.size());
  st.central_state = st.cfg.central_state;
  st.global = st.cfg.resume_from.global;
  st.summary.rounds_completed = st.cfg.resume_from.round;
  st.summary.rounds_without_quorum = st.cfg.resume_from.rounds_without_quorum;
  st.crashes = st.cfg.resume_from.crashes;
  st.crashes.resize(st.cfg.clients.size(), 0);
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
        spdlog::warn("{}: round {}: client {} did not evaluate: {}", s.cfg.run, s.round, client, why);
        if (s.eval_waiting.empty()) finish_round(self);
      }
      if (s.snapshot_waiting.erase(client) && s.snapshot_waiting.empty()) next_round_or_done(self);
    }
  });
  return {
      [self](start_atom) -> caf::result<RunDone> {
        auto& s = self->state;
        s.done = self->make_response_promise<RunDone>();
        s.round = s.cfg.resume_from.round;
        if (s.round > 0) {
          // Resumed: the rounds up to this one are on disk; go on with the next.
          spdlog::info("{}: resuming after round {} of {}", s.cfg.run, s.round, s.cfg.federation.rounds);
          advance(self);
          return s.done;
        }
        s.round_started = clock_type::now();
        s.selected.clear();
        s.updates.clear();
        s.result = RoundAggregate{};
        evaluate_all(self);
        return s.done;
      },
      [self](rejoin_atom, std::vector<int>& ids, std::vector<client_actor>& actors) {
        auto& s = self->state;
        if (s.over || ids.size() != actors.size()) return;
        std::string list;
        for (std::size_t i = 0; i < ids.size(); ++i) {
          const int id = ids[i];
          if (id < 0 || id >= static_cast<int>(s.cfg.clients.size()) || !actors[i]) continue;
          s.cfg.clients[static_cast<std::size_t>(id)] = actors[i];
          self->monitor(actors[i]);
          s.lost.erase(id);
          list += (list.empty() ? "" : ", ") + std::to_string(id);
        }
        spdlog::info("{}: round {}: clients {} are back on a node that rejoined: asked again from the next round, "
                     "from their starting state and the current global", s.cfg.run, s.round, list);
      },
      // Not an exit message: a killed actor would leave the start request unanswered (CAF 0.17
      // drops an undelivered promise silently) and the driver waiting forever.
      [self](interrupt_atom) {
        abort_run(self, make_engine_error(EngineErrc::interrupted,
                                          "interrupted in round " + std::to_string(self->state.round)));
      },
  };
}

} // namespace

caf::actor spawn_aggregator(caf::actor_system& system, AggregatorConfig config) {
  return system.spawn(aggregator, std::move(config));
}

} // namespace fedvlm
