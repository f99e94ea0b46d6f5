// fl/results/run_state_mirror.hpp — a run's state on the driver's side, kept from each round's hand-over: whole, or only the clients that changed.
//
// With 100,000 clients and 10 a round, handing every client's state over after each round
// (and comparing each with the last checkpoint) made a round's cost grow with the population.
// Where a round's download replaces shared tensors whole (defers_downloads), the aggregator
// hands over only the clients whose own state changed, plus the download that every other
// client merged; the mirror merges it into a client only when that client is read.
#pragma once

#include "fl/results/run_checkpoint.hpp"

#include <cstddef>
#include <vector>

namespace fedvlm {

/// What the aggregator hands to the driver after a round.
struct RoundStateChange {
  /// Whole: the round's checkpoint with every client. Otherwise its run fields and global, and
  /// only the clients whose state changed beyond merging `download` (ascending id = index).
  RunCheckpoint state;
  bool whole = true;
  /// Not whole: what every client not in `state.clients` merged this round, each tensor
  /// replacing the one of its name (empty: nothing was downloaded).
  TensorMap download;
  /// Not whole: the number of clients.
  std::size_t clients = 0;
};

/// The newest round's state, from whole and partial hand-overs (tensors shared, not copied).
class RunStateMirror {
public:
  /// Throws std::invalid_argument for a partial hand-over before any whole one, or one whose
  /// clients do not fit (an id out of range, out of order).
  void apply(RoundStateChange change);

  [[nodiscard]] bool empty() const { return !have_; }
  [[nodiscard]] int round() const { return state_.round; }
  [[nodiscard]] std::size_t size() const { return state_.clients.size(); }
  /// The run fields and global of the newest round; its clients may lack the newest download.
  [[nodiscard]] const RunCheckpoint& head() const { return state_; }
  /// Indices (into the clients) whose state changed, other than by taking the global's tensors,
  /// after round `round`: those a partial hand-over named, and those a whole one holds changed.
  [[nodiscard]] std::vector<std::size_t> changed_after(int round) const;
  /// The indices the last hand-over named (every one after a whole hand-over).
  [[nodiscard]] const std::vector<std::size_t>& last_changed() const { return last_changed_; }
  /// The client at `index` with every download it has yet to merge merged.
  const ClientCheckpoint& client(std::size_t index);
  /// The whole state: every client up to date.
  const RunCheckpoint& whole();

private:
  RunCheckpoint state_;
  bool have_ = false;
  std::vector<int> received_; ///< by index: the round whose hand-over last named the client
  std::vector<int> changed_;  ///< by index: the last round the client changed in
  TensorMap pending_;         ///< the newest download
  int pending_round_ = 0;
  std::vector<std::size_t> last_changed_;
};

} // namespace fedvlm
