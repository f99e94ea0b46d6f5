// actors/cluster_node.cpp — a node's life: joining the server (over a fresh connection when one goes silent), hosting its clients, reporting its scheduler.
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
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>

namespace fedvlm {
namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using SaveState = std::function<void(int, const ClientCheckpoint&)>;
using LoadState = std::function<std::optional<ClientCheckpoint>(int)>;

/// A node's scheduler events, totalled for the server (NodeSchedulerStats).
class NodeStatsCollector : public RunObserverBase {
public:
  void set_node(int node) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.node = node;
  }
  [[nodiscard]] int node() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_.node;
  }
  [[nodiscard]] NodeSchedulerStats snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void scheduler_queue(int depth) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.queue_depth = depth;
  }
  void scheduler_job(const std::string& kind, double, double run_seconds) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.jobs[kind];
    stats_.busy_seconds[kind] += run_seconds;
  }
  void device_memory(int64_t bytes_in_use, int64_t peak_bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.device_bytes_in_use = bytes_in_use;
    stats_.device_peak_bytes = peak_bytes;
  }
  void process_memory(int64_t resident_bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.resident_bytes = resident_bytes;
  }
  void scheduler_memory(int running_jobs, int64_t, int64_t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.running_jobs = running_jobs;
  }

private:
  mutable std::mutex mutex_;
  NodeSchedulerStats stats_{-1}; ///< node -1 until the server assigned one: nothing is sent
};

/// A node's own actor: it lives as long as the node (the registry watches it to notice a lost
/// node) and sends the scheduler's figures to the registry twice a second once assigned.
caf::behavior node_reporter(caf::event_based_actor* self, registry_actor registry, const NodeStatsCollector* collector) {
  self->send(self, tick_atom::value);
  return {
      // The server refused this node (its files differ): said here, and the node ends (run_node
      // watches this actor).
      [=](refused_atom, const std::string& why) {
        std::fprintf(stderr, "fedvlm-sim node: refused by the server: %s\n", why.c_str());
        std::fflush(stderr);
        self->quit(caf::make_error(caf::sec::invalid_argument, why));
      },
      // The server's last look at this node's figures, at the end of the run.
      [=](final_stats_atom) { return collector->snapshot(); },
      [=](tick_atom) {
        if (collector->node() >= 0) self->send(registry, node_stats_atom::value, collector->snapshot());
        self->delayed_send(self, std::chrono::milliseconds(500), tick_atom::value);
      },
  };
}

/// One connection of a node to the server's registry, with its own actor system: inside one
/// system CAF keeps one connection per peer, so a fresh connection needs a fresh system.
struct NodeLink {
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> system;
  std::unique_ptr<caf::scoped_actor> self;
  registry_actor registry;
  caf::actor reporter;

  NodeLink() = default;
  NodeLink(const NodeLink&) = delete;
  NodeLink& operator=(const NodeLink&) = delete;
  ~NodeLink() { close(); }
  /// Stops the reporter (it would keep the system alive) and ends the system.
  void close() {
    if (self && reporter) (*self)->send_exit(reporter, caf::exit_reason::user_shutdown);
    reporter = caf::actor{};
    registry = registry_actor{};
    self.reset();
    system.reset();
    cfg.reset();
  }
};

/// Opens `link` (closed before): a system, the registry at host:port, a reporter. Empty when it
/// worked, otherwise what went wrong.
std::string node_link_open(NodeLink& link, const std::string& host, uint16_t port, const TlsFiles& tls,
                           const NodeStatsCollector& collector) {
  link.close();
  link.cfg = std::make_unique<caf::actor_system_config>();
  load_network(*link.cfg, tls);
  link.cfg->set("scheduler.max-threads", static_cast<size_t>(2));
  register_message_types(*link.cfg);
  link.system = std::make_unique<caf::actor_system>(*link.cfg);
  auto reg = tls.enabled() ? caf::openssl::remote_actor<registry_actor>(*link.system, host, port)
                           : link.system->middleman().remote_actor<registry_actor>(host, port);
  if (!reg) {
    const std::string err = link.system->render(reg.error());
    link.close();
    return err;
  }
  link.registry = *reg;
  link.self = std::make_unique<caf::scoped_actor>(*link.system);
  link.reporter = link.system->spawn(node_reporter, link.registry, &collector);
  return {};
}

/// Joins the server's registry and waits for this node's assignment. Empty when it came,
/// otherwise why not.
std::string join_server(NodeLink& link, const std::string& host, uint16_t port, const TlsFiles& tls,
                        const NodeStatsCollector& collector, int slots, double wait_seconds, NodeAssignment& assignment) {
  std::string failure;
  // The answer comes once every node has joined: asked again every few seconds with the same
  // token (the registry answers it with the same place), for as long as --wait. When a probe
  // gets no answer either, the connection went silent (seen over TLS with CAF 0.17 when several
  // nodes connect at the same instant: the node's connection is closed on both sides right after
  // its join reached the server, and nothing tells this side): the node opens a fresh one.
  std::random_device entropy;
  const uint64_t token = (static_cast<uint64_t>(entropy()) << 32) ^ entropy();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                                              std::max(wait_seconds, 10.0) * 1000));
  for (bool answered = false; !answered && failure.empty();) {
    if (!link.system) {
      if (const std::string err = node_link_open(link, host, port, tls, collector); !err.empty()) {
        failure = "a fresh connection failed: " + err;
        break;
      }
    }
    bool timed_out = false;
    (*link.self)->request(link.registry, std::chrono::seconds(3), join_atom::value, slots, link.reporter, token)
        .receive([&](NodeAssignment& a) { assignment = std::move(a), answered = true; },
                 [&](caf::error& err) {
                   if (err != caf::sec::request_timeout) failure = link.system->render(err);
                   else timed_out = true;
                 });
    if (!timed_out) continue;
    if (std::chrono::steady_clock::now() >= give_up) {
      failure = "no answer within --wait";
      break;
    }
    bool alive = false;
    (*link.self)->request(link.registry, std::chrono::seconds(3), probe_atom::value)
        .receive([&](int) { alive = true; }, [&](caf::error&) {});
    if (!alive) {
      spdlog::warn("node: the connection to {}:{} went silent; opening a fresh one", host, port);
      link.close();
    }
  }
  return failure;
}

/// A resumed run: each of this node's clients' state saved after the round resumed, where the
/// node has it; the clients without one are named in `ready` (the server refuses or restarts them).
void restore_saved_states(std::vector<ClientCheckpoint>& states, NodeReady& ready, const NodeAssignment& assignment,
                          const std::string& state_dir, const std::string& run_id) {
  if (assignment.resume_round > 0) // the states saved after that round, where this node has them
    for (int id : assignment.clients) {
      auto saved = state_dir.empty() ? std::nullopt : client_state_load(state_dir, run_id, id, assignment.resume_round);
      if (saved) states.at(static_cast<std::size_t>(id)) = std::move(*saved);
      else ready.without_state.push_back(id);
    }
  if (assignment.resume_round > 0)
    spdlog::info("node {}: resuming after round {}: {}", assignment.node, assignment.resume_round,
                 ready.without_state.empty() ? "every client's saved state found in " + state_dir
                                             : "no saved state of clients " + join(ready.without_state) +
                                                   (state_dir.empty() ? " (no --state)" : " in " + state_dir));
}

/// What saves each client's state after the rounds the server checkpoints, under --state (none
/// without it).
SaveState state_saver(const std::string& state_dir, const std::string& run_id, const std::string& config_toml,
                      int checkpoints_kept) {
  SaveState save; // each client's state after the rounds the server checkpoints, under --state
  if (!state_dir.empty())
    save = [state_dir, run_id, hash = config_hash(config_toml),
            keep = std::max(2, checkpoints_kept)](int round, const ClientCheckpoint& state) {
      // One more than the server keeps: the server writes its checkpoint of a round after the nodes.
      client_state_save(state_dir, run_id, hash, round, state, keep + 1);
    };
  return save;
}

/// What reads a client's state saved after a round back from --state, when the server rolls the
/// run back after losing a node (none without --state).
std::function<LoadState(int)> state_loader(const std::string& state_dir, const std::string& run_id) {
  return [state_dir, run_id](int id) -> LoadState {
    if (state_dir.empty()) return {};
    return [state_dir, run_id, id](int round) { return client_state_load(state_dir, run_id, id, round); };
  };
}

} // namespace

bool wait_for_listener(const std::string& host, uint16_t port, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  for (;;) {
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) == 0) {
      bool ok = false;
      for (addrinfo* a = found; a && !ok; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        ok = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
        ::close(fd);
      }
      ::freeaddrinfo(found);
      if (ok) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int run_node(const std::string& host, uint16_t port, const TlsFiles& tls, double wait_seconds, int slots,
             const std::string& state_dir) {
  if (!wait_for_listener(host, port, wait_seconds)) {
    std::fprintf(stderr, "fedvlm-sim node: no server listens at %s:%u (waited %.0f s; start it with fedvlm-sim serve)\n",
                 host.c_str(), static_cast<unsigned>(port), wait_seconds);
    return 1;
  }
  NodeStatsCollector collector; // the node's scheduler reports here: it must outlive the actor system
  NodeLink link;
  if (const std::string err = node_link_open(link, host, port, tls, collector); !err.empty()) {
    std::fprintf(stderr, "fedvlm-sim node: cannot reach a server at %s:%u%s: %s\n", host.c_str(),
                 static_cast<unsigned>(port),
                 tls.enabled() ? " over TLS (is it serving with --cert/--key/--ca, and are both certificates "
                                 "signed by the CAs the two sides trust?)"
                               : "",
                 err.c_str());
    return 1;
  }
  NodeAssignment assignment;
  std::string failure = join_server(link, host, port, tls, collector, slots, wait_seconds, assignment);
  if (!failure.empty()) {
    std::fprintf(stderr, "fedvlm-sim node: the server refused: %s\n", failure.c_str());
    return 1;
  }
  caf::actor_system& system = *link.system;
  caf::scoped_actor& self = *link.self;
  const registry_actor reg = link.registry;
  std::vector<client_actor> hosted;
  scheduler_actor scheduler;
  collector.set_node(assignment.node);
  try {
    const ExperimentPlan plan = parse_experiment(assignment.config_toml, "the server's configuration");
    if (plan.runs.size() != 1) throw std::runtime_error("the server sent " + std::to_string(plan.runs.size()) + " runs");
    ExperimentConfig c = plan.runs.front();
    if (slots > 0) c.scheduler.concurrency = slots; // the same results whatever the concurrency
    const ThreadPlan threads = thread_plan_for(c); // this node's cores, split between its slots
    apply_thread_plan(threads);
    spdlog::info("node {}: threads: {}", assignment.node, threads.describe());
    if (threads.oversubscribed()) spdlog::warn("{}", threads.warning());
    DatasetCache datasets;
    const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
    ClientCheckpoint central;
    std::vector<ClientCheckpoint> states = starting_states(c, setup, {}, central);
    const std::string run_id = c.name + "/" + c.run_label;
    NodeReady ready;
    ready.node = assignment.node;
    ready.setup_fingerprint = run_setup_fingerprint(setup);
    restore_saved_states(states, ready, assignment, state_dir, run_id);
    const SaveState save = state_saver(state_dir, run_id, assignment.config_toml, c.checkpoint.keep);
    const auto load = state_loader(state_dir, run_id);
    ready.keeps_state = !state_dir.empty();
    scheduler = spawn_scheduler(system, scheduler_config(c, setup, &collector));
    for (int id : assignment.clients)
      ready.actors.push_back(spawn_run_client(system, c, setup, scheduler, id, states.at(static_cast<std::size_t>(id)),
                                              /*on_node=*/true, save, load(id)));
    hosted = ready.actors;
    spdlog::info("node {}: hosting clients {} of run {}", assignment.node, join(assignment.clients), c.name);
    self->monitor(reg);
    self->monitor(link.reporter);
    self->send(reg, ready_atom::value, std::move(ready));
    // Serve until the server's registry goes away (the run ended, or the server stopped), or
    // the server refuses this node (its reporter ends, having said why).
    bool server_gone = false;
    self->receive_while([&] { return !server_gone; })([&](caf::down_msg& dm) {
      server_gone = true;
      if (dm.source == link.reporter.address()) failure = "refused by the server";
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedvlm-sim node: %s\n", e.what());
    failure = e.what();
  }
  for (const auto& a : hosted) self->send_exit(a, caf::exit_reason::user_shutdown);
  if (scheduler) self->send_exit(scheduler, caf::exit_reason::user_shutdown);
  return failure.empty() ? 0 : 1;
}

} // namespace fedvlm
