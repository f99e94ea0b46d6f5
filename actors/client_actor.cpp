// actors/client_actor.cpp — translates round messages into scheduler jobs over the client's own state.
#include "actors/client_actor.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "fl/federation/client_faults.hpp"
#include "fl/runtime/random_streams.hpp"
#include "fl/aggregation/round_aggregation.hpp"
#include "fl/federation/client_round.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>
#include <utility>

namespace fedvlm {

namespace {


struct client_state {
  ClientConfig cfg;
  TensorMap adapters;
  TensorMap optimizer_state;
  /// Asynchronous mode: finished local trainings by job, applied on (commit_atom, job).
  std::map<int, LocalTrainResult> pending;
  /// keeps_factors: its adapters as they went into the last aggregation, and that round.
  TensorMap measured;
  int measured_round = -1;
  /// compression.up = "topk" with error feedback: what its last update did not send.
  TensorMap residual;
  /// How often restore_atom took back a saved state: a training begun before one is stale.
  int restores = 0;
  static inline const char* name = "fedvlm.client";
};

using client_actor_t = client_actor::stateful_pointer<client_state>;

client_actor::behavior_type client(client_actor_t self, ClientConfig cfg) {
  self->state.adapters = cfg.initial_adapters;
  self->state.optimizer_state = cfg.initial_optimizer_state;
  self->state.residual = cfg.initial_residual;
  self->state.cfg = std::move(cfg);
  return {
      [self](train_atom, int round) -> caf::result<ClientUpdate> {
        auto& st = self->state;
        const StrategySpec spec = spec_in_round(strategy_spec(st.cfg.strategy), round);
        const ClientRoundFaults faults = draw_client_faults(st.cfg.faults, st.cfg.run_seed, st.cfg.id, round);
        if (faults.crashes)
          throw std::runtime_error("client " + std::to_string(st.cfg.id) + " crashed in round " +
                                   std::to_string(round) + " (simulated crash)");
        if (faults.fails || faults.drops_out)
          return make_engine_error(EngineErrc::simulated_fault,
                                   "client " + std::to_string(st.cfg.id) +
                                       (faults.fails ? " failed (simulated failing client)" : " dropped out (simulated drop-out)"));
        // Training updates the optimizer state in place: it gets a copy, so that the tensors this
        // client held (and a snapshot or checkpoint may share) never change.
        TensorMap optimizer_state = tensor_map_clone(st.optimizer_state);
        st.optimizer_state.clear();
        TrainJobMsg msg{st.cfg.id, round, training_job(st.cfg, spec, st.adapters, std::move(optimizer_state), round)};
        TensorMap received = msg.job.prox_reference; // what the update is measured from (DP clipping)
        auto rp = self->make_response_promise<ClientUpdate>();
        self->request(st.cfg.scheduler, caf::infinite, std::move(msg))
            .then(
                [self, rp, round, delay_s = faults.delay_seconds, received, restores = st.restores](TrainDoneMsg& done) mutable {
                  auto& s = self->state;
                  if (s.restores != restores) { // begun before the state was taken back: dropped
                    rp.deliver(make_engine_error(EngineErrc::simulated_fault, "a training begun before a restore"));
                    return;
                  }
                  s.adapters = std::move(done.result.adapters);
                  s.optimizer_state = std::move(done.result.optimizer_state);
                  bool kept = false;
                  ClientUpdate up = synchronous_update(s.cfg, round, done.result, s.adapters, received, delay_s, s.measured, kept,
                                                       s.residual);
                  if (kept) s.measured_round = round;
                  // A straggler answers at once: its delay is on the virtual clock, which the
                  // aggregator reads (fl/federation/virtual_clock.hpp); nothing sleeps.
                  rp.deliver(std::move(up));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      // Asynchronous mode: train from the latest global; the result waits for its commit, so
      // an evaluation in between sees the state at the virtual time, not at the wall time.
      [self](async_train_atom, int job, GlobalDown& latest) -> caf::result<ClientUpdate> {
        auto& st = self->state;
        const StrategySpec& spec = strategy_spec(st.cfg.strategy);
        (void)apply_download(spec, st.adapters, latest.tensors, 0); // averaging rules only: no restart
        TrainJobMsg msg{st.cfg.id, job, training_job(st.cfg, spec, st.adapters, tensor_map_clone(st.optimizer_state), job)};
        auto rp = self->make_response_promise<ClientUpdate>();
        self->request(st.cfg.scheduler, caf::infinite, std::move(msg))
            .then(
                [self, rp, job, restores = st.restores](TrainDoneMsg& done) mutable {
                  auto& s = self->state;
                  if (s.restores != restores) { // begun before the state was taken back: dropped
                    rp.deliver(make_engine_error(EngineErrc::simulated_fault, "a training begun before a restore"));
                    return;
                  }
                  ClientUpdate up = asynchronous_update(s.cfg, job, done.result);
                  s.pending[job] = std::move(done.result);
                  rp.deliver(std::move(up));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](commit_atom, int job) {
        auto& st = self->state;
        auto it = st.pending.find(job);
        if (it == st.pending.end()) return;
        st.adapters = std::move(it->second.adapters);
        st.optimizer_state = std::move(it->second.optimizer_state);
        st.pending.erase(it);
      },
      [self](snapshot_atom) {
        // A client's adapters and optimizer state are never changed in place (training works on
        // copies, a download replaces tensors), so the aggregator may hold the same ones: an
        // idle client's state is in memory once. The residual is updated in place: a copy.
        return AdapterSnapshot{self->state.cfg.id, self->state.adapters, self->state.optimizer_state,
                               tensor_map_clone(self->state.residual)};
      },
      [self](save_atom, int round) -> caf::result<bool> {
        auto& st = self->state;
        if (!st.cfg.save_state) return false;
        try {
          st.cfg.save_state(round, ClientCheckpoint{st.cfg.id, st.adapters, st.optimizer_state, st.residual});
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
        return true;
      },
      [self](restore_atom, int round) -> caf::result<bool> {
        auto& st = self->state;
        std::optional<ClientCheckpoint> saved;
        if (round == 0) saved = ClientCheckpoint{st.cfg.id, st.cfg.initial_adapters, st.cfg.initial_optimizer_state};
        else if (st.cfg.load_state) saved = st.cfg.load_state(round); // throws on a damaged file: an error answer
        if (!saved) return false;
        // As a client spawned from that state holds it: nothing of the rounds after it is left.
        st.adapters = std::move(saved->adapters);
        st.optimizer_state = std::move(saved->optimizer_state);
        st.pending.clear();
        st.measured.clear();
        st.measured_round = -1;
        st.residual.clear();
        ++st.restores;
        return true;
      },
      [self](eval_atom, GlobalDown& down) -> caf::result<ClientEval> {
        auto& st = self->state;
        const double drift = own_drift(st.cfg, down, st.measured, st.measured_round);
        // Shared parts replaced, private ones kept; residuals and stacks merged into lora_delta.
        if (apply_download(spec_in_round(strategy_spec(st.cfg.strategy), std::max(down.round, 1)), st.adapters, down.tensors,
                           job_seed(st.cfg.run_seed, st.cfg.id, down.round, Stream::adapter_init)))
          st.optimizer_state.clear(); // fresh adapters start with a fresh optimizer
        if (!down.evaluate) { // not in this round's evaluation.clients_sample: merged, not scored
          ClientEval skipped;
          skipped.client = st.cfg.id;
          skipped.round = down.round;
          skipped.evaluated = false;
          return skipped;
        }
        EvalJobMsg msg;
        msg.client = st.cfg.id;
        msg.round = down.round;
        msg.adapters = st.adapters;
        msg.indices = st.cfg.split.test;
        auto rp = self->make_response_promise<ClientEval>();
        const int round = down.round;
        self->request(st.cfg.scheduler, caf::infinite, std::move(msg))
            .then(
                [self, rp, round, drift](EvalResult& r) mutable {
                  ClientEval ev;
                  ev.drift = drift;
                  ev.client = self->state.cfg.id;
                  ev.round = round;
                  ev.result = r;
                  ev.test_samples = static_cast<int64_t>(self->state.cfg.split.test.size());
                  ev.train_samples = static_cast<int64_t>(self->state.cfg.split.train.size());
                  rp.deliver(std::move(ev));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
  };
}

} // namespace

client_actor spawn_client(caf::actor_system& system, ClientConfig config) {
  return system.spawn(client, std::move(config));
}

} // namespace fedvlm
