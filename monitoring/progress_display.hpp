// monitoring/progress_display.hpp — one redrawn terminal status line plus a log line per round.
#pragma once

#include "fl/results/run_records.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>

namespace fedvlm {

/// Shows a run's progress. When `interactive` (the caller decides: isatty(out) && !--quiet) it
/// keeps one status line on `out` — run, round r/R, clients done k/K, elapsed, ETA — redrawn
/// with '\r' + clear-to-end-of-line; when not, it never writes to `out`. Either way every
/// round_finished() logs a one-line summary through spdlog::info, so the run's log sinks keep
/// it. Thread-safe.
class ProgressDisplay : public RunObserverBase {
public:
  ProgressDisplay(std::FILE* out, bool interactive);
  ~ProgressDisplay() override;

  void run_started(const std::string& run, const std::string& strategy, int clients,
                   int rounds) override;
  void round_started(const std::string& run, int round, int total_rounds) override;
  void client_finished_training(const std::string& run, int round, int client) override;
  void round_finished(const RoundSummary& summary) override;
  /// Clears the status line, so what the caller prints next starts on a clean line.
  void run_finished(const std::string& run) override;

  /// Clears the status line now (e.g. before printing a table mid-run); the next event redraws.
  void clear();

  /// The status line as drawn now, without control characters.
  std::string status_text() const;

private:
  using Clock = std::chrono::steady_clock;

  std::string status_text_locked(Clock::time_point now) const;
  void redraw_locked();
  void clear_locked();

  std::FILE* const out_;
  const bool interactive_;

  mutable std::mutex mutex_;
  std::string run_;
  int clients_ = 0;
  int total_rounds_ = 0;
  int round_ = 0;
  int expected_clients_ = 0; // clients selected last round: the best guess for this one
  std::set<int> done_;       // clients done training in round_
  Clock::time_point run_start_ = Clock::now();
  Clock::time_point round_start_ = Clock::now();
  bool round_running_ = false;
  int rounds_timed_ = 0;
  double round_seconds_sum_ = 0;
  int last_finished_round_ = 0;
  bool line_shown_ = false;
};

} // namespace fedvlm
