// cli/command_line.hpp — each subcommand's options, one table row per flag: its value, what it sets, which commands take it.
#pragma once

#include "actors/cluster.hpp"
#include "actors/experiment_driver.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm::cli {

enum class Command { run, resume, serve, node };

/// A bad command line; main prints it with the usage hint and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What a command line asks for, parsed and checked.
struct CommandLine {
  Command command = Command::run;
  std::string target;                 ///< the experiment file (run, serve) or RUN_DIR (resume)
  std::vector<std::string> overrides; ///< --set, --output-dir, --strict: for load_experiment
  DriverOptions options;              ///< run, resume and serve (options.serve set for serve)
  bool quiet = false;
  bool insecure = false; ///< serve: plain TCP beyond loopback, on purpose
  std::string connect;   ///< node: the server's HOST:PORT
  TlsFiles tls;          ///< serve and node: --cert, --key, --ca
  double wait_seconds = 0; ///< serve: for the nodes to join (default 120); node: for the server (default 60)
  int slots = 0;           ///< node: jobs at once (0 = the server's scheduler.concurrency)
  std::string state_dir;   ///< node: where its clients keep their state for a resumed served run
};

/// One flag: `value` says what follows it ("a directory"; nullptr for a switch), for "--flag
/// needs VALUE"; `apply` stores it, throwing
/// UsageError for a value out of its range.
struct OptionRow {
  const char* flag;
  const char* alias; ///< a short form, or nullptr
  const char* value;
  std::vector<Command> commands;
  void (*apply)(CommandLine& line, const std::string& value);
};

/// Every flag of every command, once.
[[nodiscard]] const std::vector<OptionRow>& option_rows();

/// Parses the arguments after the command word (all of them for `run`). Throws UsageError
/// naming the flag, what it expects and, where it has one, its range.
[[nodiscard]] CommandLine parse_command_line(Command command, const std::vector<std::string>& args);

/// `flag`'s value as a whole number in [lo, hi], or a UsageError naming the flag and the range.
[[nodiscard]] long long int_flag(const std::string& flag, const std::string& v, long long lo, long long hi,
                                 const std::string& what);

/// `flag`'s value as seconds > 0 and at most a year, or a UsageError naming the flag and the range.
[[nodiscard]] double seconds_flag(const std::string& flag, const std::string& v);

} // namespace fedvlm::cli
