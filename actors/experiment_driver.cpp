// actors/experiment_driver.cpp — per run: setup, results directory, observers, actors, final table.
#include "actors/experiment_driver.hpp"
#include "support/join.hpp"

#include "actors/run_driver.hpp"
#include "support/allocator.hpp"
#include "support/atomic_file.hpp"
#include "fl/results/config_diff.hpp"
#include "fl/runtime/interrupt.hpp"
#include "fl/runtime/thread_plan.hpp"
#include "fl/results/client_checkpoint.hpp"
#include "fl/results/incremental_checkpoint.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "fl/results/observer_list.hpp"
#include "fl/results/results_reader.hpp"
#include "fl/results/results_writer.hpp"
#include "model/safetensors.hpp"
#include "monitoring/compare_table.hpp"
#include "monitoring/progress_display.hpp"
#include "monitoring/prometheus_exporter.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

namespace fedvlm {

namespace {

/// The default logger writes to stderr and, while a run is going, to its fedvlm.log too.
std::shared_ptr<spdlog::sinks::dist_sink_mt> log_fanout() {
  static std::shared_ptr<spdlog::sinks::dist_sink_mt> fanout = [] {
    auto dist = std::make_shared<spdlog::sinks::dist_sink_mt>();
    dist->add_sink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    auto logger = std::make_shared<spdlog::logger>("fedvlm", dist);
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    // Users `tail -f` fedvlm.log during long runs, and a killed run must not lose its last lines.
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
    return dist;
  }();
  return fanout;
}

struct RunLogFile {
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> sink;
  explicit RunLogFile(const std::filesystem::path& file)
      : sink(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), false)) {
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    log_fanout()->add_sink(sink);
  }
  ~RunLogFile() {
    sink->flush();
    log_fanout()->remove_sink(sink);
  }
};

/// A fresh directory for the run: results already on disk are never overwritten.
std::filesystem::path fresh_run_dir(const ExperimentConfig& c) {
  const std::filesystem::path base = c.output_dir / c.name / c.run_label;
  if (!std::filesystem::exists(base)) return base;
  for (int n = 2;; ++n) {
    std::filesystem::path p = base;
    p += "." + std::to_string(n);
    if (!std::filesystem::exists(p)) return p;
  }
}

/// Each client's adapters (its personalised model) and the last global matrices, after a round:
/// of the clients at `indices` (the mirror's). `written` holds what each client's file holds
/// (by id). After a round (`all` false) a file is rewritten only where the client's own tensors
/// changed — not where only tensors it takes from the global (pLoRA's B_g, equal to
/// global.safetensors) did — so a round writes the clients that trained, not the population.
/// With `all`, every file not up to date is written: the files at the end of a run are the same
/// as if each had been rewritten every round.
void save_adapters(const std::filesystem::path& dir, RunStateMirror& state, const std::vector<std::size_t>& indices,
                   std::map<int, TensorMap>& written, bool all) {
  const TensorMap& global = state.head().global;
  auto from_global = [&global](const std::string& name, const at::Tensor& t) {
    auto g = global.find(name);
    return g != global.end() && same_bytes(t, g->second);
  };
  auto up_to_date = [&](const TensorMap& on_disk, const TensorMap& now) {
    if (all) return same_tensor_maps(on_disk, now);
    if (on_disk.size() != now.size()) return false;
    for (auto a = on_disk.begin(), b = now.begin(); a != on_disk.end(); ++a, ++b)
      if (a->first != b->first || (!same_bytes(a->second, b->second) && !from_global(b->first, b->second))) return false;
    return true;
  };
  FileBatch files; // one flush to disk for all: at the end of a run of many clients, most change
  std::vector<std::pair<int, const TensorMap*>> rewritten;
  for (const std::size_t i : indices) {
    const ClientCheckpoint& cs = state.client(i);
    if (cs.id < 0) continue;
    auto it = written.find(cs.id);
    if (it != written.end() && up_to_date(it->second, cs.adapters)) continue;
    const auto file = dir / ("client_" + std::to_string(cs.id) + ".safetensors");
    files.add(file, safetensors_encode(file, cs.adapters));
    rewritten.emplace_back(cs.id, &cs.adapters);
  }
  if (const auto file = dir / "global.safetensors"; !global.empty()) files.add(file, safetensors_encode(file, global));
  files.commit();
  for (const auto& [id, adapters] : rewritten) written[id] = *adapters;
}

std::string resume_command(const std::filesystem::path& dir) { return "fedvlm-sim resume " + dir.string(); }

/// A run directory being continued: what is on disk, and the state to continue from.
struct ResumePoint {
  RunResults previous;
  RunCheckpoint checkpoint; ///< round 0: no checkpoint, the run starts again from the beginning
  bool config_changed = false; ///< accepted with --force: config.toml is rewritten
};

/// Checks that `c` may continue the run in `dir` and loads its newest checkpoint. Throws
/// std::runtime_error naming every key that differs (unless `force`).
ResumePoint prepare_resume(const ExperimentConfig& c, const std::filesystem::path& dir, bool force) {
  ResumePoint rp;
  rp.previous = load_run(dir);
  const auto stored_file = dir / "config.toml";
  std::ifstream in(stored_file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot resume " + dir.string() + ": " + stored_file.string() + " is missing");
  std::ostringstream text;
  text << in.rdbuf();
  auto stored = config_values(text.str(), stored_file.string());
  const auto wanted = config_values(c.resolved_toml, "the resumed configuration");
  // A key this version added is missing from an older run's config.toml: it meant its default.
  const auto defaults = config_values(default_resolved_toml(), "the defaults");
  for (const auto& [key, value] : wanted)
    if (!stored.count(key)) {
      const auto d = defaults.find(key);
      if (d != defaults.end() && d->second == value) stored.emplace(key, value);
    }
  const auto diffs = config_differences(stored, wanted);
  rp.config_changed = !diffs.empty();
  if (const auto changed = state_meaning_differences(stored, wanted); !changed.empty() && force) {
    std::string list;
    for (const auto& d : changed) list += "\n  " + d;
    throw std::runtime_error("cannot resume " + dir.string() + ", even with --force: these keys decide what its saved "
                             "state means (strategy, model, data, partition), and continuing under new values would "
                             "mix two experiments:" + list +
                             "\n(--force extends a run, e.g. more rounds; start a new run for a new configuration)");
  }
  if (!diffs.empty() && !force) {
    std::string list;
    for (const auto& d : diffs) list += "\n  " + d;
    throw std::runtime_error("cannot resume " + dir.string() + ": the configuration differs from the one the run started with:" +
                             list + "\n(use --force to continue with the new values)");
  }
  if (const auto file = latest_checkpoint(dir)) {
    rp.checkpoint = checkpoint_load(*file);
    if (rp.checkpoint.run != rp.previous.info.run)
      throw std::runtime_error(file->string() + " belongs to run '" + rp.checkpoint.run + "', not '" + rp.previous.info.run + "'");
    if (rp.checkpoint.config_hash != config_fingerprint(stored) && !force)
      throw std::runtime_error("cannot resume " + dir.string() + ": " + stored_file.string() +
                               " was edited after the checkpoint of round " + std::to_string(rp.checkpoint.round) +
                               " was written (use --force to continue with it as it is now)");
    if (rp.checkpoint.round > c.federation.rounds)
      throw std::runtime_error("cannot resume " + dir.string() + ": its checkpoint is at round " +
                               std::to_string(rp.checkpoint.round) + ", past federation.rounds = " +
                               std::to_string(c.federation.rounds));
  }
  return rp;
}

/// What every run of one command shares: data, exporter, output.
class PlanRunner {
public:
  PlanRunner(const ExperimentPlan& plan, const DriverOptions& options, std::FILE* out)
      : options_(options), out_(out) {
    // One exporter for the whole plan, so a sweep is one scrape target with a `run` label.
    const MonitoringSettings& mon = plan.runs.front().monitoring;
    if (!mon.prometheus.empty() || !mon.pushgateway.empty()) {
      PrometheusSettings ps;
      ps.listen = mon.prometheus;
      ps.pushgateway = mon.pushgateway;
      ps.push_job = "fedvlm_" + plan.runs.front().name;
      ps.linger_seconds = mon.linger_seconds;
      exporter_ = std::make_unique<PrometheusExporter>(ps);
      if (!mon.prometheus.empty()) spdlog::info("Prometheus metrics at {}", exporter_->endpoint());
    }
    install_interrupt_handlers();
  }

  /// Runs `c` in `dir` (fresh, or continuing `resume`). Returns false when a stop signal ended it.
  bool execute(const ExperimentConfig& c, const std::filesystem::path& dir, const ResumePoint* resume, bool rethrow);

  void finish() {
    if (outcome.run_dirs.size() > 1 && outcome.runs_completed > 0 && !outcome.interrupted_signal) {
      try {
        std::fprintf(out_, "\n%s", format_comparison(load_results(outcome.run_dirs)).c_str());
      } catch (const std::exception& e) {
        spdlog::warn("comparison table skipped: {}", e.what());
      }
    }
    if (exporter_ && !outcome.interrupted_signal) {
      exporter_->linger();
      // Ctrl-C during the linger ends it (every file is written by then): say so in the status.
      if (const int sig = interrupt_signal()) outcome.interrupted_signal = sig;
    }
  }

  DriverOutcome outcome;

private:
  void record_interrupt(ResultsWriter& writer, const std::string& run_id, const std::filesystem::path& dir,
                        const std::string& msg, int signal_number);

  const DriverOptions& options_;
  std::FILE* out_;
  DatasetCache datasets_;
  std::unique_ptr<PrometheusExporter> exporter_;
};

void PlanRunner::record_interrupt(ResultsWriter& writer, const std::string& run_id, const std::filesystem::path& dir,
                                  const std::string& msg, int signal_number) {
  spdlog::warn("{}: {}; resume with: {}", run_id, msg, resume_command(dir));
  writer.finish(kStatusInterrupted, msg, resume_command(dir));
  outcome.interrupted_signal = signal_number;
  std::fprintf(out_, "\n%s: %s\nresume with: %s\n", run_id.c_str(), msg.c_str(), resume_command(dir).c_str());
}

namespace {

/// What run.json says of the run from the start.
RunInfo run_info(const ExperimentConfig& c, const std::string& run_id, const ResumePoint* resume) {
  RunInfo info;
  info.experiment = c.name;
  info.run = run_id;
  info.strategy = to_string(c.strategy);
  info.sweep = resume ? resume->previous.info.sweep : c.sweep;
  info.clients = c.federation.clients;
  info.rounds = c.federation.rounds;
  info.seed = c.seed;
  info.resumed_from_round = resume ? resume->checkpoint.round : 0;
  return info;
}

/// Writes adapters/ and the checkpoints after each finished round, from the aggregator's thread:
/// only the clients whose own tensors changed, the tensors taken from the global brought up to
/// date at the end (or on a stop). Its time is the writing phase, not the rounds'.
class RoundStateWriter {
public:
  RoundStateWriter(const std::filesystem::path& dir, const ExperimentConfig& c, uint64_t fingerprint)
      : dir_(dir), every_(c.checkpoint.every), rounds_(c.federation.rounds), fingerprint_(fingerprint),
        keep_(c.checkpoint.keep), full_every_(c.checkpoint.full_every), checkpoints_(dir, keep_, full_every_) {}

  void on_round(RoundStateChange change) {
    const auto t0 = std::chrono::steady_clock::now();
    change.state.config_hash = fingerprint_;
    state_.apply(std::move(change));
    save_adapters(dir_ / "adapters", state_, state_.last_changed(), adapters_written_, false);
    if (checkpoint_due(state_.round(), every_, rounds_)) checkpoints_.save(state_);
    add_seconds(t0); // one aggregator calls this: no race
  }
  void bring_adapters_up_to_date() {
    const auto t0 = std::chrono::steady_clock::now();
    if (!state_.empty() && state_.round() > 0) {
      std::vector<std::size_t> every(state_.size());
      for (std::size_t i = 0; i < every.size(); ++i) every[i] = i;
      save_adapters(dir_ / "adapters", state_, every, adapters_written_, true);
    }
    add_seconds(t0);
  }
  [[nodiscard]] double seconds() const { return seconds_; }
  /// The run rolled back to its newest checkpoint (a served run that lost a node): the next
  /// checkpoint is written as by a resumed run, full and over nothing of the rounds dropped.
  void roll_back() { checkpoints_ = CheckpointWriter(dir_, keep_, full_every_); }

private:
  void add_seconds(std::chrono::steady_clock::time_point t0) {
    seconds_ = seconds_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::filesystem::path dir_;
  int every_, rounds_;
  uint64_t fingerprint_;
  int keep_, full_every_;
  CheckpointWriter checkpoints_;
  std::map<int, TensorMap> adapters_written_;
  RunStateMirror state_; ///< the newest round's state (tensors shared)
  std::atomic<double> seconds_{0};
};

/// Where the run starts (fresh or `resume`), and what it does after each round and when a
/// served run loses a node.
RunHooks run_hooks(const ResumePoint* resume, const std::optional<ServeSettings>& serve, ResultsWriter& writer,
                   RoundStateWriter& state_writer) {
  RunHooks hooks;
  if (resume) hooks.resume_from = resume->checkpoint;
  if (resume) hooks.previous_rounds = resume->previous.rounds;
  hooks.serve = serve;
  hooks.on_round_state = [&state_writer](RoundStateChange change) { state_writer.on_round(std::move(change)); };
  if (serve) // a lost node: back to the newest checkpoint, its later rounds dropped from the records
    hooks.roll_back = [&writer, &state_writer] {
      RollBackPoint point;
      if (const auto file = latest_checkpoint(writer.dir())) point.checkpoint = checkpoint_load(*file);
      point.rounds = writer.roll_back(point.checkpoint.round > 0 ? point.checkpoint.round : -1);
      state_writer.roll_back();
      return point;
    };
  return hooks;
}

void log_run_start(const std::string& run_id, const std::filesystem::path& dir, const ResumePoint* resume,
                   const ThreadPlan& threads, bool served) {
  if (served)
    spdlog::info("run {}: the clients' adapters and optimizer state stay on the nodes: adapters/ gets only "
                 "global.safetensors; checkpoints/ holds the round and the global, each node (--state DIR) "
                 "its clients' states", run_id);
  if (resume)
    spdlog::info("run {} -> {} (resuming after round {})", run_id, dir.string(), resume->checkpoint.round);
  else
    spdlog::info("run {} -> {}", run_id, dir.string());
  spdlog::info("threads: {}", threads.describe());
  spdlog::info("allocator: {}", allocator_description());
  if (threads.oversubscribed()) spdlog::warn("{}", threads.warning());
}

} // namespace

bool PlanRunner::execute(const ExperimentConfig& c, const std::filesystem::path& dir, const ResumePoint* resume,
                         bool rethrow) {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const Clock::time_point run_start = Clock::now();
  const std::string run_id = resume ? resume->previous.info.run : c.name + "/" + c.run_label;
  const ThreadPlan threads = thread_plan_for(c);
  apply_thread_plan(threads);
  std::filesystem::create_directories(dir);
  outcome.run_dirs.push_back(dir);
  RunLogFile log_file(dir / "fedvlm.log");
  // A resumed run keeps its file (and the run label in its header) unless --force changed it.
  if (!resume || resume->config_changed) atomic_write_file(dir / "config.toml", c.resolved_toml);
  const uint64_t fingerprint = config_fingerprint(config_values(c.resolved_toml, (dir / "config.toml").string()));

  ResultsWriter writer(dir, run_info(c, run_id, resume));
  // Without a checkpoint the run starts again from round 0: nothing on disk is kept.
  if (resume) writer.restore(resume->previous.records, resume->previous.rounds,
                             resume->checkpoint.round > 0 ? resume->checkpoint.round : -1);
  ProgressDisplay progress(stderr, options_.interactive);
  ObserverList observers;
  observers.add(&writer);
  observers.add(exporter_.get());
  observers.add(&progress);

  RoundStateWriter state_writer(dir, c, fingerprint);
  const RunHooks hooks = run_hooks(resume, options_.serve, writer, state_writer);

  log_run_start(run_id, dir, resume, threads, options_.serve.has_value());
  bool stopped = false;
  try {
    const RunSetup setup = prepare_run(c, datasets_, SetupMode::execute);
    spdlog::info("{}", describe_plan(c, setup));
    spdlog::info("{}", setup.task->cache_summary());
    const double setup_seconds = seconds_since(run_start) - setup.pretrain_seconds;
    const double written_before_rounds = writer.write_seconds();
    const Clock::time_point rounds_start = Clock::now();
    const RunDone done = run_federation(c, run_id, setup, observers, hooks);
    state_writer.bring_adapters_up_to_date();
    const double federation_seconds = seconds_since(rounds_start);
    const double written_in_rounds = writer.write_seconds() - written_before_rounds + state_writer.seconds();
    progress.clear();
    std::string message = done.note;
    if (done.rounds_without_quorum)
      message += (message.empty() ? "" : "; ") + std::to_string(done.rounds_without_quorum) + " round(s) without quorum";
    const Clock::time_point finish_start = Clock::now();
    writer.finish(kStatusCompleted, message);
    const PhaseSeconds phases = {{"setup", setup_seconds},
                                 {"pretraining", setup.pretrain_seconds},
                                 {"rounds", std::max(0.0, federation_seconds - written_in_rounds)},
                                 {"writing", written_in_rounds + seconds_since(finish_start)}};
    writer.record_phase_seconds(phases);
    spdlog::info("{}: {}", run_id, format_phase_seconds(phases));
    ++outcome.runs_completed;
    std::fprintf(out_, "\n%s\n%s\nphases: %s\n", run_id.c_str(), format_client_table(writer.records()).c_str(),
                 format_phase_seconds(phases).c_str());
  } catch (const RunInterrupted& e) {
    state_writer.bring_adapters_up_to_date(); // the finished rounds' files, whole
    progress.clear();
    record_interrupt(writer, run_id, dir, e.what() + std::string("; the round in flight was abandoned"), e.signal_number());
    stopped = true;
  } catch (const Interrupted& e) { // during data loading or pretraining, before any round
    progress.clear();
    record_interrupt(writer, run_id, dir, std::string("interrupted by ") + (e.signal_number == SIGTERM ? "SIGTERM" : "SIGINT") +
                                              " before the first round", e.signal_number);
    stopped = true;
  } catch (const std::exception& e) {
    progress.clear();
    spdlog::error("{}", e.what());
    writer.finish(kStatusFailed, e.what());
    ++outcome.runs_failed;
    if (rethrow) throw; // a single run's failure is the command's failure
  }
  spdlog::default_logger()->flush();
  std::fprintf(out_, "results: %s\n", dir.string().c_str());
  std::fflush(out_);
  return !stopped;
}


} // namespace

DriverOutcome run_experiment(const ExperimentPlan& plan, const DriverOptions& options, std::FILE* out) {
  log_fanout();
  std::vector<const ExperimentConfig*> runs;
  for (const auto& c : plan.runs)
    if (options.only.empty() || std::count(options.only.begin(), options.only.end(), c.run_label))
      runs.push_back(&c);
  for (const auto& label : options.only) {
    const bool known = std::any_of(plan.runs.begin(), plan.runs.end(), [&](const auto& c) { return c.run_label == label; });
    if (!known) {
      const std::string labels = join_with(plan.runs, ", ", [](const auto& c) { return c.run_label; });
      throw std::runtime_error("--only " + label + ": no such run (runs: " + labels + ")");
    }
  }

  if (options.dry_run) {
    DatasetCache datasets;
    std::fprintf(out, "%zu run(s)%s\n", runs.size(),
                 plan.sweep_keys.empty() ? "" : " (a sweep grid; see the labels below)");
    for (const auto* c : runs) {
      const RunSetup setup = prepare_run(*c, datasets, SetupMode::plan);
      std::fprintf(out, "\n%s", describe_plan(*c, setup).c_str());
    }
    return {};
  }
  if (options.serve && runs.size() != 1)
    throw std::runtime_error("serve runs one run at a time; this plan has " + std::to_string(runs.size()) +
                             " (pick one with --only LABEL)");
  for (const auto* c : runs) check_output_paths(*c); // a bad output_dir fails now, not after data loading

  // With --resume, every continued run is checked before the first one starts: a changed
  // configuration is refused now, not after hours of other runs.
  std::vector<std::optional<ResumePoint>> resumes(runs.size());
  if (options.resume) {
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const auto dir = runs[i]->output_dir / runs[i]->name / runs[i]->run_label;
      if (std::filesystem::exists(dir / "run.json")) resumes[i] = prepare_resume(*runs[i], dir, options.force);
    }
  }

  PlanRunner runner(plan, options, out);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const ExperimentConfig& c = *runs[i];
    if (resumes[i]) {
      const ResumePoint& rp = *resumes[i];
      const auto dir = c.output_dir / c.name / c.run_label;
      if (rp.previous.status == kStatusCompleted && rp.previous.last_round() >= c.federation.rounds) {
        std::fprintf(out, "%s/%s: completed already, skipped (%s)\n", c.name.c_str(), c.run_label.c_str(), dir.string().c_str());
        ++runner.outcome.runs_skipped;
        runner.outcome.run_dirs.push_back(dir);
        continue;
      }
      if (!runner.execute(c, dir, &rp, runs.size() == 1)) break;
      continue;
    }
    if (!runner.execute(c, fresh_run_dir(c), nullptr, runs.size() == 1)) break;
  }
  runner.finish();
  return runner.outcome;
}

DriverOutcome resume_run(const std::filesystem::path& run_dir, const ExperimentPlan& plan, const DriverOptions& options,
                         std::FILE* out) {
  log_fanout();
  if (plan.runs.size() != 1)
    throw std::runtime_error("cannot resume " + run_dir.string() + ": its config.toml describes " +
                             std::to_string(plan.runs.size()) + " runs (a sweep), expected one; use --resume with the experiment file");
  const ExperimentConfig& c = plan.runs.front();
  const ResumePoint rp = prepare_resume(c, run_dir, options.force);
  if (rp.previous.status == kStatusCompleted && rp.previous.last_round() >= c.federation.rounds) {
    std::fprintf(out, "%s: completed already (%d rounds); nothing to resume\n", rp.previous.info.run.c_str(),
                 rp.previous.last_round());
    DriverOutcome o;
    o.runs_skipped = 1;
    return o;
  }
  if (rp.checkpoint.round > 0)
    std::fprintf(out, "resuming %s after round %d of %d\n", rp.previous.info.run.c_str(), rp.checkpoint.round,
                 c.federation.rounds);
  else
    std::fprintf(out, "resuming %s: no checkpoint, starting again from round 0\n", rp.previous.info.run.c_str());
  std::fflush(out);
  PlanRunner runner(plan, options, out);
  runner.execute(c, run_dir, &rp, true);
  runner.finish();
  return runner.outcome;
}

} // namespace fedvlm
