// cli/command_line.cpp — the option table of fedvlm-sim's commands and the parser that reads it.
#include "cli/command_line.hpp"

#include "fl/config/experiment_toml.hpp"
#include "support/usable_cores.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <tuple>

namespace fedvlm::cli {

long long int_flag(const std::string& flag, const std::string& v, long long lo, long long hi, const std::string& what) {
  const std::string range = " from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError(flag + ": expected " + what + range + ", got '" + v + "'");
  // The digits are counted first: no std::stoll overflow, no bare "stoll" in the message.
  const auto digits = v.find_first_not_of('0');
  const long long n = digits == std::string::npos ? 0 : v.size() - digits > 18 ? hi + 1 : std::stoll(v);
  if (n < lo || n > hi) throw UsageError(flag + ": " + v + " is out of range; expected " + what + range);
  return n;
}

double seconds_flag(const std::string& flag, const std::string& v) {
  // Waits beyond a year are typos, and larger ones overflow the clocks they are added to; a wait
  // of 0 gives the other side no chance at all.
  constexpr double kYear = 365.0 * 24 * 3600;
  const std::string range = "> 0 and at most a year (31536000)";
  char* end = nullptr;
  errno = 0;
  const double s = std::strtod(v.c_str(), &end);
  if (v.empty() || end == v.c_str() || *end != '\0' || std::isnan(s))
    throw UsageError(flag + ": expected seconds " + range + ", got '" + v + "'");
  if (!(s > 0) || s > kYear) throw UsageError(flag + ": " + v + " is out of range; expected seconds " + range);
  return s;
}

namespace {

std::pair<std::string, uint16_t> host_port_flag(const char* flag, const std::string& v) {
  try {
    return parse_host_port(v);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string(flag) + ": " + e.what());
  }
}

constexpr Command kRun = Command::run, kResume = Command::resume, kServe = Command::serve, kNode = Command::node;

} // namespace

const std::vector<OptionRow>& option_rows() {
  static const std::vector<OptionRow> rows = {
      {"--set", nullptr, "KEY=VALUE", {kRun, kResume, kServe},
       [](CommandLine& l, const std::string& v) { l.overrides.push_back(v); }},
      {"--output-dir", nullptr, "a directory", {kRun, kResume, kServe},
       [](CommandLine& l, const std::string& v) { l.overrides.push_back(string_override("output_dir", v)); }},
      {"--strict", nullptr, nullptr, {kRun, kResume, kServe},
       [](CommandLine& l, const std::string&) { l.overrides.push_back("strict=true"); }},
      {"--quiet", "-q", nullptr, {kRun, kResume, kServe}, [](CommandLine& l, const std::string&) { l.quiet = true; }},
      {"--force", nullptr, nullptr, {kRun, kResume, kServe},
       [](CommandLine& l, const std::string&) { l.options.force = true; }},
      {"--dry-run", nullptr, nullptr, {kRun, kServe}, [](CommandLine& l, const std::string&) { l.options.dry_run = true; }},
      {"--resume", nullptr, nullptr, {kRun, kServe}, [](CommandLine& l, const std::string&) { l.options.resume = true; }},
      {"--restart-missing-clients", nullptr, nullptr, {kServe},
       [](CommandLine& l, const std::string&) { l.options.serve->restart_missing_clients = true; }},
      {"--only", nullptr, "a run label", {kRun, kServe}, [](CommandLine& l, const std::string& v) { l.options.only.push_back(v); }},
      {"--listen", nullptr, "HOST:PORT", {kServe},
       [](CommandLine& l, const std::string& v) {
         std::tie(l.options.serve->host, l.options.serve->port) = host_port_flag("--listen", v);
       }},
      {"--nodes", nullptr, "a node count", {kServe},
       [](CommandLine& l, const std::string& v) {
         // Each node hosts at least one client, and federation.clients is at most 100000.
         l.options.serve->nodes = static_cast<int>(int_flag("--nodes", v, 1, 100000, "a node count"));
       }},
      {"--wait", nullptr, "seconds", {kServe, kNode},
       [](CommandLine& l, const std::string& v) { l.wait_seconds = seconds_flag("--wait", v); }},
      {"--insecure", nullptr, nullptr, {kServe}, [](CommandLine& l, const std::string&) { l.insecure = true; }},
      {"--cert", nullptr, "a PEM file", {kServe, kNode}, [](CommandLine& l, const std::string& v) { l.tls.certificate = v; }},
      {"--key", nullptr, "a PEM file", {kServe, kNode}, [](CommandLine& l, const std::string& v) { l.tls.key = v; }},
      {"--ca", nullptr, "a PEM file", {kServe, kNode}, [](CommandLine& l, const std::string& v) { l.tls.ca = v; }},
      {"--connect", nullptr, "HOST:PORT", {kNode},
       [](CommandLine& l, const std::string& v) {
         (void)host_port_flag("--connect", v); // checked here, parsed again by the node
         l.connect = v;
       }},
      {"--state", nullptr, "a directory", {kNode}, [](CommandLine& l, const std::string& v) { l.state_dir = v; }},
      {"--slots", nullptr, "a job count", {kNode},
       [](CommandLine& l, const std::string& v) {
         // The node's scheduler concurrency: bounded as scheduler.concurrency is.
         l.slots = static_cast<int>(int_flag("--slots", v, 1, 4LL * usable_cores(),
                                             "a job count (4 x this machine's usable cores at most)"));
       }},
  };
  return rows;
}

namespace {

const OptionRow* find_option(const std::string& arg) {
  for (const auto& row : option_rows())
    if (arg == row.flag || (row.alias != nullptr && arg == row.alias)) return &row;
  return nullptr;
}

const char* command_name(Command c) {
  switch (c) {
  case Command::run: return "a run";
  case Command::resume: return "resume";
  case Command::serve: return "serve";
  case Command::node: return "node";
  }
  return "?";
}

/// What the options say together, once each is read.
void check_together(CommandLine& l) {
  const Command c = l.command;
  if (c == Command::node) {
    if (l.connect.empty()) throw UsageError("node takes --connect HOST:PORT");
  } else if (l.target.empty()) {
    throw UsageError(c == Command::resume ? "resume needs a RUN_DIR (results/NAME/RUN)" : "no experiment file given");
  }
  if (c == Command::serve) {
    l.options.serve->tls = l.tls;
    if (l.insecure && l.tls.enabled()) throw UsageError("--insecure and --cert/--key/--ca contradict each other: pick one");
    if (!l.insecure && !l.tls.enabled() && !is_loopback(l.options.serve->host))
      throw UsageError("--listen " + l.options.serve->host + ": beyond loopback the clients' messages would cross "
                       "the network and anyone could join: give --cert FILE --key FILE --ca FILE (mutual TLS), or "
                       "--insecure to use plain TCP anyway on a network you trust");
    l.options.serve->wait_seconds = l.wait_seconds;
  }
  if (l.options.force && c != Command::resume && !l.options.resume)
    throw UsageError("--force goes with --resume or resume");
  if (c == Command::serve && l.options.serve->restart_missing_clients && !l.options.resume)
    throw UsageError("--restart-missing-clients goes with serve --resume");
}

} // namespace

CommandLine parse_command_line(Command command, const std::vector<std::string>& args) {
  CommandLine l;
  l.command = command;
  if (command == Command::serve) l.options.serve = ServeSettings{"127.0.0.1", 4242, 1, 120};
  l.wait_seconds = command == Command::node ? 60 : 120;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const OptionRow* row = find_option(a);
    if (row != nullptr && std::find(row->commands.begin(), row->commands.end(), command) != row->commands.end()) {
      std::string value;
      if (row->value != nullptr) {
        if (i + 1 >= args.size()) throw UsageError(a + " needs " + row->value);
        value = args[++i];
      }
      row->apply(l, value);
    } else if (a.rfind("--", 0) == 0) {
      throw UsageError("unknown option " + a + " for " + command_name(command) +
                       (row != nullptr ? " (" + a + " belongs to another command)" : ""));
    } else if (command == Command::node) {
      throw UsageError("node takes --connect HOST:PORT [--cert FILE --key FILE --ca FILE], got " + a);
    } else if (l.target.empty()) {
      l.target = a;
    } else {
      throw UsageError(command == Command::resume ? "resume takes one RUN_DIR (got " + l.target + " and " + a + ")"
                                                  : "more than one experiment file given (" + l.target + ", " + a + ")");
    }
  }
  check_together(l);
  return l;
}

} // namespace fedvlm::cli
