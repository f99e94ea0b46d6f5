// monitoring/progress_display.cpp — status line redraws and per-round spdlog summaries.
#include "monitoring/progress_display.hpp"

#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace fedvlm {

namespace {

std::string duration_text(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// Columns of the terminal behind `out`, 0 if unknown. A status line longer than the terminal
// wraps, and '\r' then only returns to the start of the last row, leaving debris behind.
int terminal_columns(std::FILE* out) {
  winsize ws{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

} // namespace

ProgressDisplay::ProgressDisplay(std::FILE* out, bool interactive)
    : out_(out), interactive_(interactive && out != nullptr) {}

ProgressDisplay::~ProgressDisplay() {
  std::lock_guard<std::mutex> lock(mutex_);
  clear_locked();
}

void ProgressDisplay::run_started(const std::string& run, const std::string& strategy, int clients,
                                  int rounds) {
  std::lock_guard<std::mutex> lock(mutex_);
  run_ = run;
  clients_ = clients;
  total_rounds_ = rounds;
  round_ = 0;
  expected_clients_ = 0;
  done_.clear();
  run_start_ = round_start_ = Clock::now();
  round_running_ = false;
  rounds_timed_ = 0;
  round_seconds_sum_ = 0;
  last_finished_round_ = 0;
  redraw_locked();
}

void ProgressDisplay::round_started(const std::string& run, int round, int total_rounds) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (run_.empty()) run_ = run;
  if (total_rounds > 0) total_rounds_ = total_rounds;
  round_ = round;
  done_.clear();
  round_start_ = Clock::now();
  round_running_ = true;
  redraw_locked();
}

void ProgressDisplay::client_finished_training(const std::string& run, int round, int client) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (round > round_) { // no round_started() seen for this round: follow the clients
    round_ = round;
    done_.clear();
    round_start_ = Clock::now();
    round_running_ = true;
  }
  if (round != round_) return; // a straggler from an earlier round
  done_.insert(client);
  redraw_locked();
}

void ProgressDisplay::round_finished(const RoundSummary& s) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = Clock::now();
  const double measured = std::chrono::duration<double>(now - round_start_).count();
  const double seconds = s.seconds > 0 ? s.seconds : (round_running_ ? measured : 0.0);
  // Round 0 is the "before" evaluation, not a training round: it would skew the ETA.
  if (s.round >= 1 && seconds > 0) {
    ++rounds_timed_;
    round_seconds_sum_ += seconds;
  }
  if (s.total_rounds > 0) total_rounds_ = s.total_rounds;
  last_finished_round_ = std::max(last_finished_round_, s.round);
  if (s.clients_selected > 0) expected_clients_ = s.clients_selected;
  round_running_ = false;
  round_start_ = now;

  clear_locked(); // the log line may go to the same terminal
  std::string faults;
  if (s.clients_failed > 0) faults += ", " + std::to_string(s.clients_failed) + " failed";
  if (s.clients_late > 0) faults += ", " + std::to_string(s.clients_late) + " late";
  const std::string global =
      std::isfinite(s.global_accuracy) ? fmt::format(", global test accuracy {:.4f}", s.global_accuracy) : std::string();
  spdlog::info("round {}/{}: accuracy mean {:.3f} min {:.3f} max {:.3f} ({}/{} clients{}, {:.1f} s){}",
               s.round, s.total_rounds, s.mean_accuracy, s.min_accuracy, s.max_accuracy,
               s.clients_answered, s.clients_selected, faults, seconds, global);
  redraw_locked();
}

void ProgressDisplay::run_finished(const std::string& run) {
  std::lock_guard<std::mutex> lock(mutex_);
  clear_locked();
  round_running_ = false;
}

void ProgressDisplay::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  clear_locked();
}

std::string ProgressDisplay::status_text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_text_locked(Clock::now());
}

std::string ProgressDisplay::status_text_locked(Clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - run_start_).count();
  std::string eta = "?";
  if (rounds_timed_ > 0 && total_rounds_ > 0) {
    const double mean = round_seconds_sum_ / rounds_timed_;
    double left = mean * std::max(0, total_rounds_ - last_finished_round_);
    if (round_running_) left -= std::chrono::duration<double>(now - round_start_).count();
    eta = duration_text(std::max(0.0, left));
  }
  const int expected = expected_clients_ > 0 ? expected_clients_ : clients_;
  std::string line = run_.empty() ? std::string() : run_ + "  ";
  line += "round " + std::to_string(round_) + "/" + std::to_string(total_rounds_);
  line += "  clients " + std::to_string(done_.size()) + "/" + std::to_string(expected);
  line += "  elapsed " + duration_text(elapsed) + "  ETA " + eta;
  return line;
}

void ProgressDisplay::redraw_locked() {
  if (!interactive_) return;
  std::string line = status_text_locked(Clock::now());
  const int cols = terminal_columns(out_);
  if (cols > 4 && line.size() >= static_cast<std::size_t>(cols)) {
    // Keep the tail: round, clients and ETA matter more than the start of a long run id.
    line = "..." + line.substr(line.size() - static_cast<std::size_t>(cols - 4));
  }
  std::fprintf(out_, "\r\033[K%s", line.c_str());
  std::fflush(out_);
  line_shown_ = true;
}

void ProgressDisplay::clear_locked() {
  if (!interactive_ || !line_shown_) return;
  std::fputs("\r\033[K", out_);
  std::fflush(out_);
  line_shown_ = false;
}

} // namespace fedvlm
