// fl/federation/async_server.cpp — starts, arrivals and virtual-time commits of FedBuff's server.
#include "fl/federation/async_server.hpp"

namespace fedvlm {

AsyncServer::AsyncServer(const RoundSettings& settings, int clients, int version)
    : settings_(settings),
      clients_(clients),
      clock_(settings.federation, settings.network, settings.local_epochs, settings.faults, settings.seed, settings.train_samples),
      jobs_started_(static_cast<std::size_t>(clients), 0),
      version_(version) {}

std::vector<int> AsyncServer::first_clients() {
  const std::vector<int> first = select_clients(clients_, settings_.federation.clients_per_round, settings_.seed, 0);
  for (int id = 0; id < clients_; ++id) idle_.insert(id);
  for (int id : first) idle_.erase(id);
  return first;
}

int AsyncServer::start(int client, const TensorMap& global) {
  const int job = ++jobs_started_[static_cast<std::size_t>(client)];
  // The global down, the same shapes up (averaging rules only): transfers on the client's links.
  const auto bytes = static_cast<int64_t>(tensor_map_bytes(global));
  timeline_.start({client, job, version_, timeline_.now() + clock_.job_seconds(client, job, bytes, bytes)});
  base_[client] = global;
  return job;
}

void AsyncServer::arrived(int client, int job, std::optional<ClientUpdate> update) {
  arrived_[{client, job}] = std::move(update);
}

std::optional<AsyncServer::Commit> AsyncServer::commit_next(RoundInFlight& round) {
  const std::optional<AsyncJob> next = timeline_.next();
  if (!next) return std::nullopt;
  auto it = arrived_.find({next->client, next->job});
  if (it == arrived_.end()) return std::nullopt; // the earliest job is still computing: wait for it
  timeline_.pop();
  std::optional<ClientUpdate> update = std::move(it->second);
  arrived_.erase(it);
  ++commits_;
  Commit c;
  c.client = next->client;
  c.job = next->job;
  c.buffer_full = update.has_value() &&
                  static_cast<int>(round.buffer.size()) + 1 >= effective_buffer_size(settings_.federation);
  if (update) {
    c.committed = true;
    round.buffer.push_back({std::move(*update), std::move(base_[next->client]), version_ - next->version});
  }
  c.next_client = next_async_client(settings_, clients_, idle_, next->client, commits_);
  return c;
}

} // namespace fedvlm
