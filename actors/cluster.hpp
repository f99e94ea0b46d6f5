// actors/cluster.hpp — clients on other processes: the server's registry of nodes, and a node.
//
// `fedvlm-sim serve` publishes a registry actor; each `fedvlm-sim node` connects, receives the
// resolved configuration and the ids of the clients it hosts, prepares the same run from its own
// copies of the weights and data, spawns its scheduler and those clients, and hands their actor
// handles back. The server's aggregator then talks to them as to local actors: CAF's middleman
// carries the messages (actors/messages.hpp field lists). Private state (pLoRA's A, optimizer
// moments) stays on the node; only what the strategy shares crosses the network.
#pragma once

#include "actors/cluster_protocol.hpp"
#include "actors/messages.hpp"
#include "fl/results/run_records.hpp"
#include "fl/federation/run_setup.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fedvlm {

/// Mutual TLS through CAF's OpenSSL module: this process's certificate (PEM chain) and private key,
/// and the CA that must have signed the peer's certificate. Both sides present a certificate and
/// verify the other's; a peer signed by another CA fails the handshake. Empty: plain TCP.
struct TlsFiles {
  std::string certificate;
  std::string key;
  std::string ca;
  [[nodiscard]] bool enabled() const { return !certificate.empty() || !key.empty() || !ca.empty(); }
};

/// Checks the three files up front, before any socket is opened (defined in actors/tls_files.cpp):
/// all three given, each a readable regular file, --cert a PEM certificate that has not expired,
/// --key an unencrypted PEM private key that belongs to that certificate, --ca one or more PEM
/// CA certificates. Throws std::invalid_argument naming the flag, the file and what is wrong:
/// CAF would otherwise abort on a bad file, or hang in a handshake that can never succeed.
void check_tls_files(const TlsFiles& tls);

/// Loads CAF's middleman, and its OpenSSL module configured with `tls` when that is enabled.
void load_network(caf::actor_system_config& cfg, const TlsFiles& tls);

/// True for the addresses that never leave this machine (127.0.0.1, localhost, ::1).
[[nodiscard]] bool is_loopback(const std::string& host);

struct ServeSettings {
  std::string host = "127.0.0.1";
  uint16_t port = 0; ///< 0: any free port (the chosen one is logged)
  int nodes = 1;
  double wait_seconds = 120; ///< for every node to join and be ready
  TlsFiles tls;
  /// Resuming (serve --resume): a node whose clients have no saved state after the resume round
  /// is refused, naming them; with this set, they start from their starting state instead
  /// (said in the log and in run.json).
  bool restart_missing_clients = false;
  /// Set by the run driver (synchronous runs): when a node is lost and every node keeps its
  /// clients' states (joined with --state), the registry holds a node that joins to take the
  /// lost block until the server says which round to restore (rollback_atom), instead of handing
  /// it the clients' starting states.
  bool roll_back_lost_nodes = false;
};

/// "HOST:PORT" → (host, port). Throws std::invalid_argument saying what was expected.
[[nodiscard]] std::pair<std::string, uint16_t> parse_host_port(const std::string& text);

/// A content hash of tensors: every name, dtype, shape and byte (device tensors are read back).
[[nodiscard]] uint64_t tensor_map_fingerprint(const TensorMap& tensors);

/// What both sides must have prepared identically. A node whose files differ (other weights,
/// another data set) yields another value and is refused, saying which part differs.
[[nodiscard]] SetupFingerprint run_setup_fingerprint(const RunSetup& setup);

/// Empty when they agree; otherwise what differs, e.g. "its base weights differ (content hash
/// 12 here, 34 on the server)".
[[nodiscard]] std::string describe_setup_difference(const SetupFingerprint& server, const SetupFingerprint& node);

/// Clients 0..clients-1 in contiguous blocks, one per node, sized in proportion to the nodes'
/// slots (largest remainder, ties to the earlier node): equal slots give sizes that differ by
/// at most one. Slots <= 0 count as 1.
[[nodiscard]] std::vector<std::vector<int>> assign_clients(int clients, const std::vector<int>& slots);

struct GatherRecord;

/// The clients a server gathered, and the registry the nodes watch: stop it when the run ends,
/// and the nodes stop too. While the run is under way the registry watches the nodes: when one
/// is lost, a node that joins later takes over its clients — from their starting state, and the
/// registry hands their new actors to the aggregator (send it aggregator_atom first); or, where
/// the run rolls back (roll_back_remote_clients), from their states saved after the round
/// rolled back to.
struct RemoteClients {
  std::vector<client_actor> clients; ///< by client id
  registry_actor registry;
  uint16_t port = 0; ///< where the server listens: its connections to the nodes are on it
  std::vector<int> restarted; ///< resuming: clients that started again from their starting state
  /// Every node joined with --state: it saves its clients' states after the checkpointed rounds.
  bool nodes_keep_state = false;
  std::shared_ptr<GatherRecord> record; ///< what the registry found (internal)
};

/// Server: publishes the registry on settings.host:port (loopback by default), waits for
/// settings.nodes nodes to join and report ready, and returns every client's actor by id.
/// Throws std::runtime_error when the port cannot be bound, or when not enough nodes were ready
/// within settings.wait_seconds (saying how many). A node that prepared another setup is refused
/// (the log and the node say which part differs) and its block waits for a node that matches. The
/// registry stays published while `system` lives (nodes watch it to know when to stop).
/// `observer` (may be null; outlives the system) hears every node's scheduler figures.
/// `resume_round` > 0: the nodes restore their clients' states saved after that round (a node
/// lacking them is refused, naming its clients, unless settings.restart_missing_clients).
[[nodiscard]] RemoteClients gather_remote_clients(caf::actor_system& system, const ServeSettings& settings,
                                                  const std::string& config_toml, int clients,
                                                  const SetupFingerprint& setup_fingerprint,
                                                  RunObserver* observer = nullptr, int resume_round = 0);

/// Server, after client `lost_client`'s node was lost in round `lost_round` (the aggregator
/// stopped): its block waits (up to `wait_seconds`) for a node to join and restore its clients'
/// states saved after `round` (0: their starting states); then every client — the surviving
/// nodes' too — takes back its state of `round` (restore_atom), and `cluster` holds every
/// client's actor again. Throws std::runtime_error when no node took the block in time, or a
/// client has no saved state of that round; Interrupted on a stop signal.
void roll_back_remote_clients(caf::actor_system& system, RemoteClients& cluster, int lost_client, int lost_round,
                              int round, double wait_seconds);

/// Node: connects to host:port (waiting up to wait_seconds for the server to listen: it may
/// still be loading its data), hosts the clients it is given until the server goes away. A
/// connection that stops carrying messages while the node waits to join (no answer to a probe
/// within 3 s) is replaced by a fresh one, joining again with the same token.
/// Returns the process exit code; errors are printed to stderr.
/// `slots` > 0: this node's job slots — its weight in the assignment and its scheduler's
/// concurrency (otherwise the configuration's).
/// `state_dir` (non-empty): where its clients save their states after the rounds the server
/// checkpoints (fl/results/client_checkpoint.hpp), and restore them from when the run resumes or
/// rolls back after losing a node (the server knows from NodeReady::keeps_state).
int run_node(const std::string& host, uint16_t port, const TlsFiles& tls = {}, double wait_seconds = 60, int slots = 0,
             const std::string& state_dir = {});

/// True once a TCP connection to host:port succeeds (then closed), false when none did within
/// `seconds`; tries every 200 ms.
[[nodiscard]] bool wait_for_listener(const std::string& host, uint16_t port, double seconds);

} // namespace fedvlm
