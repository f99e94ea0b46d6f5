// fl/federation/virtual_clock.cpp — clients' compute, transfer and availability on the virtual clock; a synchronous round's timing.
#include "fl/federation/virtual_clock.hpp"

#include "fl/federation/client_faults.hpp"
#include "fl/runtime/random_streams.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

namespace fedvlm {

namespace {

/// Uniform in (0, 1) from the top 53 bits (std's distributions differ between libraries).
double uniform01(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 0.5) / 9007199254740992.0; }

double bytes_per_s(double mbps) { return mbps * 1e6 / 8.0; }

double transfer(int64_t bytes, double rate, double latency) {
  if (bytes <= 0 && latency == 0) return 0;
  return latency + (rate > 0 ? static_cast<double>(bytes) / rate : 0.0);
}

} // namespace

ClientClock::ClientClock(const FederationSettings& federation, const NetworkSettings& network, int local_epochs,
                         const FaultSettings& faults, uint64_t run_seed, std::vector<int64_t> train_samples)
    : federation_(federation), epochs_(local_epochs), faults_(faults), seed_(run_seed), period_(network.trace_period_s),
      samples_(std::move(train_samples)) {
  if (!samples_.empty())
    mean_samples_ = std::max(1.0, static_cast<double>(std::accumulate(samples_.begin(), samples_.end(), int64_t{0})) /
                                      static_cast<double>(samples_.size()));
  for (std::size_t k = 0; k < samples_.size(); ++k) {
    ClientLink l;
    if (!network.devices.empty()) {
      const DeviceProfile& d = network.devices[k % network.devices.size()];
      l.speed_factor = d.speed_factor;
      l.down_bytes_per_s = bytes_per_s(d.down_mbps);
      l.up_bytes_per_s = bytes_per_s(d.up_mbps);
      l.latency_s = d.latency_s;
      l.windows = d.windows;
      links_.push_back(std::move(l));
      continue;
    }
    if (federation.speed_sigma > 0) {
      std::mt19937_64 rng(job_seed(seed_, static_cast<int>(k), 0, Stream::client_speed));
      l.speed_factor = draw_delay(DelayDistribution::lognormal, 1.0, federation.speed_sigma, uniform01(rng), uniform01(rng));
    }
    double link_factor = 1;
    if (network.bandwidth_sigma > 0) {
      std::mt19937_64 rng(job_seed(seed_, static_cast<int>(k), 0, Stream::client_link));
      link_factor = draw_delay(DelayDistribution::lognormal, 1.0, network.bandwidth_sigma, uniform01(rng), uniform01(rng));
    }
    l.down_bytes_per_s = bytes_per_s(network.down_mbps) * link_factor;
    l.up_bytes_per_s = bytes_per_s(network.up_mbps) * link_factor;
    l.latency_s = network.latency_s;
    links_.push_back(std::move(l));
  }
}

const ClientLink& ClientClock::link(int client) const {
  const auto k = static_cast<std::size_t>(client);
  if (client < 0 || k >= links_.size()) throw std::out_of_range("ClientClock: no client " + std::to_string(client));
  return links_[k];
}

double ClientClock::compute_seconds(int client, int job) const {
  const ClientLink& l = link(client);
  const double work =
      federation_.client_seconds * epochs_ * static_cast<double>(samples_[static_cast<std::size_t>(client)]) / mean_samples_;
  return work * l.speed_factor + draw_client_faults(faults_, seed_, client, job).delay_seconds;
}

double ClientClock::transfer_seconds(int client, int64_t bytes_down, int64_t bytes_up) const {
  const ClientLink& l = link(client);
  return transfer(bytes_down, l.down_bytes_per_s, l.latency_s) + transfer(bytes_up, l.up_bytes_per_s, l.latency_s);
}

double ClientClock::job_seconds(int client, int job, int64_t bytes_down, int64_t bytes_up) const {
  return compute_seconds(client, job) + transfer_seconds(client, bytes_down, bytes_up);
}

bool ClientClock::available(int client, double from, double to) const {
  const ClientLink& l = link(client);
  if (l.windows.empty()) return true;
  double shift = 0;
  if (period_ > 0) {
    shift = std::floor(from / period_) * period_;
    from -= shift;
    to -= shift;
  }
  for (const auto& [a, b] : l.windows)
    if (from >= a && to < b) return true;
  return false;
}

double ClientClock::next_available(double now) const {
  double best = std::numeric_limits<double>::infinity();
  for (const ClientLink& l : links_)
    for (const auto& [a, b] : l.windows) {
      double start = a;
      if (period_ > 0) start += std::floor((now - a) / period_ + 1) * period_; // the next repeat after now
      if (start > now) best = std::min(best, start);
    }
  return best;
}

std::vector<int> sample_clients(std::vector<int> ids, int count, uint64_t seed, int round, Stream purpose) {
  if (count <= 0 || count >= static_cast<int>(ids.size())) return ids;
  std::mt19937_64 rng(job_seed(seed, -1, round, purpose));
  for (std::size_t i = ids.size() - 1; i > 0; --i) {
    std::uniform_int_distribution<std::size_t> pick(0, i);
    std::swap(ids[i], ids[pick(rng)]);
  }
  ids.resize(static_cast<std::size_t>(count));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<int> select_on_clock(const FederationSettings& f, const ClientClock& clock, uint64_t seed, int round, double now,
                                 int& wanted) {
  std::vector<int> candidates;
  candidates.reserve(static_cast<std::size_t>(clock.clients()));
  for (int k = 0; k < clock.clients(); ++k)
    if (clock.available(k, now, now)) candidates.push_back(k);
  const int per_round = f.clients_per_round;
  int count = per_round;
  if (per_round > 0 && f.overcommit > 1) count = static_cast<int>(std::ceil(per_round * f.overcommit - 1e-9));
  std::vector<int> picked = sample_clients(std::move(candidates), count, seed, round);
  wanted = per_round > 0 && f.overcommit > 1 ? std::min(per_round, static_cast<int>(picked.size()))
                                             : static_cast<int>(picked.size());
  return picked;
}

RoundTiming time_round(const FederationSettings& f, const ClientClock& clock, double now, const std::map<int, double>& finish,
                       std::size_t wanted, bool any_failed) {
  RoundTiming t;
  t.finish = finish;
  std::vector<std::pair<double, int>> order;
  bool deadline_dropped = false;
  for (const auto& [id, end] : finish) {
    if (!clock.available(id, now, now + end)) {
      t.dropped[id] = "went offline before finishing (its availability window ends first)";
    } else if (f.round_deadline_s > 0 && end > f.round_deadline_s) {
      t.dropped[id] = "would finish at " + std::to_string(end) + " simulated s, after federation.round_deadline_s = " +
                      std::to_string(f.round_deadline_s);
      deadline_dropped = true;
    } else {
      order.emplace_back(end, id);
    }
  }
  std::sort(order.begin(), order.end());
  double last = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i >= wanted) {
      t.dropped[order[i].second] = "not among the first " + std::to_string(wanted) + " to finish (federation.overcommit)";
      continue;
    }
    t.kept.push_back(order[i].second);
    last = std::max(last, order[i].first);
  }
  std::sort(t.kept.begin(), t.kept.end());
  if (finish.empty() && wanted == 0 && !any_failed) {
    // Nobody could be selected: the server waits for a window to open (or its deadline).
    const double next = clock.next_available(now);
    t.duration = f.round_deadline_s > 0 ? std::min(f.round_deadline_s, std::isfinite(next) ? next - now : f.round_deadline_s)
                                        : (std::isfinite(next) ? next - now : 0.0);
    return t;
  }
  const bool short_of_answers = t.kept.size() < wanted && (any_failed || !t.dropped.empty());
  if (f.round_deadline_s > 0 && (deadline_dropped || short_of_answers)) t.duration = f.round_deadline_s;
  else t.duration = last;
  return t;
}

} // namespace fedvlm
