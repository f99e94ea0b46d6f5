// actors/cluster_protocol.hpp — what a server's registry and its nodes say to each other.
#pragma once

#include "actors/messages.hpp"
#include "fl/results/run_records.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace fedvlm {

/// What a node and the server must have prepared identically, in three parts so that a refusal
/// can say which differs.
struct SetupFingerprint {
  uint64_t weights = 0; ///< the frozen base's tensors: names, dtypes, shapes and bytes
  uint64_t data = 0;    ///< every client's split and label counts, the pool's size
  uint64_t layout = 0;  ///< the adapted layers and their shapes, the bytes shared per round
  bool operator==(const SetupFingerprint& o) const { return weights == o.weights && data == o.data && layout == o.layout; }
  bool operator!=(const SetupFingerprint& o) const { return !(*this == o); }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SetupFingerprint& x) {
  return f(caf::meta::type_name("SetupFingerprint"), x.weights, x.data, x.layout);
}

/// Server → node: what to run and which clients to host.
struct NodeAssignment {
  int node = 0;
  std::string config_toml;  ///< the resolved configuration (every key)
  std::vector<int> clients; ///< ascending ids
  SetupFingerprint setup_fingerprint; ///< the server's run_setup_fingerprint: the node must match it
  int resume_round = 0; ///< > 0: the run resumes after this round; the clients start from their saved states
};

/// Node → server: its clients' actors, in the order of the assignment.
struct NodeReady {
  int node = 0;
  std::vector<client_actor> actors;
  SetupFingerprint setup_fingerprint;
  /// Resuming: the clients that had no saved state after the resume round on this node (it was
  /// started without --state, or on another machine): they start from their starting state.
  std::vector<int> without_state;
  /// It keeps its clients' states (--state): when it is lost, the run can roll back to the
  /// newest round every node saved instead of restarting its clients.
  bool keeps_state = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeAssignment& x) {
  return f(caf::meta::type_name("NodeAssignment"), x.node, x.config_toml, x.clients, x.setup_fingerprint,
           x.resume_round);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeSchedulerStats& x) {
  return f(caf::meta::type_name("NodeSchedulerStats"), x.node, x.queue_depth, x.running_jobs, x.jobs, x.busy_seconds,
           x.resident_bytes, x.device_bytes_in_use, x.device_peak_bytes);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeReady& x) {
  return f(caf::meta::type_name("NodeReady"), x.node, x.actors, x.setup_fingerprint, x.without_state,
           x.keeps_state);
}

using join_atom = caf::atom_constant<caf::atom("join")>;
/// Registry → itself: (wait_over_atom, wait) — the time of wait `wait` (counted from 1) for nodes
/// to join is over; wait 0: whatever wait is under way (a stop signal).
using wait_over_atom = caf::atom_constant<caf::atom("waitover")>;
/// Node → registry: a liveness probe while the node waits for its assignment.
using probe_atom = caf::atom_constant<caf::atom("probe")>;
/// Registry → a node's reporter: (refused_atom, why) — its setup differs from the server's.
using refused_atom = caf::atom_constant<caf::atom("refused")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using nodes_atom = caf::atom_constant<caf::atom("nodes")>;
/// Server → registry: (aggregator_atom, aggregator) — whom to hand back the clients of a lost
/// node when another node joins to take them over.
using aggregator_atom = caf::atom_constant<caf::atom("aggr")>;
/// Server → registry: (rollback_atom, client, lost_round, round) — client `client`'s node was
/// lost in `lost_round` and the run rolls back to `round`: its block waits for a node that
/// restores its clients' states of that round; ask (nodes_atom, seconds) for the clients again.
using rollback_atom = caf::atom_constant<caf::atom("rollback")>;
/// Node → registry: (node_stats_atom, NodeSchedulerStats) twice a second, for the exporter.
using node_stats_atom = caf::atom_constant<caf::atom("nodestats")>;
/// Server → registry → each ready node's reporter: the scheduler's figures now (the run ended:
/// the last twice-a-second report may be up to half a second old).
using final_stats_atom = caf::atom_constant<caf::atom("finalstats")>;

/// The server's registry, as nodes and the server see it; a node built with another protocol is
/// refused when it connects (CAF compares the interfaces).
using registry_actor = caf::typed_actor<
    // Node: join with this many job slots (its weight in the assignment; 0 = 1), its reporter
    // actor (watched once the node is ready: when it goes down the node is lost) and a join token
    // (random, drawn once per node process); answered once every node joined, or at once when
    // taking over a lost node's clients. A node asking again with the same token — over the same
    // connection, or over a fresh one when the first went silent — gets the same place.
    caf::replies_to<join_atom, int, caf::actor, uint64_t>::with<NodeAssignment>,
    // Node: is this connection still carrying messages? Answered with the nodes joined so far.
    caf::replies_to<probe_atom>::with<int>,
    // Node: its clients are up (or, with another setup fingerprint, it is refused).
    caf::reacts_to<ready_atom, NodeReady>,
    // Node: its scheduler's figures, twice a second.
    caf::reacts_to<node_stats_atom, NodeSchedulerStats>,
    // Server, at the end of the run: every ready node's figures now, to the exporter; answered
    // with how many nodes answered (a node that does not within 2 s is left out).
    caf::replies_to<final_stats_atom>::with<int>,
    // Server: every client's actor by id once all nodes are ready, or an error after `seconds`.
    caf::replies_to<nodes_atom, double>::with<std::vector<client_actor>>,
    // Server: the aggregator to hand back a lost node's clients to.
    caf::reacts_to<aggregator_atom, caf::actor>, caf::reacts_to<wait_over_atom, int>,
    // Server: a node was lost and the run rolls back (rollback_atom above).
    caf::reacts_to<rollback_atom, int, int, int>>;

} // namespace fedvlm
