// actors/experiment_driver.cpp — per run: setup, results directory, observers, actors, final table.
#include "actors/experiment_driver.hpp"

#include "actors/run_driver.hpp"
#include "fl/atomic_file.hpp"
#include "fl/observer_list.hpp"
#include "fl/results_reader.hpp"
#include "fl/results_writer.hpp"
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
#include <memory>

namespace fedvlm {

namespace {

/// The default logger writes to stderr and, while a run is going, to its fedvlm.log too.
std::shared_ptr<spdlog::sinks::dist_sink_mt> log_fanout() {
  static std::shared_ptr<spdlog::sinks::dist_sink_mt> fanout = [] {
    auto dist = std::make_shared<spdlog::sinks::dist_sink_mt>();
    dist->add_sink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    auto logger = std::make_shared<spdlog::logger>("fedvlm", dist);
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
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

/// Each client's final adapters (its personalised model) and the last global matrices.
void save_adapters(const std::filesystem::path& dir, const RunDone& done) {
  for (std::size_t k = 0; k < done.adapters.size(); ++k)
    safetensors_save(dir / ("client_" + std::to_string(k) + ".safetensors"), done.adapters[k]);
  if (!done.global.empty()) safetensors_save(dir / "global.safetensors", done.global);
}

void select_device(const std::string& device) {
  if (device != "cuda") return;
  if (!at::hasCUDA())
    spdlog::warn("device = \"cuda\" requested, but this LibTorch build has no CUDA support or no GPU is "
                 "visible: running on the CPU");
  else
    spdlog::warn("device = \"cuda\" requested and a GPU is visible, but fedvlm-sim does not run models on CUDA "
                 "yet: running on the CPU");
}

} // namespace

DriverOutcome run_experiment(const ExperimentPlan& plan, const DriverOptions& options, std::FILE* out) {
  log_fanout();
  DriverOutcome outcome;
  std::vector<const ExperimentConfig*> runs;
  for (const auto& c : plan.runs)
    if (options.only.empty() || std::count(options.only.begin(), options.only.end(), c.run_label))
      runs.push_back(&c);
  for (const auto& label : options.only) {
    const bool known = std::any_of(plan.runs.begin(), plan.runs.end(), [&](const auto& c) { return c.run_label == label; });
    if (!known) {
      std::string labels;
      for (const auto& c : plan.runs) labels += (labels.empty() ? "" : ", ") + c.run_label;
      throw std::runtime_error("--only " + label + ": no such run (runs: " + labels + ")");
    }
  }

  DatasetCache datasets;
  if (options.dry_run) {
    std::fprintf(out, "%zu run(s)%s\n", runs.size(),
                 plan.sweep_keys.empty() ? "" : " (a sweep grid; see the labels below)");
    for (const auto* c : runs) {
      const RunSetup setup = prepare_run(*c, datasets, SetupMode::plan);
      std::fprintf(out, "\n%s", describe_plan(*c, setup).c_str());
    }
    return outcome;
  }
  for (const auto* c : runs) check_output_paths(*c); // a bad output_dir fails now, not after data loading

  // One exporter for the whole plan, so a sweep is one scrape target with a `run` label.
  std::unique_ptr<PrometheusExporter> exporter;
  const MonitoringSettings& mon = plan.runs.front().monitoring;
  if (!mon.prometheus.empty() || !mon.pushgateway.empty()) {
    PrometheusSettings ps;
    ps.listen = mon.prometheus;
    ps.pushgateway = mon.pushgateway;
    ps.push_job = "fedvlm_" + plan.runs.front().name;
    ps.linger_seconds = mon.linger_seconds;
    exporter = std::make_unique<PrometheusExporter>(ps);
    if (!mon.prometheus.empty()) spdlog::info("Prometheus metrics at {}", exporter->endpoint());
  }

  for (const auto* c : runs) {
    const std::string run_id = c->name + "/" + c->run_label;
    if (c->threads > 0) at::set_num_threads(c->threads);
    select_device(c->device);
    const std::filesystem::path dir = fresh_run_dir(*c);
    std::filesystem::create_directories(dir);
    outcome.run_dirs.push_back(dir);
    RunLogFile log_file(dir / "fedvlm.log");
    atomic_write_file(dir / "config.toml", c->resolved_toml);

    RunInfo info;
    info.experiment = c->name;
    info.run = run_id;
    info.strategy = to_string(c->strategy);
    info.sweep = c->sweep;
    info.clients = c->federation.clients;
    info.rounds = c->federation.rounds;
    info.seed = c->seed;
    ResultsWriter writer(dir, info);
    ProgressDisplay progress(stderr, options.interactive);
    ObserverList observers;
    observers.add(&writer);
    observers.add(exporter.get());
    observers.add(&progress);

    spdlog::info("run {} -> {}", run_id, dir.string());
    try {
      const RunSetup setup = prepare_run(*c, datasets, SetupMode::execute);
      spdlog::info("{}", describe_plan(*c, setup));
      spdlog::info("{}", setup.task->cache_summary());
      const RunDone done = run_federation(*c, run_id, setup, observers);
      progress.clear();
      save_adapters(dir / "adapters", done);
      writer.finish(kStatusCompleted, done.rounds_without_quorum
                                          ? std::to_string(done.rounds_without_quorum) + " round(s) without quorum"
                                          : "");
      ++outcome.runs_completed;
      std::fprintf(out, "\n%s\n%s\n", run_id.c_str(), format_client_table(writer.records()).c_str());
    } catch (const std::exception& e) {
      progress.clear();
      spdlog::error("{}", e.what());
      writer.finish(kStatusFailed, e.what());
      ++outcome.runs_failed;
      if (runs.size() == 1) throw; // a single run's failure is the command's failure
    }
    std::fprintf(out, "results: %s\n", dir.string().c_str());
    std::fflush(out);
  }

  if (outcome.run_dirs.size() > 1 && outcome.runs_completed > 0) {
    try {
      std::fprintf(out, "\n%s", format_comparison(load_results(outcome.run_dirs)).c_str());
    } catch (const std::exception& e) {
      spdlog::warn("comparison table skipped: {}", e.what());
    }
  }
  if (exporter) exporter->linger();
  return outcome;
}

} // namespace fedvlm
