// cli/main.cpp — the fedvlm-sim command: run an experiment, plot results, compare results.
#include "actors/cluster.hpp"
#include "actors/experiment_driver.hpp"
#include "cli/command_line.hpp"
#include "fl/config/experiment_toml.hpp"
#include "support/allocator.hpp"
#include "fl/results/results_reader.hpp"
#include "fl/runtime/interrupt.hpp"
#include "monitoring/compare_table.hpp"
#include "monitoring/plots.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <utility>
#include <string>
#include <tuple>
#include <vector>

namespace {

namespace cli = fedvlm::cli;

constexpr const char* kUsage = R"(fedvlm-sim — federated LoRA fine-tuning, simulated with actors on one device

Usage:
  fedvlm-sim EXPERIMENT.toml [--dry-run] [--quiet] [--only RUN]... [--set KEY=VALUE]...
                            [--output-dir DIR] [--resume [--force]] [--strict]
  fedvlm-sim resume RUN_DIR [--set KEY=VALUE]... [--force] [--quiet]
  fedvlm-sim serve EXPERIMENT.toml [--listen HOST:PORT] [--nodes N] [--wait SECONDS]
                   [--cert FILE --key FILE --ca FILE | --insecure] [--resume [--restart-missing-clients]]
                   [run options]
  fedvlm-sim node --connect HOST:PORT [--slots N] [--wait SECONDS] [--state DIR]
                  [--cert FILE --key FILE --ca FILE]
  fedvlm-sim plot RESULTS_DIR... [--out DIR]
  fedvlm-sim compare RESULTS_DIR...
  fedvlm-sim --keys          every experiment key, with type, default, range, meaning and
                             when it applies
  fedvlm-sim --help

Running an experiment:
  --dry-run      validate the file, load the data labels and print the plan of every run:
                 clients, partition sizes and labels per client, rounds, strategy, and the
                 tensors and bytes that travel per round. Nothing is trained or written.
  --quiet        no live progress line (it is also off when stderr is not a terminal)
  --only RUN     run only the sweep point with this label (e.g. clients=4,strategy=plora);
                 may be repeated
  --set KEY=VALUE
                 set an experiment key over the file, checked like the file's own keys;
                 VALUE is TOML (a bare word is a string), an array makes a sweep, and the
                 resolved config.toml records it: --set federation.rounds=3
                 --set 'federation.clients=[2, 4]' --set strategy.name=flora; may be repeated
  --output-dir DIR
                 results go to DIR instead of the file's output_dir
  --resume       a run whose directory OUTPUT_DIR/NAME/RUN exists continues there after its
                 newest checkpoint; completed runs are skipped
  --force        with --resume or resume: accept a configuration that differs from the one
                 the run started with (the differing keys are listed otherwise); a change
                 of strategy, model, data or partition is refused even so
  --strict       a key that has no effect in the chosen configuration (e.g. partition.beta
                 with scheme = "shards") is an error, not a warning; also strict = true

serve:    runs one run (pick it with --only in a sweep) with its clients on node processes:
          waits up to --wait SECONDS (default 120) for --nodes N (default 1) nodes to connect
          on --listen (default 127.0.0.1:4242), gives each a balanced block of clients and the resolved
          configuration, and otherwise runs as usual: the aggregator, results files and
          Prometheus exporter stay here. Only what the strategy shares crosses the network.
node:     connects to a server (waiting up to --wait SECONDS, default 60, for it to listen),
          prepares the same run from this machine's own weights and data (a node whose setup
          differs is refused), hosts its clients until the server ends. A node that joins after
          one was lost takes over that node's clients. --slots N: this node runs N jobs at once
          (its scheduler's concurrency) and gets clients in proportion to its slots.
          --wait takes seconds > 0 (and at most a year) for serve and node alike.
          --state DIR: its clients save their state there after every round the server
          checkpoints (checkpoint.every), and restore it when the server resumes.
serve --resume: continues the served run after the newest round the server checkpointed;
          the nodes restore their clients from their --state; a node without them is refused
          (naming its clients) unless --restart-missing-clients starts them again from their
          starting state (said in the log and in run.json).
--cert FILE --key FILE --ca FILE
          mutual TLS: this side's PEM certificate and key, and the CA that signed the other
          side's; a peer whose certificate that CA did not sign is refused. A --listen address
          beyond loopback needs them, or an explicit --insecure (plain TCP, anyone may join).

resume:   continues the run in RUN_DIR after its newest checkpoint (checkpoints/, written
          after every round), in place, with the configuration in RUN_DIR/config.toml; a run
          killed with kill -9 and resumed ends with the same metrics as one never stopped.
          --set changes keys (e.g. more rounds) and needs --force.

Ctrl-C / SIGTERM: the round in flight is abandoned, the finished rounds' files stay complete,
run.json says "interrupted" with the resume command; a second Ctrl-C exits at once.

  Each run writes OUTPUT_DIR/NAME/RUN/: config.toml (resolved), run.json, metrics.jsonl and
  metrics.csv (one record per client per round, round 0 = before fine-tuning), rounds.jsonl
  and rounds.csv (one summary per round), fedvlm.log, adapters/client_K.safetensors (each
  client's LoRA adapters) with adapters/global.safetensors (the last aggregated matrices),
  and checkpoints/ (for resume),
  all rewritten after every round. Existing results are never overwritten: a rerun gets
  RUN.2, RUN.3, ...

plot:     writes PNG figures (accuracy and loss per client per round, strategy comparison,
          sweep summary) with gnuplot, plus their data and .gp scripts; default --out is
          the first RESULTS_DIR/plots
compare:  prints final metrics per strategy and sweep point, mean ± std over clients and seeds

Exit status: 0 success, 1 a run failed, 2 bad usage or a bad experiment file,
130 / 143 stopped by SIGINT / SIGTERM.
)";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "fedvlm-sim: %s\n(see fedvlm-sim --help)\n", message.c_str());
  return 2;
}

int run_plot(const std::vector<std::string>& args) {
  std::vector<std::filesystem::path> dirs;
  std::filesystem::path out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--out" || args[i] == "-o") {
      if (i + 1 >= args.size()) return usage_error("--out needs a directory");
      out = args[++i];
    } else {
      dirs.emplace_back(args[i]);
    }
  }
  if (dirs.empty()) return usage_error("plot needs at least one RESULTS_DIR");
  if (out.empty()) out = dirs.front() / "plots";
  const auto runs = fedvlm::load_results(dirs);
  for (const auto& png : fedvlm::write_plots(runs, out)) std::printf("%s\n", png.string().c_str());
  return 0;
}

int run_compare(const std::vector<std::string>& args) {
  if (args.empty()) return usage_error("compare needs at least one RESULTS_DIR");
  std::vector<std::filesystem::path> dirs(args.begin(), args.end());
  std::printf("%s", fedvlm::format_comparison(fedvlm::load_results(dirs)).c_str());
  return 0;
}

/// `fedvlm-sim node`: joins a server and runs the clients it is given. A node saves nothing:
/// Ctrl-C ends it at once.
int run_node_command(const std::vector<std::string>& args) {
  const cli::CommandLine line = cli::parse_command_line(cli::Command::node, args);
  fedvlm::check_tls_files(line.tls);
  const auto [host, port] = fedvlm::parse_host_port(line.connect);
  return fedvlm::run_node(host, port, line.tls, line.wait_seconds, line.slots, line.state_dir);
}

/// A run, `resume` or `serve`: loads the experiment (or the run's config.toml) and runs it.
int run_experiment_command(cli::Command command, const std::vector<std::string>& args) {
  cli::CommandLine line = cli::parse_command_line(command, args);
  const bool resume = command == cli::Command::resume;
  if (line.options.serve) fedvlm::check_tls_files(line.options.serve->tls);
  if (resume && !std::filesystem::is_regular_file(std::filesystem::path(line.target) / "run.json"))
    return usage_error("resume: " + line.target + " is not a run directory (it has no run.json)");
  line.options.interactive = !line.quiet && ::isatty(STDERR_FILENO);
  fedvlm::ExperimentPlan plan;
  try {
    plan = fedvlm::load_experiment(resume ? std::filesystem::path(line.target) / "config.toml" : std::filesystem::path(line.target),
                                   line.overrides);
  } catch (const fedvlm::ConfigError& e) {
    std::fprintf(stderr, "fedvlm-sim: %s\n", e.what());
    return 2;
  }
  for (const auto& warning : plan.warnings) std::fprintf(stderr, "fedvlm-sim: warning: %s\n", warning.c_str());
  // A dry run writes nothing, so it may end anywhere; a run saves what it has first.
  if (!line.options.dry_run) fedvlm::exit_at_once_on_interrupt(false);
  const auto outcome = resume ? fedvlm::resume_run(line.target, plan, line.options, stdout)
                              : fedvlm::run_experiment(plan, line.options, stdout);
  std::fflush(stdout);
  if (outcome.interrupted_signal) return 128 + outcome.interrupted_signal;
  // A signal after the last round (while the results were written, or the table printed):
  // the run is complete on disk, yet the command was asked to stop and says so. Everything is
  // written now, so from here a signal ends the process at once with its status; one that came
  // while the process was shutting down (libraries' destructors) used to be lost: exit 0.
  fedvlm::exit_at_once_on_interrupt(true);
  return outcome.runs_failed > 0 ? 1 : 0;
}

/// The command `args` names, with the arguments after its word.
int dispatch(const std::vector<std::string>& args) {
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "plot") return run_plot(rest);
  if (args[0] == "compare") return run_compare(rest);
  if (args[0] == "node") return run_node_command(rest);
  if (args[0] == "resume") return run_experiment_command(cli::Command::resume, rest);
  if (args[0] == "serve") return run_experiment_command(cli::Command::serve, rest);
  return run_experiment_command(cli::Command::run, args);
}

} // namespace

int main(int argc, char** argv) {
  // Before anything else: where libjemalloc2 is installed, run again with it preloaded (glibc's
  // heap fragments under interleaved jobs; support/allocator.hpp). FEDVLM_ALLOCATOR=system opts out.
  fedvlm::allocator_reexec(argv);
  // From the first instruction: a shell that starts this in the background ignores SIGINT, and
  // a signal before the run's own setup would otherwise be lost (or kill without a word).
  // Until a run starts, nothing is written: a stop signal exits at once.
  fedvlm::install_interrupt_handlers();
  fedvlm::exit_at_once_on_interrupt(true);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage_error("no experiment file given");
  if (args[0] == "--help" || args[0] == "-h") {
    std::printf("%s", kUsage);
    return 0;
  }
  if (args[0] == "--keys") {
    std::printf("%s", fedvlm::describe_experiment_keys().c_str());
    return 0;
  }
  try {
    return dispatch(args);
  } catch (const cli::UsageError& e) {
    return usage_error(e.what());
  } catch (const fedvlm::ConfigError& e) { // e.g. an output_dir that cannot be written
    std::fprintf(stderr, "fedvlm-sim: %s\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "fedvlm-sim: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedvlm-sim: %s\n", e.what());
    return 1;
  }
}
