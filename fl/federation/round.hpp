// fl/federation/round.hpp — what a round decides, as plain functions: who trains, whether it aggregates, what it records.
//
// The aggregator actor (actors/aggregator_sync.cpp, aggregator_async.cpp) holds a RoundInFlight and the run's
// progress, turns messages into these calls and sends what they decide; nothing here needs an
// actor system, a dataset or a file, so tests call it with hand-made updates.
#pragma once

#include "fl/aggregation/aggregation_error.hpp"
#include "fl/aggregation/round_aggregation.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/config/strategy.hpp"
#include "fl/federation/client_exchange.hpp"
#include "fl/federation/run_setup.hpp"
#include "fl/federation/virtual_clock.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "fl/results/run_records.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace fedvlm {

/// What the round logic needs of the run's configuration; round_settings() is the one place
/// that copies it from an ExperimentConfig.
struct RoundSettings {
  std::string run;
  StrategyKind strategy = StrategyKind::plora;
  FederationSettings federation;
  NetworkSettings network;        ///< clients' links, devices and availability on the virtual clock
  PrivacySettings privacy;        ///< central noise on the average, ε per round, the budget
  double lora_alpha = 8.0;        ///< scale α/r of the products the aggregation rules combine
  std::vector<int> client_ranks;  ///< index = client id: the rank each client's download has
  std::vector<int64_t> train_samples; ///< index = client id (asynchronous mode's virtual clock)
  int local_epochs = 1;
  FaultSettings faults;           ///< drawn per client and round; slow_* also drive the virtual clock
  int evaluation_sample = 0;      ///< evaluation.clients_sample: others evaluated per round (0 = every client)
  uint64_t seed = 0;
};

[[nodiscard]] RoundSettings round_settings(const ExperimentConfig& config, const std::string& run_id,
                                           const RunSetup& setup);

/// Asynchronous mode: a committed update, the global its job started from, and how many
/// aggregations the global moved on while it was computed.
struct CommittedUpdate {
  ClientUpdate update;
  TensorMap base;
  int staleness = 0;
};

/// The round in flight, as data.
struct RoundInFlight {
  int round = 0;
  std::vector<int> selected;           ///< -1: the centralized trainer
  std::map<int, ClientUpdate> updates; ///< by client id, ascending (the aggregation's order)
  std::set<int> failed;
  std::map<int, ClientEval> evals;
  RoundAggregate result;               ///< what each client downloads
  AggregationMeasure measure;
  std::vector<CommittedUpdate> buffer; ///< asynchronous mode: this aggregation's commits
  std::size_t wanted = 0;              ///< updates the round keeps (federation.overcommit); 0: all selected
  double virtual_duration = 0;         ///< the round's simulated seconds (fl/federation/virtual_clock.hpp)
  /// Bytes of the downloads of clients that got the round's broadcast but were not evaluated
  /// (evaluation.clients_sample): they have no record to count them in.
  int64_t unrecorded_bytes_down = 0;
};

/// Clients taking part in `round`: all, or a seeded sample of `per_round`, ascending.
[[nodiscard]] std::vector<int> select_clients(int clients, int per_round, uint64_t seed, int round);

/// Who takes part in `round`: the centralized trainer alone (-1), or select_clients.
[[nodiscard]] std::vector<int> round_participants(const RoundSettings& settings, int clients, int round);

/// Synchronous mode: who `round` selects at virtual time `now` (the centralized trainer alone,
/// or select_on_clock); r.selected and r.wanted get it.
void select_round(const RoundSettings& settings, const ClientClock& clock, RoundInFlight& r, int round, double now);

/// Synchronous mode, every selected client answered or failed: when each answer would have
/// arrived on the virtual clock (its job_seconds, downloading and uploading what it sends),
/// which the round keeps (time_round), and r.virtual_duration. Dropped updates leave r.updates
/// for r.failed. Returns the timing (its `dropped` says why each was left out).
RoundTiming clock_round(const RoundSettings& settings, const ClientClock& clock, RoundInFlight& r, double now);

/// Answers a round needs: ceil(quorum × selected), at least one.
[[nodiscard]] std::size_t quorum_needed(std::size_t selected, double quorum);

/// Rounds in a row without a single answer after which a run stops as failed (fewer when the
/// run has fewer rounds): random drop-outs may empty one round, but three in a row, or a whole
/// short run, mean nobody trains, and the run would only evaluate the same model again and end
/// "completed".
inline constexpr int kSilentRoundsToStop = 3;

/// Counts `r` in `silent_rounds` (rounds in a row in which not one selected client answered:
/// all failed, dropped out or timed out; reset by any answer) and returns why the run must
/// stop once that reaches kSilentRoundsToStop or `total_rounds`, else "".
[[nodiscard]] std::string nobody_answered(const RoundInFlight& r, int& silent_rounds, int total_rounds);

/// The selected clients that will send a training job (no simulated crash, failure or
/// drop-out, not lost), in order: the scheduler groups them by this plan.
[[nodiscard]] std::vector<int> training_plan(const RoundSettings& settings, int round, const std::vector<int>& selected,
                                             const std::set<int>& lost);

/// Normalised FedAvg weights of the updates, in ascending client order (as aggregate()).
[[nodiscard]] std::vector<double> aggregation_weights(const std::map<int, ClientUpdate>& updates, Weighting weighting);

/// The aggregation rule of `round` over `updates` answers. Central DP: noise of std σ·C/K on
/// the average of the K updates (each moves the uniform average by at most C/K, so σ stays
/// the ratio of noise to sensitivity), from the round's own server-side stream.
[[nodiscard]] RoundRule round_rule(const RoundSettings& settings, int round, std::size_t updates);

/// How closing the training phase went.
struct QuorumOutcome {
  bool met = false;
  std::size_t needed = 0;
};

/// Closes the training phase of `r`: with a quorum, aggregates the updates into r.result and
/// `global` and measures the aggregation (r.measure); without one, r.result stays empty and
/// `global` unchanged. `measure_warning` gets why the measure failed, if it did.
QuorumOutcome close_training_round(const RoundSettings& settings, RoundInFlight& r, TensorMap& global,
                                   std::string* measure_warning = nullptr);

/// Asynchronous mode: FedBuff's server step over r.buffer; r.updates gets the last update of
/// each client (for its record) and r.result broadcasts the new global.
void close_async_round(const RoundSettings& settings, RoundInFlight& r, TensorMap& global);

/// The clients evaluated at the end of `r` (ascending), of `clients` minus `lost`: every one when
/// evaluation.clients_sample is 0; else those that trained (r.selected and r.updates) plus
/// clients_sample of the others, drawn for r.round from the server's evaluation_sample stream.
[[nodiscard]] std::vector<int> clients_to_evaluate(const RoundSettings& settings, const RoundInFlight& r, int clients,
                                                   const std::set<int>& lost);

/// Client `ev.client`'s record of round r.round, `seconds` into it.
[[nodiscard]] ClientRoundRecord client_record(const RoundSettings& settings, const RoundInFlight& r,
                                              const ClientEval& ev, double seconds);

/// The q-quantile of `values` (q in [0, 1]), linear between order statistics (numpy's default); NaN when empty.
[[nodiscard]] double percentile(std::vector<double> values, double q);

/// The round's summary over the clients' records; `virtual_now` is the virtual clock after the round.
/// Wire bytes are the caller's (they come from the sockets).
[[nodiscard]] RoundSummary round_summary(const RoundSettings& settings, const RoundInFlight& r,
                                         const std::vector<ClientRoundRecord>& records, const EvalResult* global_eval,
                                         double seconds, std::optional<double> virtual_now);

/// What the run holds between rounds: enough to write a checkpoint or to resume from one.
struct RunProgress {
  int rounds_completed = 0;
  int rounds_without_quorum = 0;
  int silent_rounds = 0; ///< rounds in a row without any answer (nobody_answered)
  TensorMap global;
  std::vector<ClientCheckpoint> states; ///< each client's state after the last finished round
  ClientCheckpoint central_state;
  std::vector<int> crashes;
};

/// The checkpoint after round `round`; `with_clients` false when their state stays on nodes.
[[nodiscard]] RunCheckpoint round_checkpoint(const RoundSettings& settings, const RunProgress& progress, int round,
                                             uint64_t config_hash, bool with_clients);

/// Why the run stops before round `round + 1` (it would spend more than privacy.target_epsilon);
/// nothing when it may go on.
[[nodiscard]] std::optional<std::string> budget_stop(const RoundSettings& settings, int round);

/// Asynchronous mode: the client that starts next after `finished` commits — itself when every
/// client trains at once, otherwise one of `idle` drawn from the selection stream of commit
/// `commits` (it leaves `idle`; `finished` joins it).
[[nodiscard]] int next_async_client(const RoundSettings& settings, int clients, std::set<int>& idle, int finished,
                                    int64_t commits);

} // namespace fedvlm
