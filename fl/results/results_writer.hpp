// fl/results/results_writer.hpp — a run's results on disk: run.json, metrics.jsonl/.csv, rounds.jsonl/.csv.
//
// Layout of a run directory. run.json is rewritten whole through atomic_write_file; the four
// data files are written whole once, then each finished round appends its new lines (write +
// fsync), so a round costs what it adds, not what the run holds. A crash in an append may leave
// an unterminated last line, which the reader (fl/results/results_reader.hpp) cuts off and a
// resume (restore()) drops by rewriting the files whole. A change that is not at the end — a
// record of a round already on disk, a task metric that becomes a new CSV column, restore() —
// rewrites the files whole; the bytes are the same either way.
//   run.json       RunInfo + status ("running" / "completed" / "failed"), message, timestamps,
//                  and at the end phase_seconds (how long setup, pretraining, rounds, writing took)
//   metrics.jsonl  one ClientRoundRecord per line, keys = field names, then its task metrics
//   metrics.csv    the same records, header = field names in struct order, then one column per
//                  task metric any record has (pandas-readable)
//   rounds.jsonl   one RoundSummary per finished round, keys = field names
//   rounds.csv     the same without the per-layer aggregation error
// The field names come from fl/results/record_fields.hpp.
#pragma once

#include "fl/results/run_records.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {

/// Status values written to run.json.
inline const std::string kStatusRunning = "running";
inline const std::string kStatusCompleted = "completed";
inline const std::string kStatusFailed = "failed";
/// Stopped by SIGINT / SIGTERM; run.json then holds the last finished round and the resume command.
inline const std::string kStatusInterrupted = "interrupted";

/// Seconds each phase of a run took, in the order they ran: setup (data, partitions, model),
/// pretraining, rounds (training and evaluation), writing (results, adapters, checkpoints).
using PhaseSeconds = std::vector<std::pair<std::string, double>>;

/// "setup 1.2 s, pretraining 0.0 s, rounds 25.3 s, writing 0.4 s".
[[nodiscard]] std::string format_phase_seconds(const PhaseSeconds& phases);

/// The field names of ClientRoundRecord in struct order: the CSV header and the JSON keys.
const std::vector<std::string>& client_record_fields();

namespace results_detail {
struct WriteSnapshot; // what one write of a run directory puts on disk (results_writer.cpp)
} // namespace results_detail

/// Collects a run's records and keeps its directory up to date. Thread-safe, like every
/// RunObserver. Records are buffered on client_evaluated() and written at round_finished():
/// then only the records of finished rounds reach disk, so an interrupted run leaves files
/// that hold whole rounds. finish() writes everything still buffered.
class ResultsWriter : public RunObserverBase {
public:
  /// Creates `run_dir` and writes empty metrics files and run.json with status "running".
  /// Throws std::runtime_error when the directory or a file cannot be written.
  ResultsWriter(std::filesystem::path run_dir, RunInfo info);

  void client_evaluated(const ClientRoundRecord& record) override;
  void round_finished(const RoundSummary& summary) override;

  /// Continues a run: the records and round summaries of rounds <= `last_round` read back from
  /// its files (later ones, from a round the checkpoint does not cover, are dropped).
  void restore(const std::vector<ClientRoundRecord>& records, const std::vector<RoundSummary>& rounds,
               int last_round);

  /// A served run rolled back after losing a node: the records and summaries of the rounds after
  /// `last_round` (-1: every round) are dropped and the files rewritten, as restore() leaves them
  /// for a resume from that round. Returns the summaries kept, in round order.
  std::vector<RoundSummary> roll_back(int last_round);

  /// Writes the records of every finished round and run.json with `status` (kStatusCompleted,
  /// kStatusFailed, kStatusInterrupted), `message` (e.g. the exception text of a failed run) and
  /// the end time; `resume_command`, when given, tells the user how to continue. Records of a
  /// round that did not finish are left out, so the files always hold whole rounds. May be
  /// called again.
  void finish(std::string status, std::string message = {}, std::string resume_command = {});

  /// Adds phase_seconds to run.json and rewrites only run.json (after finish(), whose own
  /// writing the phases can then include).
  void record_phase_seconds(PhaseSeconds phases);

  /// Seconds spent formatting and writing this writer's files so far.
  [[nodiscard]] double write_seconds();

  /// All records received so far, ordered by (round, client). Not synchronised with concurrent
  /// client_evaluated() calls: read it once the run is over.
  const std::vector<ClientRoundRecord>& records() const { return records_; }

  const std::filesystem::path& dir() const { return dir_; }
  const RunInfo& info() const { return info_; }

private:
  void write_files_locked(int max_round, bool run_json_only = false);
  /// Copies what the next write needs under data_mutex_: the whole files' records when they
  /// must be rewritten, else only the records and rounds after what is on disk.
  results_detail::WriteSnapshot take_snapshot(int max_round, bool run_json_only);

  const std::filesystem::path dir_;
  const RunInfo info_;
  const std::string started_at_;

  std::mutex data_mutex_; // guards the fields below
  std::vector<ClientRoundRecord> records_;
  std::map<int, RoundSummary> rounds_;
  int last_finished_round_ = -1;
  std::string status_ = kStatusRunning;
  std::string message_;
  std::string resume_command_;
  std::string finished_at_;
  PhaseSeconds phase_seconds_;
  // What the data files on disk hold: the first records_on_disk_ of records_, the rounds up to
  // last_round_on_disk_, metrics.csv's task-metric columns. rewrite_: the next write rewrites
  // the files whole (first write, restore(), a record inserted before records_on_disk_, a
  // failed write).
  std::size_t records_on_disk_ = 0;
  int last_round_on_disk_ = -1;
  std::set<std::string> csv_columns_on_disk_;
  bool rewrite_ = true;

  // Held across snapshot + write so that two writers cannot rename an older snapshot over a
  // newer one; client_evaluated() only takes data_mutex_ and never waits for an fsync.
  std::mutex io_mutex_;
  double write_seconds_ = 0; // guarded by io_mutex_
};

/// Renders the end-of-run per-client table: client, train/test samples, accuracy before → after
/// (after = the client's last round), F1 and loss after, bytes up/down summed over all rounds,
/// plus a mean row. Expects one run's records; columns are aligned for a terminal.
std::string format_client_table(const std::vector<ClientRoundRecord>& records);

/// Current UTC time as ISO-8601 with milliseconds, e.g. "2024-05-01T12:34:56.789Z".
std::string utc_timestamp_now();

} // namespace fedvlm
