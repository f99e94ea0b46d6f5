// fl/results/run_state_mirror.cpp — the driver's copy of a run's state, from whole and partial hand-overs.
#include "fl/results/run_state_mirror.hpp"
#include "fl/results/state_compare.hpp"

#include <numeric>
#include <stdexcept>
#include <string>

namespace fedvlm {

void RunStateMirror::apply(RoundStateChange change) {
  const int round = change.state.round;
  if (change.whole) {
    // A client that only took the round's global tensors did not change (a delta checkpoint
    // leaves it out): compared with what it held, every download merged.
    const bool compare = have_ && state_.clients.size() == change.state.clients.size();
    std::vector<ClientCheckpoint> before;
    if (compare) {
      (void)whole(); // every pending download merged first
      before = std::move(state_.clients);
    }
    state_ = std::move(change.state);
    have_ = true;
    received_.assign(state_.clients.size(), round);
    if (!compare) changed_.assign(state_.clients.size(), round);
    for (std::size_t i = 0; compare && i < state_.clients.size(); ++i)
      if (before[i].id != state_.clients[i].id || !only_took_global(before[i], state_.clients[i], state_.global))
        changed_[i] = round;
    pending_.clear();
    pending_round_ = 0;
    last_changed_.resize(state_.clients.size());
    std::iota(last_changed_.begin(), last_changed_.end(), std::size_t{0});
    return;
  }
  if (!have_ || change.clients != state_.clients.size())
    throw std::invalid_argument("RunStateMirror: a partial hand-over of " + std::to_string(change.clients) +
                                " clients over " + (have_ ? std::to_string(state_.clients.size()) : std::string("none")));
  std::vector<ClientCheckpoint> clients = std::move(state_.clients);
  state_ = std::move(change.state);
  last_changed_.clear();
  for (ClientCheckpoint& cs : state_.clients) {
    const auto index = static_cast<std::size_t>(cs.id);
    if (cs.id < 0 || index >= clients.size() || (!last_changed_.empty() && index <= last_changed_.back()))
      throw std::invalid_argument("RunStateMirror: client " + std::to_string(cs.id) + " out of range or out of order");
    clients[index] = std::move(cs);
    received_[index] = changed_[index] = round;
    last_changed_.push_back(index);
  }
  state_.clients = std::move(clients);
  if (!change.download.empty()) {
    pending_ = std::move(change.download);
    pending_round_ = round;
  }
}

std::vector<std::size_t> RunStateMirror::changed_after(int round) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < changed_.size(); ++i)
    if (changed_[i] > round) out.push_back(i);
  return out;
}

const ClientCheckpoint& RunStateMirror::client(std::size_t index) {
  ClientCheckpoint& cs = state_.clients.at(index);
  if (received_[index] < pending_round_) {
    // The download replaces the tensors it names whole (what apply_download does with them).
    for (const auto& [name, t] : pending_) cs.adapters[name] = t;
    received_[index] = pending_round_;
  }
  return cs;
}

const RunCheckpoint& RunStateMirror::whole() {
  for (std::size_t i = 0; i < state_.clients.size(); ++i) (void)client(i);
  return state_;
}

} // namespace fedvlm
