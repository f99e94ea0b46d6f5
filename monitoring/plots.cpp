// monitoring/plots.cpp — writes gnuplot data + script for run results and runs gnuplot on them.
#include "monitoring/plots.hpp"

#include "support/atomic_file.hpp"
#include "support/join.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace fedvlm {

namespace {

namespace fs = std::filesystem;

// Lines get unreadable, and the key covers the plot, beyond this many clients.
constexpr std::size_t kMaxKeyEntries = 16;

std::string num(double v) {
  if (std::isnan(v)) return "NaN"; // gnuplot skips undefined points
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno == 0 && std::isfinite(out);
}

// File-name-safe form of a run id such as "exp/clients=4,strategy=plora,seed=0".
std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '=';
    if (ok) out += c;
    else if (out.empty() || out.back() != '_') out += '_';
  }
  while (!out.empty() && (out.back() == '_' || out.back() == '.')) out.pop_back();
  while (!out.empty() && (out.front() == '_' || out.front() == '.')) out.erase(out.begin());
  return out.empty() ? "run" : out;
}

// A gnuplot double-quoted string literal.
std::string gp_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n' || c == '\r') c = ' ';
    out += c;
  }
  return out + "\"";
}

std::string find_on_path(const std::string& name) {
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate.string();
    start = end + 1;
  }
  return {};
}

// Runs `program script` in `dir` and returns its exit status, with stdout+stderr in `output`.
int run_in_dir(const std::string& program, const std::string& script, const fs::path& dir,
               std::string& output) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot create a pipe for gnuplot: ") + std::strerror(errno));
  // Everything the child needs is prepared before fork(): after it, in a threaded process,
  // only async-signal-safe calls are allowed.
  const std::string dir_s = dir.string();
  const char* argv[] = {program.c_str(), script.c_str(), nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("cannot start gnuplot: ") + std::strerror(e));
  }
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    if (::chdir(dir_s.c_str()) != 0) ::_exit(126);
    ::execv(program.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) output.append(buf, static_cast<std::size_t>(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Last record per (client, round): a retried evaluation replaces the earlier one.
std::map<int, std::map<int, const ClientRoundRecord*>> by_client_round(const RunResults& run) {
  std::map<int, std::map<int, const ClientRoundRecord*>> out;
  for (const auto& r : run.records) out[r.client][r.round] = &r;
  return out;
}

// round → mean accuracy over the clients evaluated in that round.
std::map<int, double> mean_accuracy_by_round(const RunResults& run) {
  std::map<int, std::pair<double, int>> sums;
  for (const auto& [client, rounds] : by_client_round(run))
    for (const auto& [round, r] : rounds) {
      sums[round].first += r->accuracy;
      ++sums[round].second;
    }
  std::map<int, double> out;
  for (const auto& [round, s] : sums) out[round] = s.first / s.second;
  return out;
}

// round → mean over the clients evaluated that round of the finite values of `value`.
template <class Value>
std::map<int, double> mean_by_round(const RunResults& run, Value value) {
  std::map<int, std::pair<double, int>> sums;
  for (const auto& r : run.records)
    if (const double v = value(r); std::isfinite(v)) {
      sums[r.round].first += v;
      ++sums[r.round].second;
    }
  std::map<int, double> out;
  for (const auto& [round, s] : sums) out[round] = s.first / s.second;
  return out;
}

class Script {
public:
  explicit Script(std::string header) : text_(std::move(header)) {}

  // One line per series; each series is one `index` block of `data`.
  void plot(const std::string& png, const std::string& title, const std::string& xlabel,
            const std::string& ylabel, const std::string& data, const std::vector<std::string>& series,
            const std::string& using_cols, const std::string& extra_settings = {}) {
    text_ += "\n# " + png + "\n";
    text_ += "set output " + gp_string(png) + "\n";
    text_ += "set title " + gp_string(title) + "\n";
    text_ += "set xlabel " + gp_string(xlabel) + "\n";
    text_ += "set ylabel " + gp_string(ylabel) + "\n";
    text_ += series.size() > kMaxKeyEntries ? "unset key\n" : "set key outside right top\n";
    text_ += extra_settings;
    text_ += "plot ";
    for (std::size_t i = 0; i < series.size(); ++i) {
      if (i) text_ += ", \\\n     ";
      text_ += (i ? std::string("\"\"") : gp_string(data)) + " index " + std::to_string(i) +
               " using " + using_cols + " with linespoints lw 2 pt 7 ps 1 title " +
               gp_string(series[i]);
    }
    // Settings made for one plot must not leak into the next.
    text_ += "\nunset logscale\nunset arrow\nset xtics autofreq\nset output\n";
    pngs_.push_back(png);
  }

  const std::string& text() const { return text_; }
  const std::vector<std::string>& pngs() const { return pngs_; }

private:
  std::string text_;
  std::vector<std::string> pngs_;
};

std::string round_xtics(int max_round) {
  return max_round <= 20 ? "set xtics 1\n" : std::string();
}

/// What the figures of one write_plots call share: the runs that have records, their labels in
/// shared plots, the target lines, the folder, the sweep values and the script being written.
struct Figures {
  std::vector<const RunResults*> runs;
  fs::path out_dir;
  Script script;
  std::map<std::string, std::set<std::string>> values; ///< swept key -> its values over the runs
  std::vector<std::string> labels;                      ///< per run, in `runs` order
  std::string target_lines;                             ///< gnuplot arrows at each target accuracy

  /// Per run: accuracy and loss, one line per client.
  void per_client() {
  std::set<std::string> used;
  for (const RunResults* run : runs) {
    // The "run_" prefix keeps a run called "comparison" or "sweep_x" off the shared plots' names.
    const std::string base =
        "run_" + slug(run->info.run.empty() ? run->dir.filename().string() : run->info.run);
    std::string name = base;
    for (int i = 2; used.count(name); ++i) name = base + "-" + std::to_string(i);
    used.insert(name);

    const auto clients = by_client_round(*run);
    std::string data = "# run: " + run->info.run + "\n# strategy: " + run->info.strategy +
                       "\n# columns: round accuracy loss precision recall f1 train_loss\n";
    std::vector<std::string> series;
    int max_round = 0;
    for (const auto& [client, rounds] : clients) {
      if (!series.empty()) data += "\n\n"; // gnuplot's `index` counts blocks by double blank lines
      data += "# client " + std::to_string(client) + "\n";
      for (const auto& [round, r] : rounds) {
        data += std::to_string(round) + " " + num(r->accuracy) + " " + num(r->loss) + " " +
                num(r->precision) + " " + num(r->recall) + " " + num(r->f1) + " " +
                num(r->train_loss) + "\n";
        max_round = std::max(max_round, round);
      }
      series.push_back("client " + std::to_string(client));
    }
    atomic_write_file(out_dir / (name + ".dat"), data);

    const std::string xlabel = "round (0 = before fine-tuning)";
    const std::string note = run->incomplete_note();
    const std::string title_run = run->info.run + (note.empty() ? "" : " (" + note + ")");
    script.plot(name + "_accuracy.png", "Accuracy per client - " + title_run, xlabel,
                "accuracy", name + ".dat", series, "1:2", round_xtics(max_round));
    script.plot(name + "_loss.png", "Test loss per client - " + title_run, xlabel, "loss",
                name + ".dat", series, "1:3", round_xtics(max_round));
  }

  }

  /// Each run's label in the shared plots, and the target lines (evaluation.target_accuracy).
  void label_runs() {
  // Labels: strategy plus the sweep values that differ between runs (seeds included: without
  // them two seeds of one configuration would look identical).
  for (const RunResults* run : runs)
    for (const auto& [k, v] : run->info.sweep) values[k].insert(v);
  std::set<std::string> varying;
  for (const auto& [k, vs] : values) {
    bool everywhere = true;
    for (const RunResults* run : runs) everywhere &= run->info.sweep.count(k) > 0;
    if (!is_strategy_key(k) && (vs.size() > 1 || !everywhere)) varying.insert(k);
  }
  const auto short_names = short_sweep_names(varying);
  for (const RunResults* run : runs) {
    std::string label = run->info.strategy.empty() ? "?" : run->info.strategy;
    for (const auto& [k, v] : run->info.sweep)
      if (varying.count(k)) label += " " + short_names.at(k) + "=" + v;
    labels.push_back(label);
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const bool duplicate = std::count(labels.begin(), labels.end(), labels[i]) > 1;
    if (duplicate) labels[i] += " (" + runs[i]->info.run + ")";
    if (const std::string note = runs[i]->incomplete_note(); !note.empty()) labels[i] += " [" + note + "]";
  }

  // evaluation.target_accuracy: a dashed horizontal line at each target the runs aimed for.
  {
    std::set<double> targets;
    for (const RunResults* run : runs)
      if (!run->rounds.empty() && std::isfinite(run->rounds.back().target_accuracy)) targets.insert(run->rounds.back().target_accuracy);
    for (const double t : targets)
      target_lines += "set arrow from graph 0, first " + num(t) + " to graph 1, first " + num(t) +
                      " nohead dashtype 2 linewidth 2 linecolor rgb \"red\"\n";
  }

  }

  /// Mean client accuracy per round, one line per run.
  void comparison() {
  {
    std::string data = "# mean client accuracy per round, one block per run\n"
                       "# columns: round mean_accuracy clients\n";
    int max_round = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (i) data += "\n\n";
      data += "# " + labels[i] + "\n";
      std::map<int, int> counts;
      for (const auto& [client, rounds] : by_client_round(*runs[i]))
        for (const auto& [round, r] : rounds) ++counts[round];
      for (const auto& [round, mean] : mean_accuracy_by_round(*runs[i])) {
        data += std::to_string(round) + " " + num(mean) + " " + std::to_string(counts[round]) + "\n";
        max_round = std::max(max_round, round);
      }
    }
    atomic_write_file(out_dir / "comparison_accuracy.dat", data);
    script.plot("comparison_accuracy.png", "Mean client accuracy per round",
                "round (0 = before fine-tuning)", "mean client accuracy", "comparison_accuracy.dat",
                labels, "1:2", round_xtics(max_round) + target_lines);
  }

  }

  /// Mean client accuracy against `x` of each round, one line per run; no plot without two points.
  void accuracy_against(const std::string& stem, const std::string& title, const std::string& xlabel,
                        const std::function<double(const RoundSummary&)>& x) {
    std::string data = "# mean client accuracy against " + xlabel + ", one block per run\n# columns: x mean_accuracy\n";
    int points = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (i) data += "\n\n";
      data += "# " + labels[i] + "\n";
      std::string block;
      int run_points = 0;
      for (const RoundSummary& s : runs[i]->rounds) {
        if (!std::isfinite(x(s)) || !std::isfinite(s.mean_accuracy)) continue;
        block += num(x(s)) + " " + num(s.mean_accuracy) + "\n";
        ++run_points;
      }
      if (run_points < 2) continue; // files from before the virtual clock: no curve
      data += block;
      points += run_points;
    }
    if (points == 0) return;
    atomic_write_file(out_dir / (stem + ".dat"), data);
    script.plot(stem + ".png", title, xlabel, "mean client accuracy", stem + ".dat", labels, "1:2", target_lines);
  }

  /// The virtual clock: mean client accuracy against simulated hours and against the bytes up
  /// and down so far (time- and bytes-to-accuracy), one line per run.
  void against_clock_and_bytes() {
  accuracy_against("accuracy_vs_simulated_hours", "Mean client accuracy against simulated time (the virtual clock)",
                   "simulated hours", [](const RoundSummary& s) { return s.virtual_seconds / 3600; });
  accuracy_against("accuracy_vs_bytes", "Mean client accuracy against the bytes up and down so far", "bytes (up + down)",
                   [](const RoundSummary& s) {
                     return s.round == 0 || s.cumulative_bytes > 0 ? static_cast<double>(s.cumulative_bytes)
                                                                  : std::numeric_limits<double>::quiet_NaN();
                   });

  }

  // One line per run of a per-round value; no plot when no run has any.
  void per_run_plot(const std::string& stem, const std::string& title, const std::string& what,
                    const std::string& ylabel, const std::function<std::map<int, double>(const RunResults&)>& value_of,
                    const std::string& extra_settings = {}) {
    std::string data = "# " + what + " per round, one block per run\n# columns: round value\n";
    int max_round = 0, points = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (i) data += "\n\n";
      data += "# " + labels[i] + "\n";
      for (const auto& [round, v] : value_of(*runs[i])) {
        if (!std::isfinite(v)) continue;
        data += std::to_string(round) + " " + num(v) + "\n";
        max_round = std::max(max_round, round);
        ++points;
      }
    }
    if (points == 0) return;
    atomic_write_file(out_dir / (stem + ".dat"), data);
    script.plot(stem + ".png", title, "round", ylabel, stem + ".dat", labels, "1:2", round_xtics(max_round) + extra_settings);
  }

  /// Per-round values, one line per run: what aggregation loses, the global test, the task's metrics.
  void per_round_values() {
  // What aggregation loses per round: the aggregation error where every client holds one
  // product, else the mean drift of the clients that took part (fl/aggregation/aggregation_error.hpp).
  per_run_plot("comparison_aggregation_error",
               "Aggregation error ||mean(B_k A_k) - aggregated||/||mean(B_k A_k)|| (or mean client drift)",
               "aggregation error (FedIT-style strategies) or mean client drift (pLoRA, FedSA-LoRA)",
               "relative Frobenius error", [](const RunResults& run) {
                 const auto drift = mean_by_round(run, [](const ClientRoundRecord& r) { return r.drift; });
                 std::map<int, double> out;
                 for (const auto& s : run.rounds) {
                   const auto d = drift.find(s.round);
                   out[s.round] = std::isfinite(s.aggregation_error) || d == drift.end() ? s.aggregation_error : d->second;
                 }
                 return out;
               });

  // evaluation.global_test: the global model on the dataset's official test split.
  per_run_plot("comparison_global_test", "Global model accuracy on the official test split" + std::string(target_lines.empty() ? "" : " (dashed: the target)"),
               "global test accuracy", "global test accuracy", [](const RunResults& run) {
                 std::map<int, double> out;
                 for (const auto& s : run.rounds) out[s.round] = s.global_accuracy;
                 return out;
               },
               target_lines);

  // The task's own metrics (VQA: exact_match), mean over the clients evaluated each round.
  std::set<std::string> task_metrics;
  for (const RunResults* run : runs)
    for (const auto& r : run->records)
      for (const auto& [name, v] : r.task_metrics) task_metrics.insert(name);
  for (const std::string& metric : task_metrics)
    per_run_plot("comparison_" + slug(metric), "Mean client " + metric + " per round", "mean client " + metric,
                 "mean client " + metric, [&metric](const RunResults& run) {
                   return mean_by_round(run, [&metric](const ClientRoundRecord& r) {
                     const auto it = r.task_metrics.find(metric);
                     return it == r.task_metrics.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
                   });
                 });

  }

  /// Differential privacy: final accuracy against the epsilon each run spent, one point per run.
  void accuracy_vs_epsilon() {
  {
    std::map<std::string, std::vector<std::pair<double, double>>> points;
    for (const RunResults* run : runs) {
      if (run->rounds.empty() || !std::isfinite(run->rounds.back().epsilon)) continue;
      const auto means = mean_accuracy_by_round(*run);
      if (means.empty()) continue;
      points[run->info.strategy].emplace_back(run->rounds.back().epsilon, means.rbegin()->second);
    }
    if (!points.empty()) {
      std::string data = "# final mean client accuracy vs the epsilon spent (privacy.delta), one block per strategy\n"
                         "# columns: epsilon final_mean_accuracy\n";
      std::vector<std::string> series;
      for (auto& [strategy, xs] : points) {
        std::sort(xs.begin(), xs.end());
        if (!series.empty()) data += "\n\n";
        data += "# " + strategy + "\n";
        for (const auto& [eps, acc] : xs) data += num(eps) + " " + num(acc) + "\n";
        series.push_back(strategy.empty() ? "?" : strategy);
      }
      atomic_write_file(out_dir / "accuracy_vs_epsilon.dat", data);
      script.plot("accuracy_vs_epsilon.png", "Final mean client accuracy vs privacy budget", "epsilon",
                  "final mean client accuracy", "accuracy_vs_epsilon.dat", series, "1:2", "");
    }
  }

  }

  /// Sweep summaries: final mean accuracy against each numeric swept key with two values or more.
  void sweep_summaries() {
  for (const auto& [key, vs] : values) {
    if (is_seed_key(key) || is_strategy_key(key) || vs.size() < 2) continue;
    bool numeric = true;
    double x = 0;
    for (const auto& v : vs) numeric &= parse_number(v, x);
    if (!numeric) continue;

    // strategy → x → final mean accuracies of the runs there (seeds, other keys averaged).
    std::map<std::string, std::map<double, std::vector<double>>> points;
    for (const RunResults* run : runs) {
      const auto it = run->info.sweep.find(key);
      if (it == run->info.sweep.end() || !parse_number(it->second, x)) continue;
      const auto means = mean_accuracy_by_round(*run);
      if (means.empty()) continue;
      points[run->info.strategy][x].push_back(means.rbegin()->second);
    }
    std::string data = "# final-round mean client accuracy vs " + key +
                       ", one block per strategy; runs sharing strategy and value (seeds, other "
                       "sweep keys) are averaged\n# columns: " + key + " final_mean_accuracy runs\n";
    std::vector<std::string> series;
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& [strategy, xs] : points) {
      if (!series.empty()) data += "\n\n";
      data += "# " + strategy + "\n";
      for (const auto& [xv, accs] : xs) {
        double sum = 0;
        for (double a : accs) sum += a;
        data += num(xv) + " " + num(sum / accs.size()) + " " + std::to_string(accs.size()) + "\n";
        lo = std::min(lo, xv);
        hi = std::max(hi, xv);
      }
      series.push_back(strategy.empty() ? "?" : strategy);
    }
    if (series.empty()) continue;
    const std::string name = "sweep_" + slug(key);
    atomic_write_file(out_dir / (name + ".dat"), data);
    // Ranks and client counts usually grow geometrically (4, 8, 16, ...).
    std::string settings = lo > 0 && hi / lo >= 8 ? "set logscale x 2\n" : std::string();
    // Tics at the swept values only: "3.2 clients" means nothing.
    std::set<double> xs_all;
    for (const auto& [strategy, xs] : points)
      for (const auto& [xv, accs] : xs) xs_all.insert(xv);
    if (xs_all.size() <= 20) {
      settings += "set xtics (" + join_with(xs_all, ", ", num) + ")\n";
    }
    script.plot(name + ".png", "Final mean client accuracy vs " + key, key,
                "final mean client accuracy", name + ".dat", series, "1:2", settings);
  }

  }
};

/// Runs gnuplot on the script in `out_dir`; the PNGs it wrote, each checked to exist.
std::vector<fs::path> run_gnuplot(const std::string& gnuplot, const Script& script, const fs::path& out_dir) {
  std::error_code ec;
  const std::string script_name = "plots.gp";
  atomic_write_file(out_dir / script_name, script.text());
  // Stale PNGs from an earlier call must not pass for new ones.
  for (const auto& png : script.pngs()) fs::remove(out_dir / png, ec);

  std::string output;
  const int status = run_in_dir(gnuplot, script_name, out_dir, output);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (status != 0)
    throw std::runtime_error("gnuplot (" + gnuplot + ") failed on " + (out_dir / script_name).string() +
                             " with exit status " + std::to_string(status) +
                             (output.empty() ? std::string() : ": " + output));
  if (!output.empty()) spdlog::warn("gnuplot on {}: {}", (out_dir / script_name).string(), output);

  std::vector<fs::path> pngs;
  for (const auto& png : script.pngs()) {
    const fs::path p = out_dir / png;
    if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) == 0)
      throw std::runtime_error("gnuplot exited normally but did not write " + p.string() +
                               (output.empty() ? std::string() : "; its output: " + output));
    pngs.push_back(p);
  }
  return pngs;
}


} // namespace

std::vector<fs::path> write_plots(const std::vector<RunResults>& runs, const fs::path& out_dir) {
  const std::string gnuplot = find_on_path("gnuplot");
  if (gnuplot.empty())
    throw std::runtime_error(
        "gnuplot not found on PATH; install it (e.g. `apt-get install gnuplot-nox`) to write plots");

  std::vector<const RunResults*> with_records;
  for (const auto& run : runs)
    if (!run.records.empty()) with_records.push_back(&run);
    else spdlog::warn("plots: run {} ({}) has no records, skipped", run.info.run, run.dir.string());
  if (with_records.empty())
    throw std::runtime_error("nothing to plot: none of the " + std::to_string(runs.size()) +
                             " runs has any metrics record");

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + out_dir.string() + ": " + ec.message());

  Figures figures{with_records, out_dir, Script(
      "# Written by fedvlm-sim. Redraw the PNGs with: cd <this folder> && gnuplot plots.gp\n"
      "# Data files: one `index` block per line of a plot; '#' lines say what each holds.\n"
      "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
      "  set terminal pngcairo size 1000,600 noenhanced\n"
      "} else {\n"
      "  set terminal png size 1000,600 noenhanced\n"
      "}\n"
      "set grid\n"
      // x range = data range plus a margin: first/last points (round 0, the smallest sweep
      // value) stay off the frame, and no empty "round -1" appears.
      "set autoscale xfix\n"
      "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\n"), {}, {}, {}};
  figures.per_client();
  figures.label_runs();
  figures.comparison();
  figures.against_clock_and_bytes();
  figures.per_round_values();
  figures.accuracy_vs_epsilon();
  figures.sweep_summaries();
  return run_gnuplot(gnuplot, figures.script, out_dir);
}

} // namespace fedvlm
