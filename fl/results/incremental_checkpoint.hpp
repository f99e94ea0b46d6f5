// fl/results/incremental_checkpoint.hpp — checkpoints that hold only what changed since the one before.
//
// A round's checkpoint used to hold every client's adapters and optimizer state, so a run of
// 10,000 clients with 10 a round wrote 10,000 clients' state after every round. Here most
// checkpoints are deltas over an older one (their "base"):
//   - a client whose state equals its state in the base (but for the global's tensors, which
//     it takes) is left out;
//   - of a client that changed, a tensor equal (byte for byte) to the global tensor of the same
//     name (pLoRA's B_g after the download), or, over a full base, to its tensor in the base,
//     is named, not stored;
//   - everything else (the round, the global, fault state, changed tensors, a changed client's
//     top-k residual) is stored whole.
// The writer makes each delta over the checkpoint it wrote before (a chain: a round's delta
// holds the clients that changed since the last checkpoint, so it costs the same at every
// population and every point of the chain); every `full_every`-th checkpoint is full again
// (compaction), so loading reads at most `full_every` files. Loading a delta and its bases
// gives back exactly the state that was saved (checked in tests), so a resume from a delta is
// byte-identical to a resume from a full checkpoint. Deltas over the last full one (what
// earlier versions wrote) load the same way.
//
// The file format (version 2: a delta's base and kept tensors follow the RunCheckpoint) is in
// run_checkpoint.hpp.
#pragma once

#include "fl/results/run_checkpoint.hpp"
#include "fl/results/state_compare.hpp"

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

class RunStateMirror;

/// Replaces each tensor of `fresh` that has the same bytes as `previous`'s of the same name (or,
/// where given, `global`'s) by that one, so that state that did not change is held once and
/// checkpoint_delta recognises it without comparing bytes. Safe because no holder of a client's
/// state changes a tensor in place (training works on copies).
void share_unchanged(TensorMap& fresh, const TensorMap& previous, const TensorMap* global);

/// `current` as a delta over the full checkpoint `base`. Throws std::invalid_argument when
/// `current` has clients `base` has not, or in another order (then write a full one).
[[nodiscard]] StoredCheckpoint checkpoint_delta(const RunCheckpoint& base, const RunCheckpoint& current);

/// A delta over the checkpoint of `previous_round` (its state not at hand): `changed` (ascending
/// indices) are the clients whose state changed since, stored but for the global's tensors; every
/// other client is left out (its state then, with the global's tensors taken). Throws
/// std::invalid_argument when the previous checkpoint had another number of clients.
[[nodiscard]] StoredCheckpoint checkpoint_delta_over(int previous_round, std::size_t previous_clients,
                                                     const RunCheckpoint& head, std::size_t clients,
                                                     const std::function<const ClientCheckpoint&(std::size_t)>& client_at,
                                                     const std::vector<std::size_t>& changed);

/// The state `delta` was made from, given its base (round delta.info.base_round). Throws
/// std::runtime_error naming `origin` when they do not fit (a tensor named but absent, ...).
[[nodiscard]] RunCheckpoint checkpoint_resolve(const RunCheckpoint& base, const StoredCheckpoint& delta,
                                               const std::string& origin);

/// A checkpoint file's state: a delta is resolved with its bases (RUN_DIR/checkpoints beside it).
/// Throws std::runtime_error naming the file (and the base, when that is missing or damaged).
[[nodiscard]] RunCheckpoint checkpoint_load(const std::filesystem::path& file);

/// Writes a run's checkpoints: a full one first and after every `full_every - 1` deltas
/// (full_every = 1: every one full), in between each a delta over the one before. Keeps the
/// `keep` newest files and the chain of bases they need; deletes the rest.
class CheckpointWriter {
public:
  CheckpointWriter(std::filesystem::path run_dir, int keep, int full_every);

  /// Writes `state` (atomically) as RUN_DIR/checkpoints/round_NNNNNN.ckpt.
  void save(const RunCheckpoint& state);
  /// The same for the mirror's newest round; a delta looks only at the clients that changed
  /// since the checkpoint before, so a round's checkpoint costs what changed, not the population.
  void save(RunStateMirror& state);

  /// Bytes of the last file written.
  [[nodiscard]] std::size_t last_bytes() const { return last_bytes_; }
  [[nodiscard]] bool last_was_full() const { return deltas_since_full_ == 0; }

private:
  /// Deletes the files neither among the `keep` newest nor in a kept one's chain of bases.
  void remove_unneeded();

  std::filesystem::path run_dir_;
  int keep_;
  int full_every_;
  bool have_previous_ = false; ///< a checkpoint was written by this writer: the next may be a delta over it
  int previous_round_ = 0;
  std::size_t previous_clients_ = 0;
  int deltas_since_full_ = 0;
  std::size_t last_bytes_ = 0;
  std::map<int, int> bases_; ///< round → its base round (0: full), of the files this writer wrote
};

} // namespace fedvlm
