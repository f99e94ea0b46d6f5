// fl/results/results_reader.hpp — loads run directories written by ResultsWriter, for tables and plots.
#pragma once

#include "fl/results/results_writer.hpp"
#include "fl/results/run_records.hpp"

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace fedvlm {

/// One run directory, as read back from disk.
struct RunResults {
  std::filesystem::path dir;
  RunInfo info;
  std::string status; ///< "running", "completed", "failed" or "interrupted"
  std::vector<ClientRoundRecord> records;
  std::vector<RoundSummary> rounds;

  /// The last round with results on disk (-1: none).
  [[nodiscard]] int last_round() const { return rounds.empty() ? -1 : rounds.back().round; }
  /// "" for a completed run, else e.g. "interrupted at round 3 of 5": tables and plots say so
  /// instead of showing an early round as the final result.
  [[nodiscard]] std::string incomplete_note() const;
};

/// Each path is a run directory (holds run.json) or a folder searched recursively for run
/// directories. Returns the runs sorted by directory, each directory once. Throws
/// std::runtime_error naming the file (and line, for JSON lines files) on malformed JSON, a
/// missing or mistyped field or an unreadable file, and naming the path when it does not exist
/// or holds no run. JSON null in a number field (how NaN is written) reads back as NaN. A torn
/// last line of a JSON lines file (no newline, not JSON: a crash while appending) is cut off.
std::vector<RunResults> load_results(const std::vector<std::filesystem::path>& paths);

/// Loads one run directory (must hold run.json, metrics.jsonl and rounds.jsonl).
RunResults load_run(const std::filesystem::path& run_dir);

/// True for sweep keys that name a seed ("seed", "federation.seed"): runs that differ only in
/// these are repetitions of one configuration.
bool is_seed_key(const std::string& key);

/// True for sweep keys that name the strategy; the strategy is shown on its own already.
bool is_strategy_key(const std::string& key);

/// Short display names for sweep keys: the last dotted component ("lora.rank" → "rank") unless
/// two keys in `keys` share it, then the full key.
std::map<std::string, std::string> short_sweep_names(const std::set<std::string>& keys);

} // namespace fedvlm
