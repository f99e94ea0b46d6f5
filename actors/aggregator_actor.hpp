// actors/aggregator_actor.hpp — runs the rounds: collects client updates, averages, broadcasts, evaluates.
#pragma once

#include "actors/messages.hpp"
#include "actors/wire_traffic.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "fl/results/run_state_mirror.hpp"
#include "fl/results/run_records.hpp"
#include "fl/config/strategy.hpp"
#include "fl/federation/round.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace fedvlm {

/// The round logic's settings (fl/federation/round.hpp) and what the actor is wired to.
struct AggregatorConfig : RoundSettings {
  /// evaluation.global_test: after every round the scheduler scores `global_template` (the
  /// shared initial adapters) overlaid with the global tensors on these pool indices.
  std::vector<int64_t> global_test;
  TensorMap global_template;
  /// evaluation.holdout_clients: after the rounds holdout_due names, the scheduler scores each
  /// of these new clients with the global tensors, before and after `adapt_steps` local steps
  /// (fl/federation/holdout.hpp); never selected, never sent anything else.
  std::vector<HoldoutClient> holdout;
  int holdout_every = 1;
  int adapt_steps = 0;
  /// evaluation.target_accuracy (0 = off) and stop_at_target: rounds to target in every round's
  /// summary; stop once reached. A resumed run's curves start from `previous_rounds`.
  double target_accuracy = 0;
  bool stop_at_target = false;
  std::vector<RoundSummary> previous_rounds;
  scheduler_actor scheduler;
  std::vector<client_actor> clients; ///< index = client id
  client_actor central_trainer;      ///< centralized strategy only
  RunObserver* observer = nullptr; ///< outlives the actor system
  /// Clients on other processes: the bytes on the wire since the last call, read into every
  /// round's summary. Empty in one process.
  std::function<WireBytes()> wire_meter;

  // -- state and persistence ----------------------------------------------------
  /// Where the run starts: a fresh run has round 0 (evaluation before fine-tuning); a resumed
  /// one holds the checkpoint of its last finished round.
  RunCheckpoint resume_from;
  /// Each client's state at the start (index = id; the centralized trainer's is `central_state`).
  std::vector<ClientCheckpoint> initial_states;
  ClientCheckpoint central_state;
  /// The clients live on other processes (serve): their private state (adapters, optimizer
  /// moments) stays there. It is never requested after a round, so the round state handed to
  /// on_round_state and RunDone hold no client state, only the global (and a local central trainer).
  bool clients_keep_state = false;
  /// With clients_keep_state: after each round checkpoint_due(round, node_save_every, rounds)
  /// names, every client (not lost) is asked to save its state on its node (save_atom) before
  /// on_round_state, so the server's checkpoint of a round comes after the nodes'. 0: never.
  int node_save_every = 0;
  /// Spawns a replacement for a client whose actor died, from its state after the last finished
  /// round. Empty: a crashed client stays down.
  std::function<client_actor(int client, const ClientCheckpoint& state)> respawn;
  /// Set (serve, every node keeping its clients' states): a client whose node was lost (its
  /// actor down as unreachable) stops the run at once — this is called with the client and the
  /// round in flight, then start_atom is answered with EngineErrc::node_lost — so that the driver
  /// can roll back to the newest round every node saved. Empty: such a client stays down.
  std::function<void(int client, int round)> on_node_lost;
  /// Called on the aggregator's thread after every finished round (>= 1) with its state, before
  /// the next round starts: the driver writes adapters and checkpoints here (a RunStateMirror
  /// turns the hand-overs into whole states). The first is whole; where downloads replace whole
  /// tensors, later ones hold only the clients asked for their state and the download the
  /// others merged. An exception stops the run.
  std::function<void(RoundStateChange)> on_round_state;
  /// Synchronous rounds ask only the clients that trained (or whose state is not known) for
  /// their state; the others' is the state they had merged with the round's download, which the
  /// aggregator merges itself (apply_download), so a round's cost does not grow with the
  /// population. Set: every client is asked, as asynchronous runs always are (tests compare).
  bool collect_every_state = false;
};

/// The aggregator as the run driver and a server's registry see it.
using aggregator_actor = caf::typed_actor<
    // The whole run: every round, then the final state (or the error that stopped it).
    caf::replies_to<start_atom>::with<RunDone>,
    // Registry: a node took over these lost clients; ask them again from the next round.
    caf::reacts_to<rejoin_atom, std::vector<int>, std::vector<client_actor>>,
    // Driver: a stop signal arrived; answer the start request with an error now.
    caf::reacts_to<interrupt_atom>>;

/// Asynchronous mode: after round 0, clients train continuously (clients_per_round at once, or
/// all) and every buffer_size committed updates make one FedBuff aggregation, reported as a
/// round; updates are committed in virtual-time order (fl/federation/async_federation.hpp). A failed job
/// is dropped and its client starts again from the latest global. Async runs do not resume.
///
/// Handles (start_atom) → RunDone after round 0 (evaluation before fine-tuning) and
/// federation.rounds rounds (or from resume_from.round + 1). A round closes when every selected
/// client has answered or failed (a request times out after round_timeout_s); with fewer
/// answers than the quorum, the round's aggregation is skipped and the previous global matrices
/// stay. Simulated faults count as failed clients; a job that fails for real (non-finite loss,
/// an exception) stops the run with that error. A client actor that dies is respawned, or without
/// `respawn` left out until (rejoin_atom, ids, actors) hands in new actors for it — or, with
/// `on_node_lost`, stops the run when its node was lost.
[[nodiscard]] aggregator_actor spawn_aggregator(caf::actor_system& system, AggregatorConfig config);


} // namespace fedvlm
