// actors/aggregator_actor.cpp — the round loop as message handlers; averaging is fl/aggregate.
#include "actors/aggregator_actor.hpp"

#include "actors/messages.hpp"
#include "fl/aggregate.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

namespace fedvlm {

std::vector<int> select_clients(int clients, int per_round, uint64_t seed, int round) {
  std::vector<int> ids(static_cast<std::size_t>(clients));
  std::iota(ids.begin(), ids.end(), 0);
  if (per_round <= 0 || per_round >= clients) return ids;
  std::mt19937_64 rng(job_seed(seed, -1, round, 2));
  for (std::size_t i = ids.size() - 1; i > 0; --i) {
    std::uniform_int_distribution<std::size_t> pick(0, i);
    std::swap(ids[i], ids[pick(rng)]);
  }
  ids.resize(static_cast<std::size_t>(per_round));
  std::sort(ids.begin(), ids.end());
  return ids;
}

namespace {

using clock_type = std::chrono::steady_clock;

struct aggregator_state {
  AggregatorConfig cfg;
  caf::typed_response_promise<RunDone> done;
  RunDone summary;
  TensorMap global;
  // -- the round in flight ---------------------------------------------------
  int round = 0;
  clock_type::time_point round_started;
  std::vector<int> selected;
  std::map<int, ClientUpdate> updates;
  int failed = 0;
  std::map<int, ClientEval> evals;
  int eval_pending = 0;
  int64_t bytes_down = 0;
  static inline const char* name = "fedvlm.aggregator";
};

using aggregator_actor_t = caf::stateful_actor<aggregator_state>;

std::chrono::milliseconds timeout_of(const AggregatorConfig& cfg) {
  return std::chrono::milliseconds(static_cast<int64_t>(cfg.federation.round_timeout_s * 1000.0));
}

void train_round(aggregator_actor_t* self, int round);

void finish_round(aggregator_actor_t* self) {
  auto& st = self->state;
  const double seconds = std::chrono::duration<double>(clock_type::now() - st.round_started).count();
  RoundSummary sum;
  sum.run = st.cfg.run;
  sum.strategy = to_string(st.cfg.strategy);
  sum.round = st.round;
  sum.total_rounds = st.cfg.federation.rounds;
  sum.clients_selected = static_cast<int>(st.selected.size());
  sum.clients_answered = static_cast<int>(st.updates.size());
  sum.seconds = seconds;
  double acc_sum = 0;
  sum.min_accuracy = 1;
  sum.max_accuracy = 0;
  for (const auto& [id, ev] : st.evals) {
    ClientRoundRecord r;
    r.run = st.cfg.run;
    r.strategy = sum.strategy;
    r.client = id;
    r.round = st.round;
    r.phase = st.round == 0 ? kPhaseBefore : kPhaseRound;
    r.accuracy = ev.result.metrics.accuracy;
    r.precision = ev.result.metrics.macro_precision;
    r.recall = ev.result.metrics.macro_recall;
    r.f1 = ev.result.metrics.macro_f1;
    r.loss = ev.result.loss;
    r.exact_match = ev.result.exact_match;
    r.test_samples = ev.test_samples;
    r.train_samples = ev.train_samples;
    r.bytes_down = st.bytes_down;
    r.round_seconds = seconds;
    if (auto it = st.updates.find(id); it != st.updates.end()) {
      r.participated = true;
      r.bytes_up = it->second.bytes;
      r.train_loss = it->second.train_loss;
    }
    if (st.cfg.observer) st.cfg.observer->client_evaluated(r);
    acc_sum += r.accuracy;
    sum.min_accuracy = std::min(sum.min_accuracy, r.accuracy);
    sum.max_accuracy = std::max(sum.max_accuracy, r.accuracy);
  }
  if (!st.evals.empty()) sum.mean_accuracy = acc_sum / static_cast<double>(st.evals.size());
  else sum.min_accuracy = 0;
  if (st.cfg.observer) st.cfg.observer->round_finished(sum);
  if (st.round > 0) st.summary.rounds_completed = st.round;
  if (st.round < st.cfg.federation.rounds) train_round(self, st.round + 1);
  else {
    st.summary.global = tensor_map_clone(st.global);
    st.done.deliver(st.summary);
  }
}

/// Sends `down` to every client for evaluation; finish_round once all have answered or failed.
void evaluate_all(aggregator_actor_t* self, GlobalDown down) {
  auto& st = self->state;
  st.evals.clear();
  st.bytes_down = down.bytes;
  st.eval_pending = static_cast<int>(st.cfg.clients.size());
  for (std::size_t id = 0; id < st.cfg.clients.size(); ++id) {
    self->request(st.cfg.clients[id], timeout_of(st.cfg), eval_atom::value, down)
        .then(
            [self](ClientEval& ev) {
              auto& s = self->state;
              s.evals.emplace(ev.client, std::move(ev));
              if (--s.eval_pending == 0) finish_round(self);
            },
            [self, id](caf::error& err) {
              auto& s = self->state;
              spdlog::warn("{}: round {}: client {} did not evaluate: {}", s.cfg.run, s.round, id,
                           self->system().render(err));
              if (--s.eval_pending == 0) finish_round(self);
            });
  }
}

void close_training(aggregator_actor_t* self) {
  auto& st = self->state;
  const StrategySpec& spec = strategy_spec(st.cfg.strategy);
  GlobalDown down;
  down.round = st.round;
  const auto needed = static_cast<std::size_t>(
      std::ceil(st.cfg.federation.quorum * static_cast<double>(st.selected.size()) - 1e-9));
  if (st.updates.size() < needed || st.updates.empty()) {
    ++st.summary.rounds_without_quorum;
    spdlog::warn("{}: round {}: {} of {} selected clients answered, quorum is {}: keeping the previous "
                 "global matrices",
                 st.cfg.run, st.round, st.updates.size(), st.selected.size(), needed);
  } else if (spec.share_a || spec.share_b) {
    std::vector<ClientContribution> parts;
    for (const auto& [id, up] : st.updates) parts.push_back({id, up.samples, &up.tensors});
    st.global = aggregate(std::move(parts), st.cfg.federation.weighting);
    down.tensors = st.global;
    down.bytes = static_cast<int64_t>(tensor_map_bytes(down.tensors));
  }
  evaluate_all(self, std::move(down));
}

void train_round(aggregator_actor_t* self, int round) {
  auto& st = self->state;
  st.round = round;
  st.round_started = clock_type::now();
  st.updates.clear();
  st.failed = 0;
  if (st.cfg.observer) st.cfg.observer->round_started(st.cfg.run, round, st.cfg.federation.rounds);
  const bool central = strategy_spec(st.cfg.strategy).centralized;
  st.selected = central ? std::vector<int>{-1}
                        : select_clients(static_cast<int>(st.cfg.clients.size()),
                                         st.cfg.federation.clients_per_round, st.cfg.seed, round);
  for (int id : st.selected) {
    const caf::actor& target = central ? st.cfg.central_trainer : st.cfg.clients[static_cast<std::size_t>(id)];
    self->request(target, timeout_of(st.cfg), train_atom::value, round)
        .then(
            [self, round](ClientUpdate& up) {
              auto& s = self->state;
              if (s.cfg.observer) s.cfg.observer->client_finished_training(s.cfg.run, round, up.client);
              s.updates.emplace(up.client, std::move(up));
              if (static_cast<int>(s.updates.size()) + s.failed == static_cast<int>(s.selected.size()))
                close_training(self);
            },
            [self, id](caf::error& err) {
              auto& s = self->state;
              spdlog::warn("{}: round {}: client {} left out of this round: {}", s.cfg.run, s.round, id,
                           self->system().render(err));
              ++s.failed;
              if (static_cast<int>(s.updates.size()) + s.failed == static_cast<int>(s.selected.size()))
                close_training(self);
            });
  }
}

caf::behavior aggregator(aggregator_actor_t* self, AggregatorConfig cfg) {
  self->state.cfg = std::move(cfg);
  return {
      [self](start_atom) -> caf::result<RunDone> {
        auto& st = self->state;
        st.done = self->make_response_promise<RunDone>();
        st.round = 0;
        st.round_started = clock_type::now();
        st.selected.clear();
        st.updates.clear();
        evaluate_all(self, GlobalDown{});
        return st.done;
      },
  };
}

} // namespace

caf::actor spawn_aggregator(caf::actor_system& system, AggregatorConfig config) {
  return system.spawn(aggregator, std::move(config));
}

} // namespace fedvlm
