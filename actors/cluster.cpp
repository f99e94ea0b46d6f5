// actors/cluster.cpp — the registry nodes join, client assignment, setup fingerprints (a node's life: actors/cluster_node.cpp).
#include "actors/cluster.hpp"
#include "support/join.hpp"

#include "actors/message_types.hpp"
#include "actors/messages.hpp"
#include "actors/run_clients.hpp"
#include "fl/federation/starting_state.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/config/experiment_toml.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/results/client_checkpoint.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "fl/runtime/interrupt.hpp"
#include "fl/runtime/thread_plan.hpp"

#include <ATen/ATen.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <spdlog/spdlog.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>

namespace fedvlm {

std::pair<std::string, uint16_t> parse_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  bool digits = !port.empty() && port.size() <= 5;
  for (char ch : port) digits = digits && ch >= '0' && ch <= '9';
  if (colon == 0 || !digits || std::stol(port) > 65535)
    throw std::invalid_argument("\"" + text + "\": expected HOST:PORT with a port in 0..65535, e.g. 127.0.0.1:4242");
  return {text.substr(0, colon), static_cast<uint16_t>(std::stol(port))};
}

void load_network(caf::actor_system_config& cfg, const TlsFiles& tls) {
  cfg.load<caf::io::middleman>();
  if (!tls.enabled()) return;
  check_tls_files(tls);
  cfg.openssl_certificate = tls.certificate;
  cfg.openssl_key = tls.key;
  cfg.openssl_cafile = tls.ca;
  cfg.load<caf::openssl::manager>();
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

/// What the registry found while gathering, read by the server once answered.
struct GatherRecord {
  std::set<int> restarted;       ///< clients that started again from their starting state
  bool nodes_keep_state = false; ///< every node joined with --state
};

namespace {

struct registry_state {
  int expected = 0;
  int clients = 0;
  std::string config;
  SetupFingerprint fingerprint;
  std::vector<caf::typed_response_promise<NodeAssignment>> joins;
  std::vector<int> slots; ///< of each node that joined, in order
  std::vector<std::vector<int>> assignment;
  std::map<int, NodeReady> ready;
  caf::typed_response_promise<std::vector<client_actor>> waiter;
  bool waiting = false;
  bool started = false; ///< the server got its clients: the run is under way
  std::string failure;
  // -- while the run is under way ----------------------------------------------
  caf::actor aggregator;                  ///< told when a node takes lost clients back
  RunObserver* observer = nullptr;        ///< hears the nodes' scheduler figures
  std::map<int, caf::actor> reporters;    ///< each node's reporter actor, from its join
  std::map<uint64_t, int> tokens;         ///< each node's join token → its place
  std::map<caf::actor_addr, int> node_of; ///< reporter → node index, once the node is ready
  std::set<int> vacant;                   ///< nodes lost: their block waits for a node to join
  // -- rolling back after a lost node (ServeSettings::roll_back_lost_nodes) ----------
  bool roll_back = false;                 ///< the server rolls back when a node keeping state is lost
  bool nodes_keep_state = false;          ///< every node ready when the run (re)started kept state
  bool awaiting_rollback = false;         ///< a node was lost: joins wait for the round to restore
  /// Joins held until the server says the round (rollback_atom): the place and its promise.
  std::vector<std::pair<int, caf::typed_response_promise<NodeAssignment>>> deferred;
  int rollbacks = 0;                      ///< how often the run rolled back
  int wait_number = 0;                    ///< the server's waits (nodes_atom), counted
  // -- resuming -------------------------------------------------------------------
  int resume_round = 0;                   ///< > 0: the nodes restore their clients' states of this round
  bool restart_missing = false;           ///< a node lacking them: its clients start again (not refused)
  std::shared_ptr<GatherRecord> record;   ///< read by the server once answered
  static inline const char* name = "fedvlm.registry";
};

using registry_actor_t = registry_actor::stateful_pointer<registry_state>;

/// Answers the server's wait once every node is ready, or a node was refused.
void maybe_answer(registry_actor_t self) {
  auto& st = self->state;
  if (!st.waiting) return;
  if (!st.failure.empty()) {
    st.waiting = false;
    st.waiter.deliver(caf::make_error(caf::sec::invalid_argument, st.failure));
    return;
  }
  if (static_cast<int>(st.ready.size()) < st.expected) return;
  std::vector<client_actor> by_id(static_cast<std::size_t>(st.clients));
  for (const auto& [node, r] : st.ready)
    for (std::size_t i = 0; i < r.actors.size(); ++i)
      by_id[static_cast<std::size_t>(st.assignment[static_cast<std::size_t>(node)][i])] = r.actors[i];
  st.waiting = false;
  st.started = true;
  st.nodes_keep_state = std::all_of(st.ready.begin(), st.ready.end(), [](const auto& r) { return r.second.keeps_state; });
  st.record->nodes_keep_state = st.nodes_keep_state;
  st.waiter.deliver(std::move(by_id));
}

std::string id_list(const std::vector<int>& ids) { return join(ids); }

/// Watches a ready node through its reporter actor (alive as long as the node's process): when
/// it goes down, the node's block becomes vacant for another node to take. Only once the node is
/// ready: monitoring a node's actor while its connection is still being set up (in the join
/// handler) made CAF 0.17 report it unreachable at once under concurrent TLS handshakes.
void watch_node(registry_actor_t self, int node) {
  const auto it = self->state.reporters.find(node);
  if (it == self->state.reporters.end() || !it->second) return;
  self->state.node_of[it->second.address()] = node;
  self->monitor(it->second);
}

/// A node that prepared another setup than the server: told why (its process ends saying so),
/// its clients stopped, and its block left vacant for a node that matches to join and take.
void refuse_node(registry_actor_t self, const NodeReady& r, const std::string& why,
                 const std::string& what = "prepared another run than the server") {
  auto& s = self->state;
  const std::string text = "node " + std::to_string(r.node) + " (clients " +
                           id_list(s.assignment[static_cast<std::size_t>(r.node)]) + ") " + what +
                           " and is refused: " + why +
                           "; the run waits for a node that matches (fedvlm-sim node --connect ...)";
  spdlog::error("{}", text);
  if (const auto it = s.reporters.find(r.node); it != s.reporters.end() && it->second)
    caf::anon_send(it->second, refused_atom::value, text); // the reporter is not typed
  for (const auto& a : r.actors) self->send_exit(a, caf::exit_reason::user_shutdown);
  s.ready.erase(r.node);
  s.vacant.insert(r.node);
}

/// Resuming: a node whose clients had no saved state is refused naming them, or (with
/// restart_missing) they start again from their starting state, said in the log. False: refused.
bool accept_missing_states(registry_actor_t self, const NodeReady& r) {
  auto& s = self->state;
  if (r.without_state.empty()) return true;
  const std::string ids = id_list(r.without_state);
  if (!s.restart_missing) {
    refuse_node(self, r,
                "it has no saved state of clients " + ids + " after round " + std::to_string(s.resume_round) +
                    " to resume from (start it with --state DIR holding them, or serve with "
                    "--restart-missing-clients to start them again from their starting state)",
                "cannot resume its clients");
    return false;
  }
  spdlog::warn("node {}: clients {} have no saved state after round {}: they start again from their starting "
               "state (--restart-missing-clients)", r.node, ids, s.resume_round);
  s.record->restarted.insert(r.without_state.begin(), r.without_state.end());
  return true;
}

/// A node that joined after the run started, ready with the clients of a lost node: they go back
/// to the aggregator. One that prepared another setup is refused and its block stays vacant.
void rejoined(registry_actor_t self, NodeReady& r) {
  auto& s = self->state;
  const auto& ids = s.assignment[static_cast<std::size_t>(r.node)];
  if (r.setup_fingerprint != s.fingerprint || r.actors.size() != ids.size()) {
    refuse_node(self, r,
                r.setup_fingerprint != s.fingerprint ? describe_setup_difference(s.fingerprint, r.setup_fingerprint)
                                                     : "another number of clients");
    return;
  }
  spdlog::info("node {} rejoined: it hosts clients {} again", r.node, id_list(ids));
  watch_node(self, r.node);
  if (s.aggregator) caf::anon_send(s.aggregator, rejoin_atom::value, ids, r.actors); // the aggregator is not typed
  s.ready[r.node] = std::move(r);
}

/// A node went away: its place is vacant and its clients are left out until a node takes it.
void node_lost(registry_actor_t self, const caf::down_msg& dm) {
  auto& s = self->state;
  const auto it = s.node_of.find(dm.source);
  if (it == s.node_of.end()) return;
  const int k = it->second;
  s.node_of.erase(it);
  s.ready.erase(k);
  s.vacant.insert(k);
  if (s.started && s.roll_back && s.nodes_keep_state) { // the server rolls back (rollback_atom)
    s.awaiting_rollback = true;
    spdlog::warn("node {} was lost ({}): the run stops its round to roll back to the newest round every node saved; "
                 "a node that joins takes clients {} with their states of that round", k,
                 self->system().render(dm.reason), id_list(s.assignment[static_cast<std::size_t>(k)]));
    return;
  }
  spdlog::warn("node {} was lost ({}): clients {} are left out until a node joins to take them back "
                 "(fedvlm-sim node --connect ...)", k, self->system().render(dm.reason),
                 id_list(s.assignment[static_cast<std::size_t>(k)]));
}

/// Asks each ready node's reporter for its figures now and hands them to the observer; answers
/// with how many nodes answered within 2 s.
caf::result<int> final_node_stats(registry_actor_t self) {
  auto rp = self->make_response_promise<int>();
  auto& s = self->state;
  if (s.node_of.empty()) {
    rp.deliver(0);
    return rp;
  }
  struct Tally {
    std::size_t pending = 0;
    int answered = 0;
  };
  auto tally = std::make_shared<Tally>();
  tally->pending = s.node_of.size();
  auto one_done = [rp, tally](bool answered) mutable {
    tally->answered += answered ? 1 : 0;
    if (--tally->pending == 0) rp.deliver(tally->answered);
  };
  for (const auto& [addr, node] : s.node_of) {
    const caf::actor reporter = s.reporters[node];
    self->request(reporter, std::chrono::seconds(2), final_stats_atom::value)
        .then(
            [self, one_done](const NodeSchedulerStats& stats) mutable {
              if (self->state.observer && stats.node >= 0 && stats.node < self->state.expected)
                self->state.observer->node_scheduler(stats);
              one_done(true);
            },
            [one_done](caf::error&) mutable { one_done(false); });
  }
  return rp;
}

/// The assignment of place `k` to a node that takes it: the clients restore the resume round's
/// states until the run is under way, then start from their starting states; held while the
/// server has yet to say the round it rolls back to.
caf::result<NodeAssignment> assign_place(registry_actor_t self, int k) {
  auto& s = self->state;
  if (s.awaiting_rollback) {
    s.deferred.emplace_back(k, self->make_response_promise<NodeAssignment>());
    return s.deferred.back().second;
  }
  return NodeAssignment{k, s.config, s.assignment[static_cast<std::size_t>(k)], s.fingerprint,
                        s.started ? 0 : s.resume_round};
}

/// The server rolls back to `round` after client `client`'s node was lost in `lost_round`: that
/// node's place is vacant (if its loss was not seen yet), the nodes that join restore `round`,
/// and the held joins are answered.
void roll_back(registry_actor_t self, int client, int lost_round, int round) {
  auto& s = self->state;
  int k = -1;
  for (std::size_t n = 0; n < s.assignment.size(); ++n)
    if (std::count(s.assignment[n].begin(), s.assignment[n].end(), client)) k = static_cast<int>(n);
  if (k < 0) return;
  if (s.ready.erase(k)) { // its down message is still on the way: ignored when it comes
    for (auto it = s.node_of.begin(); it != s.node_of.end();) it = it->second == k ? s.node_of.erase(it) : std::next(it);
    s.vacant.insert(k);
  }
  s.started = false;
  s.awaiting_rollback = false;
  s.resume_round = round;
  ++s.rollbacks;
  spdlog::warn("node {} (clients {}) lost in round {}: rolling back to round {} and waiting for a node with their "
               "states (fedvlm-sim node --connect HOST:PORT --state DIR)", k, id_list(s.assignment[static_cast<std::size_t>(k)]),
               lost_round, round);
  for (auto& [place, rp] : s.deferred) rp.deliver(NodeAssignment{place, s.config, s.assignment[static_cast<std::size_t>(place)], s.fingerprint, round});
  s.deferred.clear();
}

/// The time of the server's wait `wait` (0: whichever is under way) is over: answered with why.
void wait_over(registry_actor_t self, int wait) {
  auto& s = self->state;
  if (!s.waiting || (wait != 0 && wait != s.wait_number)) return; // an earlier wait's
  if (s.rollbacks > 0)
    s.failure = "the run rolled back to round " + std::to_string(s.resume_round) +
                " after losing a node, and no node with its clients' saved states took its place in time "
                "(start one with: fedvlm-sim node --connect HOST:PORT --state DIR)";
  else
    s.failure = "only " + std::to_string(s.ready.size()) + " of " + std::to_string(s.expected) +
                " nodes were ready in time (" + std::to_string(s.joins.size()) +
                " joined); start them with: fedvlm-sim node --connect HOST:PORT";
  maybe_answer(self);
}

registry_actor::behavior_type registry(registry_actor_t self, int nodes, std::string config, int clients,
                                       SetupFingerprint fingerprint,
                                       RunObserver* observer, int resume_round, const ServeSettings& settings,
                                       std::shared_ptr<GatherRecord> record) {
  auto& st = self->state;
  st.observer = observer;
  st.resume_round = resume_round;
  st.restart_missing = settings.restart_missing_clients;
  st.roll_back = settings.roll_back_lost_nodes;
  st.record = std::move(record);
  self->set_down_handler([self](caf::down_msg& dm) { node_lost(self, dm); });
  st.expected = nodes;
  st.clients = clients;
  st.config = std::move(config);
  st.fingerprint = fingerprint;
  return {
      [self](join_atom, int slots, caf::actor& reporter, uint64_t token) -> caf::result<NodeAssignment> {
        auto& s = self->state;
        // A node asking again (its earlier answer did not reach it, or it opened a fresh
        // connection because the first went silent): the same place, its new reporter kept.
        if (const auto known = s.tokens.find(token); known != s.tokens.end() && !s.ready.count(known->second)) {
          const int k = known->second;
          const auto slot = static_cast<std::size_t>(k);
          if (s.reporters[k].address() != reporter.address())
            spdlog::info("node {} asked again over a fresh connection", k);
          s.reporters[k] = reporter;
          if (!s.assignment.empty()) return assign_place(self, k);
          s.joins[slot] = self->make_response_promise<NodeAssignment>();
          s.slots[slot] = slots;
          return s.joins[slot];
        }
        if (!s.vacant.empty()) { // takes a lost node's place
          const int k = *s.vacant.begin();
          s.vacant.erase(s.vacant.begin());
          s.reporters[k] = reporter;
          s.tokens[token] = k;
          spdlog::info("a node joined to take over node {} (clients {})", k,
                       id_list(s.assignment[static_cast<std::size_t>(k)]));
          // Once the run is under way a lost node's clients start again from their starting
          // state, unless the run rolls back to a round they saved.
          return assign_place(self, k);
        }
        if (static_cast<int>(s.joins.size()) >= s.expected)
          return caf::make_error(caf::sec::invalid_argument,
                                 "all " + std::to_string(s.expected) + " nodes of this run have joined already"
                                 " and none was lost");
        s.joins.push_back(self->make_response_promise<NodeAssignment>());
        s.slots.push_back(slots);
        s.reporters[static_cast<int>(s.joins.size()) - 1] = reporter;
        s.tokens[token] = static_cast<int>(s.joins.size()) - 1;
        auto rp = s.joins.back();
        spdlog::info("node {} of {} joined{}", s.joins.size(), s.expected,
                     slots > 0 ? " with " + std::to_string(slots) + " slots" : std::string());
        if (static_cast<int>(s.joins.size()) == s.expected) {
          s.assignment = assign_clients(s.clients, s.slots);
          for (int k = 0; k < s.expected; ++k)
            s.joins[static_cast<std::size_t>(k)].deliver(
                NodeAssignment{k, s.config, s.assignment[static_cast<std::size_t>(k)], s.fingerprint, s.resume_round});
        }
        return rp;
      },
      [self](ready_atom, NodeReady& r) {
        auto& s = self->state;
        if (s.started) {
          if (r.node >= 0 && r.node < s.expected) rejoined(self, r);
          return;
        }
        // A node taking over one lost (or refused) before the run started is checked like the
        // first. One whose files differ is refused and the run waits for one that matches.
        if (r.node >= 0 && r.node < s.expected && r.setup_fingerprint != s.fingerprint)
          refuse_node(self, r, describe_setup_difference(s.fingerprint, r.setup_fingerprint));
        else if (r.node < 0 || r.node >= s.expected ||
                 r.actors.size() != s.assignment[static_cast<std::size_t>(r.node)].size())
          s.failure = "node " + std::to_string(r.node) + " reported " + std::to_string(r.actors.size()) +
                      " clients for another assignment";
        else if (accept_missing_states(self, r)) {
          watch_node(self, r.node);
          s.ready[r.node] = std::move(r);
        }
        maybe_answer(self);
      },
      [self](probe_atom) { return static_cast<int>(self->state.joins.size()); },
      [self](aggregator_atom, caf::actor& aggregator) { self->state.aggregator = std::move(aggregator); },
      [self](rollback_atom, int client, int lost_round, int round) { roll_back(self, client, lost_round, round); },
      [self](node_stats_atom, const NodeSchedulerStats& stats) {
        if (self->state.observer && stats.node >= 0 && stats.node < self->state.expected)
          self->state.observer->node_scheduler(stats);
      },
      [self](final_stats_atom) -> caf::result<int> { return final_node_stats(self); },
      [self](nodes_atom, double wait_seconds) -> caf::result<std::vector<client_actor>> {
        auto& s = self->state;
        s.waiter = self->make_response_promise<std::vector<client_actor>>();
        s.waiting = true;
        self->delayed_send(self, std::chrono::milliseconds(static_cast<int64_t>(wait_seconds * 1000)),
                           wait_over_atom::value, ++s.wait_number);
        auto rp = s.waiter;
        maybe_answer(self);
        return rp;
      },
      [self](wait_over_atom, int wait) { wait_over(self, wait); },
  };
}

} // namespace

uint64_t tensor_map_fingerprint(const TensorMap& tensors) {
  uint64_t h = config_hash("");
  for (const auto& [name, t] : tensors) { // the map is ordered by name
    const at::Tensor c = t.to(at::kCPU).contiguous();
    std::string head = name + "|" + std::string(c.dtype().name());
    for (int64_t d : c.sizes()) head += " " + std::to_string(d);
    h = config_hash(head + "|", h);
    h = config_hash(std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes()), h);
  }
  return h;
}

SetupFingerprint run_setup_fingerprint(const RunSetup& setup) {
  // Each part as text (or bytes), through the one 64-bit hash the checkpoints use.
  SetupFingerprint fp;
  std::string data = std::to_string(setup.pool_samples);
  for (std::size_t k = 0; k < setup.splits.size(); ++k) {
    data += "|train";
    for (int64_t i : setup.splits[k].train) data += " " + std::to_string(i);
    data += "|test";
    for (int64_t i : setup.splits[k].test) data += " " + std::to_string(i);
    if (k < setup.label_counts.size()) {
      data += "|labels";
      for (int64_t n : setup.label_counts[k]) data += " " + std::to_string(n);
    }
  }
  fp.data = config_hash(data);
  std::string layout;
  for (const auto& [name, shape] : setup.targets)
    layout += "|" + name + " " + std::to_string(shape.out_features) + "x" + std::to_string(shape.in_features);
  if (setup.task) layout += "|" + std::to_string(setup.task->shared_bytes());
  fp.layout = config_hash(layout);
  fp.weights = setup.task ? tensor_map_fingerprint(setup.task->base_weights()) : 0;
  return fp;
}

std::string describe_setup_difference(const SetupFingerprint& server, const SetupFingerprint& node) {
  std::string out;
  const std::tuple<const char*, uint64_t, uint64_t> parts[] = {
      {"its base weights differ", node.weights, server.weights},
      {"its data differ (the clients' splits or labels)", node.data, server.data},
      {"its adapted layers or shared bytes differ", node.layout, server.layout}};
  for (const auto& [what, here, there] : parts)
    if (here != there)
      out += std::string(out.empty() ? "" : "; ") + what + " (content hash " + std::to_string(here) + " on the node, " +
             std::to_string(there) + " on the server)";
  return out;
}

std::vector<std::vector<int>> assign_clients(int clients, const std::vector<int>& slots) {
  if (slots.empty()) throw std::invalid_argument("assign_clients: expected at least one node, got none");
  std::vector<int64_t> weight;
  int64_t total = 0;
  for (int s : slots) total += weight.emplace_back(std::max(s, 1));
  // Largest remainder: each node's floor share, then one more for the largest remainders.
  std::vector<int64_t> count(slots.size());
  std::vector<std::pair<int64_t, std::size_t>> remainder; // (−remainder, node): sorts largest first
  int64_t given = 0;
  for (std::size_t k = 0; k < slots.size(); ++k) {
    count[k] = clients * weight[k] / total;
    given += count[k];
    remainder.emplace_back(-(clients * weight[k] % total), k);
  }
  std::sort(remainder.begin(), remainder.end());
  for (std::size_t i = 0; given < clients; ++i, ++given) ++count[remainder[i].second];
  std::vector<std::vector<int>> out(slots.size());
  int next = 0;
  for (std::size_t k = 0; k < slots.size(); ++k)
    for (int64_t i = 0; i < count[k]; ++i) out[k].push_back(next++);
  return out;
}

namespace {

/// Asks the registry for every client's actor once all nodes are ready (nodes_atom). Ctrl-C ends
/// the wait at once: a watcher ends it as the timeout would, and the stop is reported as an
/// interruption (not "only 0 of N nodes were ready"). Throws Interrupted, or std::runtime_error
/// saying why the nodes did not come; the registry is stopped then (the nodes that came stop too).
std::vector<client_actor> await_clients(caf::actor_system& system, const registry_actor& reg, double wait_seconds) {
  std::vector<client_actor> out;
  std::string failure;
  caf::scoped_actor self{system};
  {
    std::atomic<bool> answered{false};
    std::thread watcher([&] {
      while (!answered.load() && !interrupt_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (!answered.load()) caf::anon_send(reg, wait_over_atom::value, 0);
    });
    self->request(reg, caf::infinite, nodes_atom::value, wait_seconds)
        .receive([&](std::vector<client_actor>& actors) { out = std::move(actors); },
                 [&](caf::error& err) { failure = system.render(err); });
    answered.store(true);
    watcher.join();
  }
  if (interrupt_requested()) {
    self->send_exit(reg, caf::exit_reason::user_shutdown);
    throw Interrupted{interrupt_signal()};
  }
  if (!failure.empty()) {
    self->send_exit(reg, caf::exit_reason::user_shutdown); // the nodes that came stop too
    throw std::runtime_error("serve: " + failure);
  }
  return out;
}

} // namespace

RemoteClients gather_remote_clients(caf::actor_system& system, const ServeSettings& settings,
                                    const std::string& config_toml, int clients,
                                    const SetupFingerprint& setup_fingerprint,
                                    RunObserver* observer, int resume_round) {
  auto record = std::make_shared<GatherRecord>();
  const registry_actor reg = system.spawn(registry, settings.nodes, config_toml, clients, setup_fingerprint, observer,
                                          resume_round, settings, record);
  const bool tls = settings.tls.enabled();
  auto port = tls ? caf::openssl::publish(reg, settings.port, settings.host.c_str(), /*reuse=*/true)
                  : system.middleman().publish(reg, settings.port, settings.host.c_str(), /*reuse_addr=*/true);
  if (!port)
    throw std::runtime_error("cannot listen on " + settings.host + ":" + std::to_string(settings.port) + ": " +
                             system.render(port.error()));
  spdlog::info("serving on {}:{} ({}): waiting for {} node(s) (fedvlm-sim node --connect {}:{}{})", settings.host,
               *port, tls ? "mutual TLS, nodes need a certificate signed by " + settings.tls.ca : "plain TCP",
               settings.nodes, settings.host, *port, tls ? " --cert F --key F --ca F" : "");
  std::fprintf(stderr, "listening on %s:%u%s\n", settings.host.c_str(), static_cast<unsigned>(*port),
               tls ? " (TLS)" : "");
  std::fflush(stderr);
  RemoteClients out;
  out.clients = await_clients(system, reg, settings.wait_seconds);
  out.registry = reg;
  out.port = *port;
  out.restarted.assign(record->restarted.begin(), record->restarted.end());
  out.nodes_keep_state = record->nodes_keep_state;
  out.record = std::move(record);
  return out;
}

void roll_back_remote_clients(caf::actor_system& system, RemoteClients& cluster, int lost_client, int lost_round,
                              int round, double wait_seconds) {
  // The registry writes the record while it waits: clients restarted now (--restart-missing-
  // clients) have nothing to restore; those of earlier waits may.
  std::set<int> restarted_before;
  std::swap(restarted_before, cluster.record->restarted);
  caf::anon_send(cluster.registry, rollback_atom::value, lost_client, lost_round, round);
  cluster.clients = await_clients(system, cluster.registry, wait_seconds);
  const std::set<int> restarted_now = cluster.record->restarted;
  cluster.record->restarted.insert(restarted_before.begin(), restarted_before.end());
  cluster.restarted.assign(cluster.record->restarted.begin(), cluster.record->restarted.end());
  cluster.nodes_keep_state = cluster.record->nodes_keep_state;
  // Every client takes back its state of `round`: the surviving nodes' held later ones, and a
  // node that joined restored it already (restoring it again changes nothing).
  std::vector<int> missing;
  std::vector<std::string> failures;
  caf::scoped_actor self{system};
  for (std::size_t id = 0; id < cluster.clients.size(); ++id) {
    if (restarted_now.count(static_cast<int>(id))) continue; // --restart-missing-clients
    self->request(cluster.clients[id], std::chrono::seconds(60), restore_atom::value, round)
        .receive([&](bool restored) { if (!restored) missing.push_back(static_cast<int>(id)); },
                 [&](caf::error& err) { failures.push_back("client " + std::to_string(id) + ": " + system.render(err)); });
  }
  if (!missing.empty())
    failures.insert(failures.begin(), "no saved state of clients " + id_list(missing) + " of that round on their nodes");
  if (!failures.empty())
    throw std::runtime_error("serve: rolling back to round " + std::to_string(round) + " after losing a node: " +
                             join(failures, "; "));
  if (round > 0) spdlog::info("every client took back its state of round {}: the run goes on with round {}", round, round + 1);
  else spdlog::info("every client took back its starting state: the run starts again from round 0");
}

} // namespace fedvlm
