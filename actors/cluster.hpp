// actors/cluster.hpp — clients on other processes: the server's registry of nodes, and a node.
//
// `fedvlm-sim serve` publishes a registry actor; each `fedvlm-sim node` connects, receives the
// resolved configuration and the ids of the clients it hosts, prepares the same run from its own
// copies of the weights and data, spawns its scheduler and those clients, and hands their actor
// handles back. The server's aggregator then talks to them as to local actors: CAF's middleman
// carries the messages (actors/messages.hpp field lists). Private state (pLoRA's A, optimizer
// moments) stays on the node; only what the strategy shares crosses the network.
#pragma once

#include "fl/run_setup.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace fedvlm {

struct ServeSettings {
  std::string host = "127.0.0.1";
  uint16_t port = 0; ///< 0: any free port (the chosen one is logged)
  int nodes = 1;
  double wait_seconds = 120; ///< for every node to join and be ready
};

/// "HOST:PORT" → (host, port). Throws std::invalid_argument saying what was expected.
[[nodiscard]] std::pair<std::string, uint16_t> parse_host_port(const std::string& text);

/// Server → node: what to run and which clients to host.
struct NodeAssignment {
  int node = 0;
  std::string config_toml;  ///< the resolved configuration (every key)
  std::vector<int> clients; ///< ascending ids
  uint64_t setup_fingerprint = 0; ///< the server's run_setup_fingerprint: the node must match it
};

/// Node → server: its clients' actors, in the order of the assignment.
struct NodeReady {
  int node = 0;
  std::vector<caf::actor> actors;
  uint64_t setup_fingerprint = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeAssignment& x) {
  return f(caf::meta::type_name("NodeAssignment"), x.node, x.config_toml, x.clients, x.setup_fingerprint);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeReady& x) {
  return f(caf::meta::type_name("NodeReady"), x.node, x.actors, x.setup_fingerprint);
}

using join_atom = caf::atom_constant<caf::atom("join")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using nodes_atom = caf::atom_constant<caf::atom("nodes")>;

/// What both sides must have prepared identically: the pool size, every client's split, the
/// adapted layers and their shapes, the shared bytes. A node whose files differ (other weights,
/// another data set) yields another value and is refused.
[[nodiscard]] uint64_t run_setup_fingerprint(const RunSetup& setup);

/// Clients 0..clients-1 over `nodes` nodes in contiguous blocks whose sizes differ by at most one.
[[nodiscard]] std::vector<std::vector<int>> assign_clients(int clients, int nodes);

/// The clients a server gathered, and the registry the nodes watch: stop it when the run ends,
/// and the nodes stop too.
struct RemoteClients {
  std::vector<caf::actor> clients; ///< by client id
  caf::actor registry;
};

/// Server: publishes the registry on settings.host:port (loopback by default), waits for
/// settings.nodes nodes to join and report ready, and returns every client's actor by id.
/// Throws std::runtime_error when the port cannot be bound, when not enough nodes came within
/// settings.wait_seconds (saying how many did), or when a node prepared another setup. The
/// registry stays published while `system` lives (nodes watch it to know when to stop).
[[nodiscard]] RemoteClients gather_remote_clients(caf::actor_system& system, const ServeSettings& settings,
                                                  const std::string& config_toml, int clients, uint64_t setup_fingerprint);

/// Node: connects to host:port, hosts the clients it is given until the server goes away.
/// Returns the process exit code; errors are printed to stderr.
int run_node(const std::string& host, uint16_t port);

} // namespace fedvlm
