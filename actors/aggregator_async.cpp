// actors/aggregator_async.cpp — the aggregator's asynchronous (FedBuff) handlers; the bookkeeping is fl/federation/async_server.
#include "actors/aggregator_state.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "fl/runtime/interrupt.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace fedvlm::aggregator_detail {

namespace {

void drain(aggregator_actor_t self);

/// Starts `client`'s next local training from the latest global, at the virtual clock's now.
void dispatch(aggregator_actor_t self, int client) {
  auto& st = self->state;
  const int job = st.async->start(client, st.progress.global);
  GlobalDown latest;
  latest.round = st.async->version();
  latest.tensors = st.progress.global;
  latest.bytes = static_cast<int64_t>(tensor_map_bytes(latest.tensors));
  self->request(st.cfg.clients[static_cast<std::size_t>(client)], timeout_of(st.cfg), async_train_atom::value, job,
                std::move(latest))
      .then(
          [self, client, job](ClientUpdate& up) {
            auto& s = self->state;
            if (s.over) return;
            if (s.cfg.observer) s.cfg.observer->client_finished_training(s.cfg.run, s.r.round, client);
            s.async->arrived(client, job, std::move(up));
            drain(self);
          },
          [self, client, job](caf::error& err) {
            auto& s = self->state;
            if (s.over) return;
            if (stops_the_run(err)) return abort_run(self, err);
            spdlog::warn("{}: job {} of client {} failed: {}; it starts again from the latest global", s.cfg.run, job,
                         client, describe_error(err));
            s.async->arrived(client, job, std::nullopt);
            drain(self);
          });
}

/// Commits, in virtual-time order, every finished job whose result has arrived.
void drain(aggregator_actor_t self) {
  auto& st = self->state;
  while (st.training && !st.over) {
    const std::optional<AsyncServer::Commit> c = st.async->commit_next(st.r);
    if (!c) return;
    if (c->committed) self->send(st.cfg.clients[static_cast<std::size_t>(c->client)], commit_atom::value, c->job);
    if (c->buffer_full) {
      // FedBuff's server step; evaluations are sent before the next job, so the client
      // evaluates its committed state.
      st.training = false;
      close_async_round(st.cfg, st.r, st.progress.global);
      st.async->aggregated();
      evaluate_all(self);
      dispatch(self, c->next_client);
      return;
    }
    dispatch(self, c->next_client);
  }
}

} // namespace

/// The next asynchronous aggregation: the first starts every client (or clients_per_round).
void async_round(aggregator_actor_t self) {
  auto& st = self->state;
  if (interrupt_requested())
    return abort_run(self, make_engine_error(EngineErrc::interrupted, "interrupted before round " + std::to_string(st.r.round + 1)));
  if (st.cfg.resume_from.round > 0)
    return abort_run(self, make_engine_error(EngineErrc::job_failed, "asynchronous runs cannot be resumed from a checkpoint "
                                                                     "(the jobs in flight are not saved); start it again"));
  st.r.round = st.progress.rounds_completed + 1;
  st.training = true;
  st.round_started = clock_type::now();
  st.r.buffer.clear();
  st.r.measure = AggregationMeasure{};
  if (st.cfg.observer) st.cfg.observer->round_started(st.cfg.run, st.r.round, st.cfg.federation.rounds);
  if (st.async) return drain(self);
  st.async = std::make_unique<AsyncServer>(st.cfg, static_cast<int>(st.cfg.clients.size()), st.progress.rounds_completed);
  // Version 0 of the shared tensors: what every client starts with (B = 0, or the common A).
  if (st.progress.global.empty() && !st.progress.states.empty())
    st.progress.global = tensor_map_clone(shared_part(strategy_spec(st.cfg.strategy), st.progress.states.front().adapters));
  for (int id : st.async->first_clients()) dispatch(self, id);
}

} // namespace fedvlm::aggregator_detail
