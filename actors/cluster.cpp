// actors/cluster.cpp — the registry nodes join, client assignment, and a node's life.
#include "actors/cluster.hpp"

#include "actors/messages.hpp"
#include "actors/run_driver.hpp"
#include "actors/scheduler_actor.hpp"
#include "fl/experiment_toml.hpp"
#include "fl/federated_task.hpp"
#include "fl/run_checkpoint.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>

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

namespace {

using timeout_atom = caf::atom_constant<caf::atom("tout")>;

struct registry_state {
  int expected = 0;
  int clients = 0;
  std::string config;
  uint64_t fingerprint = 0;
  std::vector<caf::typed_response_promise<NodeAssignment>> joins;
  std::vector<std::vector<int>> assignment;
  std::map<int, NodeReady> ready;
  caf::typed_response_promise<std::vector<caf::actor>> waiter;
  bool waiting = false;
  std::string failure;
  static inline const char* name = "fedvlm.registry";
};

using registry_actor_t = caf::stateful_actor<registry_state>;

/// Answers the server's wait once every node is ready, or a node was refused.
void maybe_answer(registry_actor_t* self) {
  auto& st = self->state;
  if (!st.waiting) return;
  if (!st.failure.empty()) {
    st.waiting = false;
    st.waiter.deliver(caf::make_error(caf::sec::invalid_argument, st.failure));
    return;
  }
  if (static_cast<int>(st.ready.size()) < st.expected) return;
  std::vector<caf::actor> by_id(static_cast<std::size_t>(st.clients));
  for (const auto& [node, r] : st.ready)
    for (std::size_t i = 0; i < r.actors.size(); ++i)
      by_id[static_cast<std::size_t>(st.assignment[static_cast<std::size_t>(node)][i])] = r.actors[i];
  st.waiting = false;
  st.waiter.deliver(std::move(by_id));
}

caf::behavior registry(registry_actor_t* self, int nodes, std::string config, int clients, uint64_t fingerprint) {
  auto& st = self->state;
  st.expected = nodes;
  st.clients = clients;
  st.config = std::move(config);
  st.fingerprint = fingerprint;
  return {
      [self](join_atom) -> caf::result<NodeAssignment> {
        auto& s = self->state;
        if (static_cast<int>(s.joins.size()) >= s.expected)
          return caf::make_error(caf::sec::invalid_argument,
                                 "all " + std::to_string(s.expected) + " nodes of this run have joined already");
        s.joins.push_back(self->make_response_promise<NodeAssignment>());
        auto rp = s.joins.back();
        spdlog::info("node {} of {} joined", s.joins.size(), s.expected);
        if (static_cast<int>(s.joins.size()) == s.expected) {
          s.assignment = assign_clients(s.clients, s.expected);
          for (int k = 0; k < s.expected; ++k)
            s.joins[static_cast<std::size_t>(k)].deliver(
                NodeAssignment{k, s.config, s.assignment[static_cast<std::size_t>(k)], s.fingerprint});
        }
        return rp;
      },
      [self](ready_atom, NodeReady& r) {
        auto& s = self->state;
        if (r.setup_fingerprint != s.fingerprint)
          s.failure = "node " + std::to_string(r.node) +
                      " prepared another run than the server (its weights, data or settings differ: setup "
                      "fingerprint " + std::to_string(r.setup_fingerprint) + ", the server's " +
                      std::to_string(s.fingerprint) + ")";
        else if (r.node < 0 || r.node >= s.expected ||
                 r.actors.size() != s.assignment[static_cast<std::size_t>(r.node)].size())
          s.failure = "node " + std::to_string(r.node) + " reported " + std::to_string(r.actors.size()) +
                      " clients for another assignment";
        else
          s.ready[r.node] = std::move(r);
        maybe_answer(self);
      },
      [self](nodes_atom, double wait_seconds) -> caf::result<std::vector<caf::actor>> {
        auto& s = self->state;
        s.waiter = self->make_response_promise<std::vector<caf::actor>>();
        s.waiting = true;
        self->delayed_send(self, std::chrono::milliseconds(static_cast<int64_t>(wait_seconds * 1000)),
                           timeout_atom::value);
        auto rp = s.waiter;
        maybe_answer(self);
        return rp;
      },
      [self](timeout_atom) {
        auto& s = self->state;
        if (!s.waiting) return;
        s.failure = "only " + std::to_string(s.ready.size()) + " of " + std::to_string(s.expected) +
                    " nodes were ready in time (" + std::to_string(s.joins.size()) +
                    " joined); start them with: fedvlm-sim node --connect HOST:PORT";
        maybe_answer(self);
      },
  };
}

} // namespace

uint64_t run_setup_fingerprint(const RunSetup& setup) {
  // Everything that must agree, as text, through the one 64-bit hash the checkpoints use.
  std::string text = std::to_string(setup.pool_samples);
  for (const auto& split : setup.splits) {
    text += "|train";
    for (int64_t i : split.train) text += " " + std::to_string(i);
    text += "|test";
    for (int64_t i : split.test) text += " " + std::to_string(i);
  }
  for (const auto& [name, shape] : setup.targets)
    text += "|" + name + " " + std::to_string(shape.out_features) + "x" + std::to_string(shape.in_features);
  if (setup.task) text += "|" + std::to_string(setup.task->shared_bytes());
  return config_hash(text);
}

std::vector<std::vector<int>> assign_clients(int clients, int nodes) {
  if (nodes < 1) throw std::invalid_argument("assign_clients: expected at least one node, got " + std::to_string(nodes));
  std::vector<std::vector<int>> out(static_cast<std::size_t>(nodes));
  int next = 0;
  for (int k = 0; k < nodes; ++k) {
    const int count = clients / nodes + (k < clients % nodes ? 1 : 0);
    for (int i = 0; i < count; ++i) out[static_cast<std::size_t>(k)].push_back(next++);
  }
  return out;
}

RemoteClients gather_remote_clients(caf::actor_system& system, const ServeSettings& settings,
                                    const std::string& config_toml, int clients, uint64_t setup_fingerprint) {
  const caf::actor reg = system.spawn(registry, settings.nodes, config_toml, clients, setup_fingerprint);
  auto port = system.middleman().publish(reg, settings.port, settings.host.c_str(), /*reuse_addr=*/true);
  if (!port)
    throw std::runtime_error("cannot listen on " + settings.host + ":" + std::to_string(settings.port) + ": " +
                             system.render(port.error()));
  spdlog::info("serving on {}:{}: waiting for {} node(s) (fedvlm-sim node --connect {}:{})", settings.host, *port,
               settings.nodes, settings.host, *port);
  std::fprintf(stderr, "listening on %s:%u\n", settings.host.c_str(), static_cast<unsigned>(*port));
  std::fflush(stderr);
  std::vector<caf::actor> out;
  std::string failure;
  caf::scoped_actor self{system};
  self->request(reg, caf::infinite, nodes_atom::value, settings.wait_seconds)
      .receive([&](std::vector<caf::actor>& actors) { out = std::move(actors); },
               [&](caf::error& err) { failure = system.render(err); });
  if (!failure.empty()) {
    self->send_exit(reg, caf::exit_reason::user_shutdown); // the nodes that came stop too
    throw std::runtime_error("serve: " + failure);
  }
  return {std::move(out), reg};
}

int run_node(const std::string& host, uint16_t port) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", static_cast<size_t>(2));
  register_message_types(cfg);
  caf::actor_system system{cfg};
  auto reg = system.middleman().remote_actor(host, port);
  if (!reg) {
    std::fprintf(stderr, "fedvlm-sim node: cannot reach a server at %s:%u: %s\n", host.c_str(),
                 static_cast<unsigned>(port), system.render(reg.error()).c_str());
    return 1;
  }
  caf::scoped_actor self{system};
  NodeAssignment assignment;
  std::string failure;
  self->request(*reg, caf::infinite, join_atom::value)
      .receive([&](NodeAssignment& a) { assignment = std::move(a); },
               [&](caf::error& err) { failure = system.render(err); });
  if (!failure.empty()) {
    std::fprintf(stderr, "fedvlm-sim node: the server refused: %s\n", failure.c_str());
    return 1;
  }
  std::vector<caf::actor> hosted;
  caf::actor scheduler;
  try {
    const ExperimentPlan plan = parse_experiment(assignment.config_toml, "the server's configuration");
    if (plan.runs.size() != 1) throw std::runtime_error("the server sent " + std::to_string(plan.runs.size()) + " runs");
    const ExperimentConfig& c = plan.runs.front();
    DatasetCache datasets;
    const RunSetup setup = prepare_run(c, datasets, SetupMode::execute);
    ClientCheckpoint central;
    const std::vector<ClientCheckpoint> states = starting_states(c, setup, {}, central);
    scheduler = spawn_scheduler(system, scheduler_config(c, setup, nullptr));
    NodeReady ready;
    ready.node = assignment.node;
    ready.setup_fingerprint = run_setup_fingerprint(setup);
    for (int id : assignment.clients)
      ready.actors.push_back(spawn_run_client(system, c, setup, scheduler, id, states.at(static_cast<std::size_t>(id))));
    hosted = ready.actors;
    std::string ids;
    for (int id : assignment.clients) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    spdlog::info("node {}: hosting clients {} of run {}", assignment.node, ids, c.name);
    self->monitor(*reg);
    self->send(*reg, ready_atom::value, std::move(ready));
    // Serve until the server's registry goes away (the run ended, or the server stopped).
    bool server_gone = false;
    self->receive_while([&] { return !server_gone; })([&](caf::down_msg&) { server_gone = true; });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedvlm-sim node: %s\n", e.what());
    failure = e.what();
  }
  for (const auto& a : hosted) self->send_exit(a, caf::exit_reason::user_shutdown);
  if (scheduler) self->send_exit(scheduler, caf::exit_reason::user_shutdown);
  return failure.empty() ? 0 : 1;
}

} // namespace fedvlm
