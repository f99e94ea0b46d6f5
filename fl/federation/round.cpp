// fl/federation/round.cpp — selection, quorum, aggregation, records and summaries of a round.
#include "fl/federation/round.hpp"

#include "fl/aggregation/aggregate.hpp"
#include "fl/federation/async_federation.hpp"
#include "fl/federation/client_faults.hpp"
#include "fl/privacy/differential_privacy.hpp"
#include "fl/privacy/privacy_budget.hpp"
#include "fl/results/record_fields.hpp"
#include "fl/runtime/random_streams.hpp"
#include "support/join.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

namespace fedvlm {

RoundSettings round_settings(const ExperimentConfig& c, const std::string& run_id, const RunSetup& setup) {
  RoundSettings s;
  s.run = run_id;
  s.strategy = c.strategy;
  s.federation = c.federation;
  s.federation.clients = training_clients(c); // holdout clients are never selected
  s.network = c.network;
  s.privacy = c.privacy;
  s.lora_alpha = c.lora.alpha;
  for (int k = 0; k < s.federation.clients; ++k) s.client_ranks.push_back(client_lora_rank(c, k));
  for (const auto& split : setup.splits) s.train_samples.push_back(static_cast<int64_t>(split.train.size()));
  s.local_epochs = c.train.local_epochs;
  s.faults = c.faults;
  s.evaluation_sample = c.evaluation.clients_sample;
  s.seed = c.seed;
  return s;
}

std::vector<int> select_clients(int clients, int per_round, uint64_t seed, int round) {
  std::vector<int> ids(static_cast<std::size_t>(clients));
  std::iota(ids.begin(), ids.end(), 0);
  return sample_clients(std::move(ids), per_round, seed, round);
}

std::vector<int> clients_to_evaluate(const RoundSettings& s, const RoundInFlight& r, int clients, const std::set<int>& lost) {
  std::vector<int> trained = r.selected;
  for (const auto& [id, up] : r.updates) trained.push_back(id);
  std::sort(trained.begin(), trained.end());
  std::vector<int> chosen, others;
  (s.evaluation_sample == 0 ? chosen : others).reserve(static_cast<std::size_t>(std::max(clients, 0)));
  for (int id = 0; id < clients; ++id) {
    if (!lost.empty() && lost.count(id)) continue;
    if (s.evaluation_sample == 0 || std::binary_search(trained.begin(), trained.end(), id)) chosen.push_back(id);
    else others.push_back(id);
  }
  if (s.evaluation_sample == 0) return chosen;
  const std::vector<int> drawn =
      sample_clients(std::move(others), s.evaluation_sample, s.seed, r.round, Stream::evaluation_sample);
  chosen.insert(chosen.end(), drawn.begin(), drawn.end());
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

void select_round(const RoundSettings& s, const ClientClock& clock, RoundInFlight& r, int round, double now) {
  if (strategy_spec(s.strategy).centralized) {
    r.selected = {-1};
    r.wanted = 1;
    return;
  }
  int wanted = 0;
  r.selected = select_on_clock(s.federation, clock, s.seed, round, now, wanted);
  r.wanted = static_cast<std::size_t>(wanted);
}

RoundTiming clock_round(const RoundSettings& s, const ClientClock& clock, RoundInFlight& r, double now) {
  std::map<int, double> finish;
  for (const auto& [id, up] : r.updates)
    if (id >= 0) finish[id] = clock.job_seconds(id, r.round, up.bytes, up.bytes);
  if (finish.empty() && !r.updates.empty()) return {}; // the centralized trainer: no clients' clock
  const std::size_t wanted = r.wanted > 0 ? r.wanted : r.selected.size();
  RoundTiming t = time_round(s.federation, clock, now, finish, wanted, !r.failed.empty());
  for (const auto& [id, why] : t.dropped) {
    r.updates.erase(id);
    r.failed.insert(id);
  }
  r.virtual_duration = t.duration;
  return t;
}

std::vector<int> round_participants(const RoundSettings& s, int clients, int round) {
  if (strategy_spec(s.strategy).centralized) return {-1};
  return select_clients(clients, s.federation.clients_per_round, s.seed, round);
}

std::string nobody_answered(const RoundInFlight& r, int& silent_rounds, int total_rounds) {
  if (!r.updates.empty() || r.selected.empty()) {
    silent_rounds = 0;
    return "";
  }
  ++silent_rounds;
  if (silent_rounds < std::min(kSilentRoundsToStop, std::max(1, total_rounds))) return "";
  const std::string failed = join(r.failed);
  return "round " + std::to_string(r.round) + ": none of the " + std::to_string(r.selected.size()) +
         " selected clients answered (failed or timed out: " + failed + "), " +
         (silent_rounds == 1 ? std::string("the run's only round") : std::to_string(silent_rounds) + " rounds in a row") +
         ", so no update can be aggregated and nobody trains; see faults.failing_clients, "
         "faults.dropout_probability, faults.crash_clients, federation.round_deadline_s and federation.round_timeout_s";
}

std::size_t quorum_needed(std::size_t selected, double quorum) {
  const auto n = static_cast<std::size_t>(std::ceil(quorum * static_cast<double>(selected) - 1e-9));
  return std::max<std::size_t>(1, n);
}

std::vector<int> training_plan(const RoundSettings& s, int round, const std::vector<int>& selected,
                               const std::set<int>& lost) {
  std::vector<int> plan;
  for (int id : selected) {
    const ClientRoundFaults f = draw_client_faults(s.faults, s.seed, id, round);
    if (!f.crashes && !f.fails && !f.drops_out && !lost.count(id)) plan.push_back(id);
  }
  return plan;
}

std::vector<double> aggregation_weights(const std::map<int, ClientUpdate>& updates, Weighting weighting) {
  int64_t total = 0;
  for (const auto& [id, up] : updates) total += up.samples;
  std::vector<double> w;
  for (const auto& [id, up] : updates) w.push_back(fedavg_weight(up.samples, total, updates.size(), weighting));
  return w;
}

RoundRule round_rule(const RoundSettings& s, int round, std::size_t updates) {
  RoundRule rule;
  rule.spec = spec_in_round(strategy_spec(s.strategy), round);
  rule.weighting = s.federation.weighting;
  rule.lora_alpha = s.lora_alpha;
  rule.client_ranks = s.client_ranks;
  const PrivacySettings& p = s.privacy;
  if (p.accounted() && p.mode == PrivacyMode::central) {
    rule.noise_stddev = central_noise_stddev(p.noise_multiplier, p.clip_norm, static_cast<int>(updates));
    rule.noise_seed = job_seed(s.seed, -1, round, Stream::privacy_noise);
  }
  return rule;
}

namespace {

/// The aggregation error or each client's drift, with the aggregation's own weights.
AggregationMeasure measure_round(const RoundSettings& s, const RoundInFlight& r, std::string* warning) {
  const std::vector<double> weights = aggregation_weights(r.updates, s.federation.weighting);
  std::vector<TrainedClient> trained;
  std::size_t i = 0;
  for (const auto& [id, up] : r.updates) {
    if (!up.measured.empty()) trained.push_back({id, weights[i], &up.measured});
    ++i;
  }
  try {
    return measure_aggregation(spec_in_round(strategy_spec(s.strategy), r.round), trained, r.result, s.lora_alpha);
  } catch (const std::exception& e) {
    if (warning) *warning = e.what();
    return {};
  }
}

} // namespace

QuorumOutcome close_training_round(const RoundSettings& s, RoundInFlight& r, TensorMap& global, std::string* measure_warning) {
  r.result = RoundAggregate{};
  QuorumOutcome out;
  out.needed = quorum_needed(r.wanted > 0 ? r.wanted : r.selected.size(), s.federation.quorum);
  if (r.updates.size() < out.needed) return out;
  out.met = true;
  std::vector<ClientContribution> parts;
  for (const auto& [id, up] : r.updates) parts.push_back({id, up.samples, &up.tensors});
  r.result = aggregate_round(round_rule(s, r.round, r.updates.size()), parts, global);
  global = r.result.global;
  r.measure = measure_round(s, r, measure_warning);
  return out;
}

void close_async_round(const RoundSettings& s, RoundInFlight& r, TensorMap& global) {
  std::vector<BufferedUpdate> buffer;
  r.updates.clear();
  for (const auto& c : r.buffer) {
    buffer.push_back({c.update.client, c.update.samples, c.staleness, &c.update.tensors, &c.base});
    r.updates[c.update.client] = c.update; // the last one per client, for its record
  }
  global = fedbuff_step(global, buffer, s.federation);
  r.result = RoundAggregate{};
  r.result.global = r.result.broadcast = global;
}

ClientRoundRecord client_record(const RoundSettings& s, const RoundInFlight& rf, const ClientEval& ev, double seconds) {
  ClientRoundRecord r;
  r.run = s.run;
  r.strategy = to_string(s.strategy);
  r.client = ev.client;
  r.round = rf.round;
  r.phase = rf.round == 0 ? kPhaseBefore : kPhaseRound;
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
  r.bytes_down = rf.result.bytes_for(ev.client);
  r.round_seconds = seconds;
  if (auto it = rf.updates.find(ev.client); it != rf.updates.end()) {
    r.participated = true;
    r.bytes_up = it->second.bytes;
    r.train_loss = it->second.train_loss;
  }
  if (auto it = rf.measure.drift_by_client.find(ev.client); it != rf.measure.drift_by_client.end()) r.drift = it->second;
  else if (r.participated && std::isfinite(ev.drift)) r.drift = ev.drift; // measured on the client's node
  if (s.federation.mode == FederationMode::async) {
    double total = 0;
    int n = 0;
    for (const auto& c : rf.buffer)
      if (c.update.client == ev.client) {
        total += c.staleness;
        ++n;
      }
    if (n > 0) r.staleness = total / n;
  }
  return r;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(at));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (at - static_cast<double>(lo));
}

RoundSummary round_summary(const RoundSettings& s, const RoundInFlight& r, const std::vector<ClientRoundRecord>& records,
                           const EvalResult* global_eval, double seconds, std::optional<double> virtual_now) {
  RoundSummary sum;
  sum.run = s.run;
  sum.strategy = to_string(s.strategy);
  sum.round = r.round;
  sum.total_rounds = s.federation.rounds;
  sum.clients_selected = r.round == 0 ? 0 : static_cast<int>(r.selected.size());
  sum.clients_answered = static_cast<int>(r.updates.size());
  sum.clients_failed = static_cast<int>(r.failed.size());
  for (const auto& [id, up] : r.updates)
    if (up.delay_seconds > 0) ++sum.clients_late;
  sum.seconds = seconds;
  sum.aggregation_error = r.measure.error;
  if (r.round > 0) sum.epsilon = epsilon_after_rounds(s.privacy, s.federation, r.round);
  sum.aggregation_error_by_layer = r.measure.error_by_layer;
  if (virtual_now) sum.virtual_seconds = *virtual_now;
  if (virtual_now && r.round > 0) {
    double total = 0, most = 0;
    for (const auto& c : r.buffer) {
      total += c.staleness;
      most = std::max<double>(most, c.staleness);
    }
    if (!r.buffer.empty()) {
      sum.mean_staleness = total / static_cast<double>(r.buffer.size());
      sum.max_staleness = most;
      sum.clients_selected = sum.clients_answered = static_cast<int>(r.buffer.size());
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
  for (const ClientRoundRecord& rec : records) {
    if (rec.test_samples == 0) continue; // data.test_fraction = 0: the global test scores the model
    acc_sum += rec.accuracy;
    ++scored;
    sum.min_accuracy = std::min(sum.min_accuracy, rec.accuracy);
    sum.max_accuracy = std::max(sum.max_accuracy, rec.accuracy);
  }
  if (scored > 0) {
    sum.mean_accuracy = acc_sum / scored;
    std::vector<double> accuracies;
    for (const ClientRoundRecord& rec : records)
      if (rec.test_samples > 0) accuracies.push_back(rec.accuracy);
    sum.p10_accuracy = percentile(accuracies, 0.1);
  } else {
    const double none = records.empty() ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    sum.mean_accuracy = sum.min_accuracy = sum.max_accuracy = none;
  }
  return sum;
}

RunCheckpoint round_checkpoint(const RoundSettings& s, const RunProgress& p, int round, uint64_t config_hash,
                               bool with_clients) {
  RunCheckpoint ck;
  ck.run = s.run;
  ck.config_hash = config_hash;
  ck.round = round;
  ck.total_rounds = s.federation.rounds;
  ck.rounds_without_quorum = p.rounds_without_quorum;
  ck.global = p.global;
  if (strategy_spec(s.strategy).centralized) ck.clients.push_back(p.central_state);
  if (with_clients) ck.clients.insert(ck.clients.end(), p.states.begin(), p.states.end());
  ck.crashes = p.crashes;
  return ck;
}

std::optional<std::string> budget_stop(const RoundSettings& s, int round) {
  const int last_allowed = rounds_within_budget(s.privacy, s.federation);
  if (round >= s.federation.rounds || round < last_allowed) return std::nullopt;
  return "stopped after round " + std::to_string(round) + " of " + std::to_string(s.federation.rounds) + ": round " +
         std::to_string(round + 1) + " would spend epsilon = " +
         std::to_string(epsilon_after_rounds(s.privacy, s.federation, round + 1)) +
         " > privacy.target_epsilon = " + std::to_string(s.privacy.target_epsilon);
}

int next_async_client(const RoundSettings& s, int clients, std::set<int>& idle, int finished, int64_t commits) {
  idle.insert(finished);
  const int concurrency = s.federation.clients_per_round;
  if (concurrency <= 0 || concurrency >= clients) {
    idle.erase(finished);
    return finished;
  }
  std::mt19937_64 rng(job_seed(s.seed, -2, static_cast<int>(commits), Stream::selection));
  auto it = idle.begin();
  std::advance(it, static_cast<long>(rng() % idle.size()));
  const int pick = *it;
  idle.erase(it);
  return pick;
}

} // namespace fedvlm
