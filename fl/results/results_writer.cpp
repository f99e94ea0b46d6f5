// fl/results/results_writer.cpp — serialises a run's records to JSON lines and CSV: whole files once, then each round's new lines appended.
#include "fl/results/results_writer.hpp"

#include "support/join.hpp"
#include "support/atomic_file.hpp"
#include "fl/results/record_fields.hpp"
#include "support/text_columns.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace fedvlm {

namespace {

// Ordered: keys appear in struct order, which is how people read these lines.
using json = nlohmann::ordered_json;
// Error messages and generated answers may carry invalid UTF-8 (a file's raw bytes, a token
// cut mid-character): write U+FFFD for them rather than throw and lose the results.
constexpr auto kReplaceBadUtf8 = json::error_handler_t::replace;

bool record_less(const ClientRoundRecord& a, const ClientRoundRecord& b) {
  return std::tie(a.round, a.client) < std::tie(b.round, b.client);
}

template <class Record>
json fields_json(const Record& record, const std::vector<RecordField<Record>>& fields) {
  json j = json::object();
  for_each_field(record, fields, [&j](const char* name, const auto& value) { j[name] = value; });
  return j;
}

json record_json(const ClientRoundRecord& r) {
  json j = fields_json(r, client_record_field_list());
  for (const auto& [name, value] : r.task_metrics) j[name] = value;
  return j;
}

json summary_json(const RoundSummary& s) {
  json j = fields_json(s, round_summary_field_list());
  j["aggregation_error_by_layer"] = s.aggregation_error_by_layer;
  return j;
}

// Shortest text that parses back to the same double: CSV readers then get exactly what the
// run measured, without %.17g noise like 0.80000000000000004.
std::string number_text(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csv_cell(const std::string& v) { return csv_field(v); }
std::string csv_cell(int v) { return std::to_string(v); }
std::string csv_cell(int64_t v) { return std::to_string(v); }
std::string csv_cell(uint64_t v) { return std::to_string(v); }
std::string csv_cell(double v) { return number_text(v); }
std::string csv_cell(bool v) { return v ? "true" : "false"; }

/// A CSV header: the fields, then one column per name in `extra_columns`.
template <class Record>
std::string csv_header(const std::vector<RecordField<Record>>& fields, const std::set<std::string>& extra_columns) {
  std::string out;
  for (const auto& f : fields) out += (&f == &fields.front() ? "" : ",") + std::string(f.name);
  for (const auto& name : extra_columns) out += "," + name;
  return out + '\n';
}

/// CSV rows of `rows`: the fields, then one cell per name in `extra_columns` (empty where a row
/// has no value of that name, e.g. a "before" row of a metric measured later).
template <class Record, class Extra>
std::string csv_rows(const std::vector<Record>& rows, const std::vector<RecordField<Record>>& fields,
                     const std::set<std::string>& extra_columns, Extra extra_of) {
  std::string out;
  auto add = [&out](bool first, const std::string& cell) { out += (first ? "" : ",") + cell; };
  for (const auto& r : rows) {
    bool first = true;
    for_each_field(r, fields, [&](const char*, const auto& value) {
      add(first, csv_cell(value));
      first = false;
    });
    const std::map<std::string, double>& extra = extra_of(r);
    for (const auto& name : extra_columns) {
      const auto it = extra.find(name);
      add(false, it == extra.end() ? std::string() : number_text(it->second));
    }
    out += '\n';
  }
  return out;
}

const std::map<std::string, double>& task_metrics_of(const ClientRoundRecord& r) { return r.task_metrics; }
const std::map<std::string, double>& no_extra(const RoundSummary&) {
  static const std::map<std::string, double> none;
  return none;
}

} // namespace

namespace results_detail {
struct WriteSnapshot {
  bool whole = false;                     ///< rewrite the data files (else append `records`, `rounds`)
  std::vector<ClientRoundRecord> records; ///< every record of a finished round (whole) or the new ones
  std::vector<RoundSummary> rounds;       ///< every round (whole) or the new ones
  std::set<std::string> csv_columns;      ///< metrics.csv's task-metric columns
  std::size_t record_count = 0;           ///< records on disk after this write
  std::size_t round_count = 0;            ///< rounds on disk after this write
  std::optional<RoundSummary> last_summary;
  std::string status, message, finished_at, resume_command;
  PhaseSeconds phases;
  int last_round = -1;
};
} // namespace results_detail

namespace {

using results_detail::WriteSnapshot;

/// The data files of `snap`: written whole, or its lines appended (header only when whole).
void write_data_files(const std::filesystem::path& dir, const WriteSnapshot& snap) {
  std::string jsonl, rounds_jsonl;
  for (const auto& r : snap.records) jsonl += record_json(r).dump(-1, ' ', false, kReplaceBadUtf8) + '\n';
  for (const auto& s : snap.rounds) rounds_jsonl += summary_json(s).dump(-1, ' ', false, kReplaceBadUtf8) + '\n';
  std::string csv = snap.whole ? csv_header(client_record_field_list(), snap.csv_columns) : std::string();
  csv += csv_rows(snap.records, client_record_field_list(), snap.csv_columns, task_metrics_of);
  std::string rounds_csv = snap.whole ? csv_header(round_summary_field_list(), {}) : std::string();
  rounds_csv += csv_rows(snap.rounds, round_summary_field_list(), {}, no_extra);
  const auto put = [&](const char* name, const std::string& text) {
    if (snap.whole) atomic_write_file(dir / name, text);
    else if (!text.empty()) append_file_synced(dir / name, text);
  };
  put("metrics.jsonl", jsonl);
  put("metrics.csv", csv);
  put("rounds.jsonl", rounds_jsonl);
  put("rounds.csv", rounds_csv);
}

json run_json(const RunInfo& info, const std::string& started_at, const WriteSnapshot& snap) {
  json run = fields_json(info, run_info_field_list());
  run["sweep"] = info.sweep;
  run.update({{"status", snap.status},
              {"message", snap.message},
              {"started_at", started_at},
              {"updated_at", utc_timestamp_now()},
              {"finished_at", snap.finished_at.empty() ? json(nullptr) : json(snap.finished_at)},
              {"rounds_finished", static_cast<int>(snap.round_count)},
              {"last_finished_round", snap.last_round < 0 ? json(nullptr) : json(snap.last_round)},
              {"resume_command", snap.resume_command.empty() ? json(nullptr) : json(snap.resume_command)},
              {"records", static_cast<int64_t>(snap.record_count)}});
  // evaluation.target_accuracy: the rounds to target as of the last finished round (null: not reached).
  if (snap.last_summary && std::isfinite(snap.last_summary->target_accuracy)) {
    const RoundSummary& last = *snap.last_summary;
    auto value = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    run["target_accuracy"] = last.target_accuracy;
    run["rounds_to_target"] = {{"global_test", value(last.global_rounds_to_target)},
                               {"mean_client", value(last.mean_rounds_to_target)}};
    run["virtual_seconds_to_target"] = value(last.virtual_seconds_to_target);
    run["bytes_to_target"] = value(last.bytes_to_target);
  }
  if (!snap.phases.empty()) {
    json p = json::object();
    for (const auto& [name, seconds] : snap.phases) p[name] = seconds;
    run["phase_seconds"] = p;
  }
  return run;
}

} // namespace

const std::vector<std::string>& client_record_fields() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& f : client_record_field_list()) out.emplace_back(f.name);
    return out;
  }();
  return names;
}

std::string utc_timestamp_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

ResultsWriter::ResultsWriter(std::filesystem::path run_dir, RunInfo info)
    : dir_(std::move(run_dir)), info_(std::move(info)), started_at_(utc_timestamp_now()) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create run directory " + dir_.string() + ": " + ec.message());
  std::lock_guard<std::mutex> io(io_mutex_);
  write_files_locked(-1);
}

void ResultsWriter::client_evaluated(const ClientRoundRecord& record) {
  std::lock_guard<std::mutex> lock(data_mutex_);
  // Keep records ordered by (round, client) so files do not depend on actor timing.
  const auto at = records_.insert(std::upper_bound(records_.begin(), records_.end(), record, record_less), record);
  if (static_cast<std::size_t>(at - records_.begin()) < records_on_disk_) rewrite_ = true; // a round already on disk
}

void ResultsWriter::round_finished(const RoundSummary& summary) {
  std::lock_guard<std::mutex> io(io_mutex_);
  int max_round;
  {
    std::lock_guard<std::mutex> lock(data_mutex_);
    if (summary.round <= last_round_on_disk_) rewrite_ = true; // not after what is on disk
    rounds_[summary.round] = summary;
    last_finished_round_ = std::max(last_finished_round_, summary.round);
    max_round = last_finished_round_;
  }
  write_files_locked(max_round);
}

void ResultsWriter::restore(const std::vector<ClientRoundRecord>& records, const std::vector<RoundSummary>& rounds,
                            int last_round) {
  std::lock_guard<std::mutex> io(io_mutex_);
  {
    std::lock_guard<std::mutex> lock(data_mutex_);
    records_.clear();
    rounds_.clear();
    for (const auto& r : records)
      if (r.round <= last_round) records_.insert(std::upper_bound(records_.begin(), records_.end(), r, record_less), r);
    for (const auto& s : rounds)
      if (s.round <= last_round) rounds_[s.round] = s;
    last_finished_round_ = rounds_.empty() ? -1 : rounds_.rbegin()->first;
    rewrite_ = true; // drops what the files hold after `last_round`, a torn last line too
  }
  write_files_locked(last_round);
}

std::vector<RoundSummary> ResultsWriter::roll_back(int last_round) {
  std::lock_guard<std::mutex> io(io_mutex_);
  std::vector<RoundSummary> kept;
  {
    std::lock_guard<std::mutex> lock(data_mutex_);
    records_.erase(std::remove_if(records_.begin(), records_.end(),
                                  [last_round](const ClientRoundRecord& r) { return r.round > last_round; }),
                   records_.end());
    rounds_.erase(rounds_.upper_bound(last_round), rounds_.end());
    for (const auto& [round, s] : rounds_) kept.push_back(s);
    last_finished_round_ = rounds_.empty() ? -1 : rounds_.rbegin()->first;
  }
  write_files_locked(last_round, false);
  return kept;
}

void ResultsWriter::finish(std::string status, std::string message, std::string resume_command) {
  std::lock_guard<std::mutex> io(io_mutex_);
  int max_round;
  {
    std::lock_guard<std::mutex> lock(data_mutex_);
    status_ = std::move(status);
    message_ = std::move(message);
    resume_command_ = std::move(resume_command);
    finished_at_ = utc_timestamp_now();
    max_round = last_finished_round_;
  }
  write_files_locked(max_round);
}

void ResultsWriter::record_phase_seconds(PhaseSeconds phases) {
  std::lock_guard<std::mutex> io(io_mutex_);
  int max_round;
  {
    std::lock_guard<std::mutex> lock(data_mutex_);
    phase_seconds_ = std::move(phases);
    max_round = last_finished_round_;
  }
  write_files_locked(max_round, true);
}

double ResultsWriter::write_seconds() {
  std::lock_guard<std::mutex> io(io_mutex_);
  return write_seconds_;
}

std::string format_phase_seconds(const PhaseSeconds& phases) {
  return join_with(phases, ", ", [](const std::pair<std::string, double>& phase) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " %.1f s", phase.second);
    return phase.first + buf;
  });
}

WriteSnapshot ResultsWriter::take_snapshot(int max_round, bool run_json_only) {
  WriteSnapshot snap;
  std::lock_guard<std::mutex> lock(data_mutex_);
  // records_ is ordered by round: the records of finished rounds are a prefix.
  const auto end = std::partition_point(records_.begin(), records_.end(),
                                        [max_round](const ClientRoundRecord& r) { return r.round <= max_round; });
  snap.record_count = static_cast<std::size_t>(end - records_.begin());
  snap.round_count = rounds_.size();
  if (!rounds_.empty()) snap.last_summary = rounds_.rbegin()->second;
  snap.status = status_;
  snap.message = message_;
  snap.finished_at = finished_at_;
  snap.resume_command = resume_command_;
  snap.phases = phase_seconds_;
  snap.last_round = last_finished_round_;
  if (run_json_only) return snap;

  // Appending needs the files to hold a prefix of what they should, and the CSV its columns.
  snap.whole = rewrite_ || snap.record_count < records_on_disk_;
  snap.csv_columns = csv_columns_on_disk_;
  for (auto it = records_.begin() + static_cast<std::ptrdiff_t>(snap.whole ? 0 : records_on_disk_); it != end && !snap.whole; ++it)
    for (const auto& [name, value] : it->task_metrics) snap.whole = snap.whole || !snap.csv_columns.count(name);
  const std::size_t from = snap.whole ? 0 : records_on_disk_;
  if (snap.whole) {
    snap.csv_columns.clear(); // the union over the records: a column each
    for (auto it = records_.begin(); it != end; ++it)
      for (const auto& [name, value] : it->task_metrics) snap.csv_columns.insert(name);
  }
  snap.records.assign(records_.begin() + static_cast<std::ptrdiff_t>(from), end);
  for (const auto& [round, s] : rounds_)
    if (snap.whole || round > last_round_on_disk_) snap.rounds.push_back(s);
  records_on_disk_ = snap.record_count;
  last_round_on_disk_ = rounds_.empty() ? -1 : rounds_.rbegin()->first;
  csv_columns_on_disk_ = snap.csv_columns;
  rewrite_ = false;
  return snap;
}

void ResultsWriter::write_files_locked(int max_round, bool run_json_only) {
  const auto started = std::chrono::steady_clock::now();
  // Snapshot under the data lock, then format and write without it.
  const WriteSnapshot snap = take_snapshot(max_round, run_json_only);
  const json run = run_json(info_, started_at_, snap);
  // Data files first, run.json last: a directory with run.json always has all five files.
  if (!run_json_only) {
    try {
      write_data_files(dir_, snap);
    } catch (...) { // part of an append may be on disk: the next write replaces the files whole
      std::lock_guard<std::mutex> lock(data_mutex_);
      rewrite_ = true;
      throw;
    }
  }
  atomic_write_file(dir_ / "run.json", run.dump(2, ' ', false, kReplaceBadUtf8) + '\n');
  write_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

std::string format_client_table(const std::vector<ClientRoundRecord>& records) {
  struct Row {
    int64_t train = 0, test = 0;
    bool has_before = false, has_after = false;
    double before = 0;
    ClientRoundRecord after;
    int64_t up = 0, down = 0;
  };
  std::map<int, Row> rows;
  for (const auto& r : records) {
    Row& row = rows[r.client];
    row.up += r.bytes_up;
    row.down += r.bytes_down;
    row.train = std::max(row.train, r.train_samples);
    row.test = std::max(row.test, r.test_samples);
    if (r.phase == kPhaseBefore) {
      // A client without a local test split has no accuracy (null, read back as nan).
      row.has_before = std::isfinite(r.accuracy);
      row.before = r.accuracy;
    } else if (!row.has_after || r.round >= row.after.round) {
      row.has_after = true;
      row.after = r;
    }
  }

  const std::vector<std::string> header = {"client", "train", "test", "accuracy before → after",
                                           "F1 after", "loss after", "bytes up", "bytes down"};
  std::vector<std::vector<std::string>> table;
  auto acc_cell = [](bool has_b, double b, bool has_a, double a, bool no_test = false) {
    // Without a local test split there is nothing to score (evaluation.global_test scores the
    // global model instead): say so rather than print "nan → nan".
    if (no_test && !has_b && !has_a) return std::string("no local test split");
    return (has_b ? fixed_decimals(b, 4) : std::string("-")) + " → " + (has_a ? fixed_decimals(a, 4) : std::string("-"));
  };
  auto score_cell = [](bool has, double v) { return has && std::isfinite(v) ? fixed_decimals(v, 4) : std::string("-"); };

  double sum_train = 0, sum_test = 0, sum_up = 0, sum_down = 0;
  double sum_before = 0, sum_after = 0, sum_f1 = 0, sum_loss = 0;
  int n_before = 0, n_after = 0;
  bool all_without_test = !rows.empty();
  for (const auto& [client, row] : rows) {
    const bool scored = row.has_after && std::isfinite(row.after.accuracy);
    all_without_test = all_without_test && row.test == 0;
    table.push_back({std::to_string(client), std::to_string(row.train), std::to_string(row.test),
                     acc_cell(row.has_before, row.before, scored, row.after.accuracy, row.test == 0),
                     score_cell(scored, row.after.f1),
                     score_cell(scored, row.after.loss),
                     human_bytes(static_cast<double>(row.up)),
                     human_bytes(static_cast<double>(row.down))});
    sum_train += static_cast<double>(row.train);
    sum_test += static_cast<double>(row.test);
    sum_up += static_cast<double>(row.up);
    sum_down += static_cast<double>(row.down);
    if (row.has_before) {
      sum_before += row.before;
      ++n_before;
    }
    if (scored) {
      sum_after += row.after.accuracy;
      sum_f1 += row.after.f1;
      sum_loss += row.after.loss;
      ++n_after;
    }
  }
  if (!rows.empty()) {
    const double n = static_cast<double>(rows.size());
    table.push_back({"mean", fixed_decimals(sum_train / n, 1), fixed_decimals(sum_test / n, 1),
                     acc_cell(n_before > 0, n_before ? sum_before / n_before : 0, n_after > 0,
                              n_after ? sum_after / n_after : 0, all_without_test),
                     n_after ? fixed_decimals(sum_f1 / n_after, 4) : "-",
                     n_after ? fixed_decimals(sum_loss / n_after, 4) : "-", human_bytes(sum_up / n),
                     human_bytes(sum_down / n)});
  }

  const std::vector<std::size_t> width = column_widths(header, table);
  // The client id left-aligned, numbers right-aligned.
  auto render = [&](const std::vector<std::string>& cells) { return render_columns(cells, width, 1); };
  std::string out = render(header);
  std::size_t total = 0;
  for (auto w : width) total += w;
  out += std::string(total + 2 * (width.size() - 1), '-') + '\n';
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (i + 1 == table.size() && !rows.empty())
      out += std::string(total + 2 * (width.size() - 1), '-') + '\n';
    out += render(table[i]);
  }
  return out;
}

} // namespace fedvlm
