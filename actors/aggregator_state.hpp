// actors/aggregator_state.hpp — the aggregator actor's state, shared by its synchronous and asynchronous handlers (internal).
#pragma once

#include "actors/aggregator_actor.hpp"
#include "fl/federation/async_server.hpp"
#include "fl/federation/round.hpp"
#include "fl/results/rounds_to_target.hpp"

#include <caf/error.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <vector>

namespace fedvlm::aggregator_detail {

using clock_type = std::chrono::steady_clock;

struct aggregator_state {
  AggregatorConfig cfg;
  caf::typed_response_promise<RunDone> done;
  bool over = false; ///< RunDone or an error was delivered: ignore late answers
  caf::error stop_error; ///< a lost node stopped the run (on_node_lost), maybe before start_atom came
  RunDone summary;  ///< what start_atom is answered with; its counters are progress's
  RunProgress progress;
  /// Clients down for good (their node was lost, nothing to respawn them): asked nothing more,
  /// counted failed at once instead of after a request timeout each round.
  std::set<int> lost;
  // -- the round in flight ---------------------------------------------------
  RoundInFlight r;
  bool training = false;
  clock_type::time_point round_started;
  std::set<int> eval_waiting; ///< clients asked to evaluate this round that have not answered
  std::set<int> holdout_waiting; ///< holdout clients being scored this round (evaluation.holdout_clients)
  std::vector<NewcomerScore> holdout_scores; ///< their scores this round
  std::set<int> snapshot_waiting; ///< clients asked for their state that have not answered
  /// By id: the client holds this round's download (its evaluation answered, or it was deferred).
  std::vector<char> merged;
  std::set<int> respawned;        ///< clients respawned this round: their state is asked for, not inferred
  /// Downloads deferred (defers_downloads): by id, a client outside the round's evaluation that
  /// was not sent the download; each merges `deferred` (the newest) before it next trains.
  std::vector<char> stale;
  GlobalDown deferred;
  /// Where downloads replace whole tensors (defers_downloads), the server does not merge each
  /// round's download into every idle client's kept state either: by id, a client whose state in
  /// progress.states lacks `server_download` (the newest), merged when it is read (bring_up_to_date).
  std::vector<char> server_behind;
  TensorMap server_download;
  std::vector<int> changed;    ///< this round: the clients whose state was asked for (ascending)
  bool handed_whole = false;   ///< on_round_state had a whole state once: later ones may be partial
  std::set<int> save_waiting;     ///< clients on nodes asked to save their state (save_atom)
  int saved_round = 0;            ///< the last round the clients on nodes were asked to save
  std::set<int> unsaved_said;     ///< clients on nodes whose failure to save was said (once each)
  std::unique_ptr<AsyncServer> async; ///< asynchronous mode, from its first round
  std::unique_ptr<ClientClock> clock; ///< synchronous mode's virtual clock (fl/federation/virtual_clock.hpp)
  double virtual_now = 0;              ///< simulated seconds since the run started, after the last round
  int64_t bytes_total = 0;             ///< bytes up and down since the run started, after the last round
  std::optional<TargetTracker> target; ///< evaluation.target_accuracy
  static inline const char* name = "fedvlm.aggregator";
};

using aggregator_actor_t = aggregator_actor::stateful_pointer<aggregator_state>;


/// The centralized strategy: one trainer, every client evaluates.
inline bool is_central(const aggregator_state& st) { return strategy_spec(st.cfg.strategy).centralized; }
/// FedBuff: buffered asynchronous aggregation on the virtual clock.
inline bool is_async(const aggregator_state& st) { return st.cfg.federation.mode == FederationMode::async; }

/// How long a client has to answer a request.
[[nodiscard]] std::chrono::milliseconds timeout_of(const AggregatorConfig& cfg);
/// Ends the run with `err`: a job failed for real, or the state could not be saved.
void abort_run(aggregator_actor_t self, caf::error err);
/// A client actor died: put a new one in its place, from its state after the last finished round.
void respawn_client(aggregator_actor_t self, int id, const std::string& reason);
/// With on_node_lost: `err` says the client's node is gone (the run stops to roll back).
[[nodiscard]] bool node_gone(const AggregatorConfig& cfg, const caf::error& err);
/// A client's node was lost and the driver rolls the run back: the round in flight stops.
void stop_for_lost_node(aggregator_actor_t self, int client, const std::string& why);
/// One selected client will not send an update this round.
void client_failed(aggregator_actor_t self, int id, const std::string& why);
/// The next round, or RunDone after the last (or before a round that would exceed the privacy budget).
void advance(aggregator_actor_t self);

// The end of a synchronous round (actors/aggregator_round_end.cpp).
/// Sends every client its download for evaluation; the round is reported once all answered.
void evaluate_all(aggregator_actor_t self);
/// The round's evaluations are in: score the global model too where asked, then report.
void finish_round(aggregator_actor_t self);
/// The round's state is complete: hand it to the driver (adapters, checkpoint), then go on.
void next_round_or_done(aggregator_actor_t self);
/// Whether downloads replace the shared tensors whole, so a client's state may wait for the newest one.
[[nodiscard]] bool defers_downloads(const aggregator_state& st);
/// progress.states[id] with the newest download merged, where the server had left it for later.
void bring_up_to_date(aggregator_state& st, int id);
/// The next asynchronous aggregation (actors/aggregator_async.cpp; the rest is actors/aggregator_sync.cpp).
void async_round(aggregator_actor_t self);

} // namespace fedvlm::aggregator_detail
