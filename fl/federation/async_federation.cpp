// fl/federation/async_federation.cpp — FedBuff's staleness weights, virtual durations, event order and server step.
#include "fl/federation/async_federation.hpp"

#include "fl/federation/client_faults.hpp"
#include "fl/runtime/random_streams.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

namespace fedvlm {

double staleness_weight(const FederationSettings& f, int staleness) {
  const double s = std::max(0, staleness);
  switch (f.staleness) {
  case StalenessRule::constant: return 1.0;
  case StalenessRule::inverse_sqrt: return 1.0 / std::sqrt(1.0 + s);
  case StalenessRule::polynomial: return std::pow(1.0 + s, -f.staleness_exponent);
  }
  return 1.0;
}

int effective_buffer_size(const FederationSettings& f) {
  return f.buffer_size > 0 ? f.buffer_size : std::max(1, f.clients / 2);
}

void AsyncTimeline::start(const AsyncJob& job) {
  if (!jobs_.emplace(std::make_pair(job.end, job.client), job).second)
    throw std::logic_error("AsyncTimeline: client " + std::to_string(job.client) + " already has a job ending then");
}

std::optional<AsyncJob> AsyncTimeline::next() const {
  if (jobs_.empty()) return std::nullopt;
  return jobs_.begin()->second;
}

AsyncJob AsyncTimeline::pop() {
  if (jobs_.empty()) throw std::logic_error("AsyncTimeline::pop: no job in flight");
  AsyncJob j = jobs_.begin()->second;
  jobs_.erase(jobs_.begin());
  now_ = std::max(now_, j.end);
  return j;
}

TensorMap fedbuff_step(const TensorMap& global, const std::vector<BufferedUpdate>& buffer, const FederationSettings& f) {
  if (buffer.empty()) throw std::invalid_argument("fedbuff_step: empty buffer");
  int64_t total = 0;
  for (const auto& u : buffer) total += u.samples;
  std::map<std::string, at::Tensor> sum;
  for (const auto& u : buffer) {
    if (u.sent == nullptr || u.base == nullptr) throw std::invalid_argument("fedbuff_step: client " + std::to_string(u.client) + " has no tensors");
    const double w = fedavg_weight(u.samples, total, buffer.size(), f.weighting) * staleness_weight(f, u.staleness);
    for (const auto& [name, t] : *u.sent) {
      auto b = u.base->find(name);
      if (b == u.base->end() || !b->second.sizes().equals(t.sizes()))
        throw std::invalid_argument("fedbuff_step: client " + std::to_string(u.client) + "'s '" + name +
                                    "' has no base of its shape " + tensor_shape_string(t.sizes()));
      at::Tensor delta = (t.to(at::kDouble) - b->second.to(at::kDouble)) * w;
      auto [it, fresh] = sum.emplace(name, delta);
      if (!fresh) it->second.add_(delta);
    }
  }
  TensorMap out = global;
  for (const auto& [name, s] : sum) {
    auto g = global.find(name);
    if (g == global.end() || !g->second.sizes().equals(s.sizes()))
      throw std::invalid_argument("fedbuff_step: the global has no '" + name + "' of shape " + tensor_shape_string(s.sizes()));
    out[name] = (g->second.to(at::kDouble) + f.server_lr * s).to(g->second.scalar_type()).contiguous();
  }
  return out;
}

} // namespace fedvlm
