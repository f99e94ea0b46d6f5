// fl/results/run_checkpoint.hpp — a run's whole state after a finished round, written atomically, for `resume`.
//
// Everything a run needs to continue as if it had never stopped: the round, the global shared
// matrices, every client's adapters and optimizer state. Random streams need no position:
// every draw (shuffling, dropout, client selection, faults) comes from job_seed(run seed,
// client, round, purpose), so the round number is the position. The file is
//   "FEDVLMCK" | u32 version | u64 payload size | u64 FNV-1a of payload | payload
// where the payload is the CAF binary serialization of RunCheckpoint through its inspect()
// field list, the same one a message between processes uses, then (version 2) the
// CheckpointDeltaInfo, then (version 3) the clients' top-k residuals (ClientResidual list).
// Older versions read with what they lack empty.
#pragma once

#include "model/tensor_map.hpp"
#include "model/tensor_wire.hpp"

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedvlm {

/// One client's private state; id -1 is the centralized trainer.
struct ClientCheckpoint {
  int id = 0;
  TensorMap adapters;
  TensorMap optimizer_state;
  /// compression.up = "topk" with error feedback: what its updates have not sent yet
  /// (fl/aggregation/compression.hpp); empty otherwise. Stored after the RunCheckpoint in the
  /// file (version 3: a ClientResiduals section), not in this field list, which versions 1
  /// and 2 were written with.
  TensorMap residual;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ClientCheckpoint& x) {
  return f(caf::meta::type_name("ClientCheckpoint"), x.id, x.adapters, x.optimizer_state);
}

/// The residuals of a checkpoint's clients that have one, in the clients' order (version 3).
struct ClientResidual {
  int id = 0;
  TensorMap residual;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ClientResidual& x) {
  return f(caf::meta::type_name("ClientResidual"), x.id, x.residual);
}

struct RunCheckpoint {
  std::string run;          ///< run id, e.g. "quickstart/run"
  uint64_t config_hash = 0; ///< config_hash() of the resolved configuration it ran with
  int round = 0;            ///< the last finished round (its results are on disk)
  int total_rounds = 0;
  int rounds_without_quorum = 0;
  TensorMap global;                     ///< the last aggregated shared matrices
  std::vector<ClientCheckpoint> clients; ///< ascending id; the centralized trainer (-1) first
  std::vector<int> crashes;             ///< fault state: simulated crashes so far, by client id (stored without trailing zeros)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RunCheckpoint& x) {
  return f(caf::meta::type_name("RunCheckpoint"), x.run, x.config_hash, x.round, x.total_rounds,
           x.rounds_without_quorum, x.global, x.clients, x.crashes);
}

/// Of one client in a delta: the tensors not stored because they equal the base's or the global's.
struct KeptTensors {
  int id = 0;
  std::vector<std::string> adapters_from_base;
  std::vector<std::string> optimizer_from_base;
  std::vector<std::string> adapters_from_global; ///< adapters[name] = global[name]
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, KeptTensors& x) {
  return f(caf::meta::type_name("KeptTensors"), x.id, x.adapters_from_base, x.optimizer_from_base,
           x.adapters_from_global);
}

/// What makes a checkpoint a delta: base_round 0 means a full checkpoint.
struct CheckpointDeltaInfo {
  int base_round = 0;
  /// The ids of the clients in the base, in order (a delta leaves unchanged clients out); empty
  /// with same_clients_as_base.
  std::vector<int> client_ids;
  std::vector<KeptTensors> kept; ///< one per client stored in the delta, same order
  // Version 4 (a section of their own after the residuals; both false in older files):
  /// The delta's clients are the base's, in its order (client_ids is left empty).
  bool same_clients_as_base = false;
  /// A client left out holds the base's tensors with every adapter tensor the global names
  /// replaced by the global's: a client that only merged the round's download is left out,
  /// so a round's delta grows with the clients that trained, not with the population.
  bool left_out_take_global = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CheckpointDeltaInfo& x) {
  return f(caf::meta::type_name("CheckpointDeltaInfo"), x.base_round, x.client_ids, x.kept);
}

/// A checkpoint as stored: `state` is whole when info.base_round == 0, else only what changed.
struct StoredCheckpoint {
  RunCheckpoint state;
  CheckpointDeltaInfo info;
};

/// FNV-1a (64 bit) of the resolved configuration text (or any bytes); `start` continues an
/// earlier hash over more bytes.
[[nodiscard]] uint64_t config_hash(std::string_view resolved_toml, uint64_t start = 0xcbf29ce484222325ULL);

/// A full checkpoint's file bytes (version 3, base_round 0).
[[nodiscard]] std::string checkpoint_encode(const RunCheckpoint& checkpoint);
/// A full checkpoint from its file bytes. Throws std::runtime_error naming `origin` and what is
/// wrong (magic, version, size, checksum, a tensor whose shape and byte count disagree, a delta
/// that needs its base: read those with checkpoint_load).
[[nodiscard]] RunCheckpoint checkpoint_decode(std::string_view bytes, const std::string& origin);

/// Full or delta, as stored (version 3; version 1 reads as full, versions 1 and 2 without residuals).
[[nodiscard]] std::string checkpoint_encode(const StoredCheckpoint& stored);
/// Writes checkpoint_encode(stored)'s bytes to `file` atomically (temp file, fsync, rename),
/// serialized straight to the file: a checkpoint of many clients is not held in memory whole.
/// Returns the bytes written. Throws std::runtime_error naming the file.
std::size_t checkpoint_write(const std::filesystem::path& file, const StoredCheckpoint& stored);
[[nodiscard]] StoredCheckpoint stored_checkpoint_decode(std::string_view bytes, const std::string& origin);

/// RUN_DIR/checkpoints/round_NNNNNN.ckpt
[[nodiscard]] std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir, int round);
/// Writes the checkpoint (full) atomically, then deletes all but the `keep` newest (keep >= 1).
void checkpoint_save(const std::filesystem::path& run_dir, const RunCheckpoint& checkpoint, int keep);
/// A run's checkpoint files, oldest first.
[[nodiscard]] std::vector<std::filesystem::path> checkpoint_files(const std::filesystem::path& run_dir);
/// The newest checkpoint file of a run, if any.
[[nodiscard]] std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

} // namespace fedvlm
