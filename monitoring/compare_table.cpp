// monitoring/compare_table.cpp — pools final-round client metrics per (strategy, sweep) group.
#include "monitoring/compare_table.hpp"
#include "support/text_columns.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <utility>

namespace fedvlm {

namespace {

MeanStd mean_std(const std::vector<double>& xs) {
  MeanStd m;
  m.n = xs.size();
  if (xs.empty()) return m;
  double sum = 0;
  for (double x : xs) sum += x;
  m.mean = sum / static_cast<double>(xs.size());
  double sq = 0;
  for (double x : xs) sq += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(sq / static_cast<double>(xs.size()));
  return m;
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// "8" < "16" < "lr=..." : numbers compare as numbers, everything else as text.
bool value_less(const std::string& a, const std::string& b) {
  double x, y;
  if (parse_number(a, x) && parse_number(b, y) && x != y) return x < y;
  return a < b;
}

bool sweep_less(const std::map<std::string, std::string>& a,
                const std::map<std::string, std::string>& b) {
  auto ia = a.begin(), ib = b.begin();
  for (; ia != a.end() && ib != b.end(); ++ia, ++ib) {
    if (ia->first != ib->first) return ia->first < ib->first;
    if (ia->second != ib->second) return value_less(ia->second, ib->second);
  }
  return ia == a.end() && ib != b.end();
}

std::string cell(const MeanStd& m, bool sign = false) {
  if (m.n == 0) return "-";
  return fixed_decimals(m.mean, 4, sign) + " ± " + fixed_decimals(m.std, 4);
}

/// One group's values (a strategy and its sweep values, seeds pooled) before the means.
struct Pool {
  ComparisonRow row;
  std::vector<double> acc, prec, rec, f1, loss, gain, epsilon, global_accuracy, rounds_to_target, seconds_to_target, bytes_to_target, p10, worst;
  std::vector<double> holdout, holdout_adapted;
  std::map<std::string, std::vector<double>> task_metrics;
  std::vector<int> clients;
  int unscored = 0; ///< final records without a local test score
};

/// Adds one run's final round (and its run-level figures) to its group's pool.
void add_run(Pool& pool, const std::map<std::string, std::string>& sweep, const RunResults& run) {
  pool.row.strategy = run.info.strategy;
  pool.row.sweep = sweep;
  ++pool.row.runs;
  if (const std::string note = run.incomplete_note(); !note.empty())
    pool.row.incomplete.push_back(run.info.run + ": " + note);
  if (!run.rounds.empty() && std::isfinite(run.rounds.back().epsilon)) pool.epsilon.push_back(run.rounds.back().epsilon);
  if (!run.rounds.empty() && std::isfinite(run.rounds.back().global_accuracy))
    pool.global_accuracy.push_back(run.rounds.back().global_accuracy);
  if (!run.rounds.empty() && std::isfinite(run.rounds.back().holdout_accuracy)) {
    pool.holdout.push_back(run.rounds.back().holdout_accuracy);
    pool.holdout_adapted.push_back(run.rounds.back().holdout_adapted_accuracy);
  }
  if (!run.rounds.empty() && std::isfinite(run.rounds.back().p10_accuracy)) {
    pool.p10.push_back(run.rounds.back().p10_accuracy);
    pool.worst.push_back(run.rounds.back().min_accuracy);
  }
  if (!run.rounds.empty() && std::isfinite(run.rounds.back().target_accuracy)) {
    const RoundSummary& last = run.rounds.back();
    const double r = std::isfinite(last.global_accuracy) ? last.global_rounds_to_target : last.mean_rounds_to_target;
    if (std::isfinite(r)) pool.rounds_to_target.push_back(r);
    else ++pool.row.target_not_reached;
    if (std::isfinite(r) && std::isfinite(last.virtual_seconds_to_target)) pool.seconds_to_target.push_back(last.virtual_seconds_to_target);
    if (std::isfinite(r) && std::isfinite(last.bytes_to_target)) pool.bytes_to_target.push_back(last.bytes_to_target);
  }

  int final_round = -1;
  std::map<int, double> before; // client → accuracy
  for (const auto& r : run.records) {
    pool.row.bytes_up_total += r.bytes_up;
    if (r.phase == kPhaseBefore) before[r.client] = r.accuracy;
    else final_round = std::max(final_round, r.round);
  }
  // A client evaluated twice in the final round (a retried actor) counts once: the last.
  std::map<int, const ClientRoundRecord*> finals;
  for (const auto& r : run.records)
    if (r.phase != kPhaseBefore && r.round == final_round) finals[r.client] = &r;
  for (const auto& [client, r] : finals) {
    // A client without a local test split has no scores (null in the files, nan here): they
    // are left out of the means, which would otherwise all read "nan ± nan".
    if (!std::isfinite(r->accuracy)) {
      ++pool.unscored;
      continue;
    }
    pool.acc.push_back(r->accuracy);
    pool.prec.push_back(r->precision);
    pool.rec.push_back(r->recall);
    pool.f1.push_back(r->f1);
    pool.loss.push_back(r->loss);
    for (const auto& [name, value] : r->task_metrics) pool.task_metrics[name].push_back(value);
    const auto b = before.find(client);
    if (b != before.end() && std::isfinite(b->second)) pool.gain.push_back(r->accuracy - b->second);
  }
  pool.clients.push_back(static_cast<int>(finals.size()));
}

/// The group's row: means and standard deviations of its pooled values.
ComparisonRow row_of(const Pool& pool) {
  ComparisonRow row = pool.row;
  row.accuracy = mean_std(pool.acc);
  row.precision = mean_std(pool.prec);
  row.recall = mean_std(pool.rec);
  row.f1 = mean_std(pool.f1);
  row.loss = mean_std(pool.loss);
  row.gain = mean_std(pool.gain);
  row.epsilon = mean_std(pool.epsilon);
  row.global_accuracy = mean_std(pool.global_accuracy);
  row.holdout_accuracy = mean_std(pool.holdout);
  row.holdout_adapted_accuracy = mean_std(pool.holdout_adapted);
  row.no_local_test = pool.acc.empty() && pool.unscored > 0;
  row.rounds_to_target = mean_std(pool.rounds_to_target);
  row.p10_accuracy = mean_std(pool.p10);
  row.worst_accuracy = mean_std(pool.worst);
  row.seconds_to_target = mean_std(pool.seconds_to_target);
  row.bytes_to_target = mean_std(pool.bytes_to_target);
  for (const auto& [name, values] : pool.task_metrics) row.task_metrics[name] = mean_std(values);
  row.min_clients = *std::min_element(pool.clients.begin(), pool.clients.end());
  row.max_clients = *std::max_element(pool.clients.begin(), pool.clients.end());
  row.bytes_up_per_run = static_cast<double>(row.bytes_up_total) / row.runs;
  return row;
}

/// Rounds, simulated hours and bytes to the target: mean ± std over the runs that reached it.
std::vector<std::string> target_cells(const ComparisonRow& row) {
  std::string rounds = row.rounds_to_target.n == 0 ? std::string(row.target_not_reached ? "not reached" : "-")
                                                   : fixed_decimals(row.rounds_to_target.mean, 2) + " ± " +
                                                         fixed_decimals(row.rounds_to_target.std, 2);
  if (row.rounds_to_target.n > 0 && row.target_not_reached > 0)
    rounds += " (" + std::to_string(row.target_not_reached) + " not reached)";
  const std::string hours = row.seconds_to_target.n == 0 ? "-"
                                                         : fixed_decimals(row.seconds_to_target.mean / 3600, 3) + " ± " +
                                                               fixed_decimals(row.seconds_to_target.std / 3600, 3);
  return {rounds, hours, row.bytes_to_target.n == 0 ? "-" : human_bytes(row.bytes_to_target.mean)};
}

/// What the table's columns mean, the optional ones only where the table has them.
std::string legend(bool any_global, bool any_holdout, bool any_p10, bool any_target) {
  std::string out =
      "Final round, grouped by strategy and sweep values other than seeds.\n"
      "mean ± std: population std over all client final values of the group's runs, pooled "
      "(clients × seeds).\n"
      "gain = final − before accuracy per client; bytes up/run = a run's total upload, mean over "
      "the group's runs.\n";
  if (any_global) out += "global test acc = the global model on the official test split, mean ± std over runs.\n";
  if (any_holdout)
    out += "new client acc / adapted = evaluation.holdout_clients (never trained) on their own test splits with the global "
           "tensors and fresh private ones, and after evaluation.adapt_steps local steps; mean ± std over runs.\n";
  if (any_p10)
    out += "p10 / worst client acc = the 10th percentile and the lowest of a run's final client accuracies, mean ± std over runs.\n";
  if (any_target)
    out += "rounds to target = first round at which evaluation.target_accuracy was reached (monotone curve, linear "
           "interpolation; global test where measured, else mean client accuracy), mean ± std over the runs that reached it; "
           "sim. hours and bytes to target = the virtual clock and the bytes up and down at that crossing (bytes: mean over runs).\n";
  return out;
}

} // namespace

std::vector<ComparisonRow> compare_runs(const std::vector<RunResults>& runs) {
  auto key_less = [](const std::pair<std::string, std::map<std::string, std::string>>& a,
                     const std::pair<std::string, std::map<std::string, std::string>>& b) {
    if (a.first != b.first) return a.first < b.first;
    return sweep_less(a.second, b.second);
  };
  std::map<std::pair<std::string, std::map<std::string, std::string>>, Pool, decltype(key_less)>
      groups(key_less);
  for (const auto& run : runs) {
    std::map<std::string, std::string> sweep;
    for (const auto& [k, v] : run.info.sweep)
      if (!is_seed_key(k)) sweep[k] = v;
    Pool& pool = groups[{run.info.strategy, sweep}];
    add_run(pool, sweep, run);
  }
  std::vector<ComparisonRow> rows;
  for (const auto& [key, pool] : groups) rows.push_back(row_of(pool));
  return rows;
}

std::string format_comparison(const std::vector<RunResults>& runs) {
  const std::vector<ComparisonRow> rows = compare_runs(runs);

  std::set<std::string> keys;
  for (const auto& row : rows)
    for (const auto& [k, v] : row.sweep)
      if (!is_strategy_key(k)) keys.insert(k);
  const auto names = short_sweep_names(keys);

  std::vector<std::string> header = {"strategy",  "sweep", "runs", "clients", "accuracy",
                                     "precision", "recall", "F1",  "loss",    "gain vs before",
                                     "bytes up/run"};
  const bool any_dp = std::any_of(rows.begin(), rows.end(), [](const ComparisonRow& r) { return r.epsilon.n > 0; });
  if (any_dp) header.push_back("ε spent");
  const bool any_global = std::any_of(rows.begin(), rows.end(), [](const ComparisonRow& r) { return r.global_accuracy.n > 0; });
  if (any_global) header.push_back("global test acc");
  const bool any_holdout = std::any_of(rows.begin(), rows.end(), [](const ComparisonRow& r) { return r.holdout_accuracy.n > 0; });
  if (any_holdout) header.insert(header.end(), {"new client acc", "new client adapted"});
  const bool any_p10 = std::any_of(rows.begin(), rows.end(), [](const ComparisonRow& r) { return r.p10_accuracy.n > 0; });
  if (any_p10) header.insert(header.end(), {"p10 client acc", "worst client acc"});
  const bool any_target =
      std::any_of(rows.begin(), rows.end(), [](const ComparisonRow& r) { return r.rounds_to_target.n > 0 || r.target_not_reached > 0; });
  if (any_target) header.insert(header.end(), {"rounds to target", "sim. hours to target", "bytes to target"});
  std::set<std::string> task_metrics;
  for (const auto& row : rows)
    for (const auto& [name, m] : row.task_metrics) task_metrics.insert(name);
  header.insert(header.end(), task_metrics.begin(), task_metrics.end());
  std::vector<std::vector<std::string>> table;
  for (const auto& row : rows) {
    std::string sweep;
    for (const auto& [k, v] : row.sweep) {
      if (is_strategy_key(k)) continue;
      if (!sweep.empty()) sweep += ' ';
      sweep += names.at(k) + "=" + v;
    }
    std::string clients = std::to_string(row.min_clients);
    if (row.max_clients != row.min_clients) clients += "-" + std::to_string(row.max_clients);
    const std::string runs_cell = std::to_string(row.runs) + (row.incomplete.empty() ? "" : " *");
    table.push_back({row.strategy, sweep.empty() ? "-" : sweep, runs_cell, clients,
                     row.no_local_test ? "no local test split" : cell(row.accuracy), cell(row.precision),
                     cell(row.recall), cell(row.f1), cell(row.loss), cell(row.gain, true),
                     human_bytes(row.bytes_up_per_run)});
    if (any_dp) table.back().push_back(row.epsilon.n > 0 ? cell(row.epsilon) : "-");
    if (any_global) table.back().push_back(cell(row.global_accuracy));
    if (any_holdout)
      for (const MeanStd* m : {&row.holdout_accuracy, &row.holdout_adapted_accuracy}) table.back().push_back(m->n > 0 ? cell(*m) : "-");
    if (any_p10) {
      table.back().push_back(row.p10_accuracy.n > 0 ? cell(row.p10_accuracy) : "-");
      table.back().push_back(row.worst_accuracy.n > 0 ? cell(row.worst_accuracy) : "-");
    }
    if (any_target) {
      const auto cells = target_cells(row);
      table.back().insert(table.back().end(), cells.begin(), cells.end());
    }
    for (const auto& name : task_metrics) {
      const auto it = row.task_metrics.find(name);
      table.back().push_back(it == row.task_metrics.end() ? "-" : cell(it->second));
    }
  }

  const std::vector<std::size_t> width = column_widths(header, table);
  // Strategy and sweep names left-aligned, numbers right-aligned.
  auto render = [&](const std::vector<std::string>& cells) { return render_columns(cells, width, 2); };

  std::string out = legend(any_global, any_holdout, any_p10, any_target);
  out += render(header);
  std::size_t total = 0;
  for (auto w : width) total += w;
  out += std::string(total + 2 * (width.size() - 1), '-') + '\n';
  for (const auto& r : table) out += render(r);
  std::string notes;
  for (const auto& row : rows)
    for (const auto& n : row.incomplete) notes += "  " + n + "\n";
  if (!notes.empty())
    out += "* incomplete runs, compared at the last round they reached:\n" + notes;
  return out;
}

} // namespace fedvlm
