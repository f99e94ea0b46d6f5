// cli/main.cpp — the fedvlm-sim command: run an experiment, plot results, compare results.
#include "actors/cluster.hpp"
#include "actors/experiment_driver.hpp"
#include "fl/config/experiment_toml.hpp"
#include "fl/results/results_reader.hpp"
#include "fl/runtime/interrupt.hpp"
#include "monitoring/compare_table.hpp"
#include "monitoring/plots.hpp"
#include "support/usable_cores.hpp"

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

/// A bad command-line option; main turns it into a usage error (exit 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// `flag`'s value as a whole number in [lo, hi], or a UsageError naming the flag and the range
/// (never std::stoi's bare "stoi", and no overflow: the digits are counted first).
long long int_flag(const std::string& flag, const std::string& v, long long lo, long long hi, const std::string& what) {
  const std::string range = " from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError(flag + ": expected " + what + range + ", got '" + v + "'");
  const auto digits = v.find_first_not_of('0');
  const long long n = digits == std::string::npos ? 0 : v.size() - digits > 18 ? hi + 1 : std::stoll(v);
  if (n < lo || n > hi) throw UsageError(flag + ": " + v + " is out of range; expected " + what + range);
  return n;
}

/// `flag`'s value as seconds in [lo, a year]: waits beyond that are typos, and larger ones
/// overflow the clocks they are added to.
double seconds_flag(const std::string& flag, const std::string& v, double lo, bool lo_open) {
  constexpr double kYear = 365.0 * 24 * 3600;
  char* end = nullptr;
  errno = 0;
  const double s = std::strtod(v.c_str(), &end);
  const std::string range = std::string(lo_open ? "> " : ">= ") + (lo == 0 ? std::string("0") : std::to_string(lo)) + " and at most a year (31536000)";
  if (v.empty() || end == v.c_str() || *end != '\0' || std::isnan(s))
    throw UsageError(flag + ": expected seconds " + range + ", got '" + v + "'");
  if ((lo_open ? !(s > lo) : !(s >= lo)) || s > kYear)
    throw UsageError(flag + ": " + v + " is out of range; expected seconds " + range);
  return s;
}

/// Consumes `--cert FILE`, `--key FILE` or `--ca FILE` at args[i] into `tls`. Returns false if
/// args[i] is none of them; sets `error` when the file is missing. Shared by serve and node.
bool parse_tls_option(const std::vector<std::string>& args, std::size_t& i, fedvlm::TlsFiles& tls,
                      std::string& error) {
  const std::string& a = args[i];
  std::string* slot = a == "--cert" ? &tls.certificate : a == "--key" ? &tls.key : a == "--ca" ? &tls.ca : nullptr;
  if (!slot) return false;
  if (i + 1 >= args.size()) error = a + " needs a PEM file";
  else *slot = args[++i];
  return true;
}

/// Consumes `--set KEY=VALUE` or `--output-dir DIR` at args[i] (advancing i past its value)
/// into `overrides` for load_experiment. Returns false if args[i] is neither; sets `error` when
/// the value is missing. Shared by every command that loads an experiment.
bool parse_config_override(const std::vector<std::string>& args, std::size_t& i,
                           std::vector<std::string>& overrides, std::string& error) {
  const std::string& a = args[i];
  if (a != "--set" && a != "--output-dir") return false;
  if (i + 1 >= args.size()) {
    error = a == "--set" ? "--set needs KEY=VALUE, e.g. --set federation.rounds=3" : "--output-dir needs a directory";
    return true;
  }
  const std::string& value = args[++i];
  overrides.push_back(a == "--set" ? value : fedvlm::string_override("output_dir", value));
  return true;
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

} // namespace

int main(int argc, char** argv) {
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
    if (args[0] == "plot") return run_plot({args.begin() + 1, args.end()});
    if (args[0] == "compare") return run_compare({args.begin() + 1, args.end()});
    if (args[0] == "node") {
      std::string connect;
      fedvlm::TlsFiles tls;
      double wait = 60;
      int slots = 0;
      std::string state_dir; // issue 21 resume: --state DIR
      for (std::size_t i = 1; i < args.size(); ++i) {
        std::string error;
        if (parse_tls_option(args, i, tls, error)) {
          if (!error.empty()) return usage_error(error);
        } else if (args[i] == "--connect" && i + 1 < args.size()) connect = args[++i];
        else if (args[i] == "--slots" && i + 1 < args.size()) {
          // The node's scheduler concurrency: bounded as scheduler.concurrency is.
          slots = static_cast<int>(int_flag("--slots", args[++i], 1, 4LL * fedvlm::usable_cores(),
                                            "a job count (4 x this machine's usable cores at most)"));
        } else if (args[i] == "--wait" && i + 1 < args.size()) {
          wait = seconds_flag("--wait", args[++i], 0, false);
        } else if (args[i] == "--state" && i + 1 < args.size()) { // issue 21 resume
          state_dir = args[++i];
        }
        else return usage_error("node takes --connect HOST:PORT [--cert FILE --key FILE --ca FILE], got " + args[i]);
      }
      if (connect.empty()) return usage_error("node takes --connect HOST:PORT");
      fedvlm::check_tls_files(tls);
      std::pair<std::string, uint16_t> host_port;
      try {
        host_port = fedvlm::parse_host_port(connect);
      } catch (const std::invalid_argument& e) {
        return usage_error("--connect: " + std::string(e.what()));
      }
      const auto& [host, port] = host_port; // a node saves nothing: Ctrl-C ends it at once
      return fedvlm::run_node(host, port, tls, wait, slots, state_dir);
    }

    const bool resume = args[0] == "resume";
    const bool serve = args[0] == "serve";
    fedvlm::DriverOptions options;
    if (serve) options.serve = fedvlm::ServeSettings{"127.0.0.1", 4242, 1, 120};
    bool insecure = false;
    std::string file; // the experiment file, or the run directory to resume
    bool quiet = false;
    std::vector<std::string> overrides;
    for (std::size_t i = resume || serve ? 1 : 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      std::string error;
      if (parse_config_override(args, i, overrides, error) || (serve && parse_tls_option(args, i, options.serve->tls, error))) {
        if (!error.empty()) return usage_error(error);
      } else if (a == "--quiet" || a == "-q") quiet = true;
      else if (a == "--force") options.force = true;
      else if (a == "--strict") overrides.push_back("strict=true");
      else if (!resume && a == "--dry-run") options.dry_run = true;
      else if (!resume && a == "--resume") options.resume = true; // serve too (issue 21 resume)
      else if (serve && a == "--restart-missing-clients") options.serve->restart_missing_clients = true; // issue 21
      else if (serve && a == "--insecure") insecure = true;
      else if (serve && (a == "--listen" || a == "--nodes" || a == "--wait")) {
        if (i + 1 >= args.size()) return usage_error(a + " needs a value");
        const std::string v = args[++i];
        if (a == "--wait") {
          options.serve->wait_seconds = seconds_flag("--wait", v, 0, true);
        } else if (a == "--nodes") {
          // Each node hosts at least one client, and federation.clients is at most 100000.
          options.serve->nodes = static_cast<int>(int_flag("--nodes", v, 1, 100000, "a node count"));
        } else {
          try {
            std::tie(options.serve->host, options.serve->port) = fedvlm::parse_host_port(v);
          } catch (const std::invalid_argument& e) {
            return usage_error("--listen: " + std::string(e.what()));
          }
        }
      }
      else if (!resume && a == "--only") {
        if (i + 1 >= args.size()) return usage_error("--only needs a run label");
        options.only.push_back(args[++i]);
      } else if (a.rfind("--", 0) == 0) return usage_error("unknown option " + a + (resume ? " for resume" : ""));
      else if (file.empty()) file = a;
      else return usage_error(resume ? "resume takes one RUN_DIR (got " + file + " and " + a + ")"
                                     : "more than one experiment file given (" + file + ", " + a + ")");
    }
    if (file.empty()) return usage_error(resume ? "resume needs a RUN_DIR (results/NAME/RUN)" : "no experiment file given");
    if (serve) {
      fedvlm::check_tls_files(options.serve->tls);
      if (insecure && options.serve->tls.enabled())
        return usage_error("--insecure and --cert/--key/--ca contradict each other: pick one");
      if (!insecure && !options.serve->tls.enabled() && !fedvlm::is_loopback(options.serve->host))
        return usage_error("--listen " + options.serve->host + ": beyond loopback the clients' messages would cross "
                           "the network and anyone could join: give --cert FILE --key FILE --ca FILE (mutual TLS), or "
                           "--insecure to use plain TCP anyway on a network you trust");
    }
    if (options.force && !resume && !options.resume) return usage_error("--force goes with --resume or resume");
    if (serve && options.serve->restart_missing_clients && !options.resume) // issue 21 resume
      return usage_error("--restart-missing-clients goes with serve --resume");
    if (resume && !std::filesystem::is_regular_file(std::filesystem::path(file) / "run.json"))
      return usage_error("resume: " + file + " is not a run directory (it has no run.json)");
    options.interactive = !quiet && ::isatty(STDERR_FILENO);
    fedvlm::ExperimentPlan plan;
    try {
      plan = fedvlm::load_experiment(resume ? std::filesystem::path(file) / "config.toml" : std::filesystem::path(file),
                                     overrides);
    } catch (const fedvlm::ConfigError& e) {
      std::fprintf(stderr, "fedvlm-sim: %s\n", e.what());
      return 2;
    }
    for (const auto& warning : plan.warnings) std::fprintf(stderr, "fedvlm-sim: warning: %s\n", warning.c_str());
    // A dry run writes nothing, so it may end anywhere; a run saves what it has first.
    if (!options.dry_run) fedvlm::exit_at_once_on_interrupt(false);
    const auto outcome = resume ? fedvlm::resume_run(file, plan, options, stdout)
                                : fedvlm::run_experiment(plan, options, stdout);
    std::fflush(stdout);
    if (outcome.interrupted_signal) return 128 + outcome.interrupted_signal;
    // A signal after the last round (while the results were written, or the table printed):
    // the run is complete on disk, yet the command was asked to stop and says so.
    if (const int sig = fedvlm::interrupt_signal()) return 128 + sig;
    return outcome.runs_failed > 0 ? 1 : 0;
  } catch (const UsageError& e) {
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
