// tests/prometheus_harness.hpp — free ports, child servers (Prometheus, Pushgateway), HTTP via curl, exposition parsing.
//
// Header-only so any test (the exporter's, the dashboard's, an end-to-end CLI run) can start a
// real Prometheus against whatever it exposes. Children are killed by RAII and, should the
// test binary itself die, by PR_SET_PDEATHSIG — a failing test must not leave servers behind.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fl/results/run_records.hpp"
#include "tests/test_support.hpp"

namespace fedvlm::testing {

inline constexpr const char* kPrometheusBinary = "/usr/bin/prometheus";
inline constexpr const char* kPromtoolBinary = "/usr/bin/promtool";
inline constexpr const char* kPushgatewayBinary = "/usr/bin/prometheus-pushgateway";

inline bool executable_exists(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

/// A loopback TCP port that was free a moment ago (bind to 0, read it back, close). Racy by
/// nature; servers started on it are retried by the callers below.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("free_port: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: cannot bind a loopback socket to port 0");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

/// Single-quotes `s` for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct HttpResponse {
  int curl_exit = -1; ///< curl's exit code (0 = got an HTTP response; 7 = connection refused)
  int status = 0;     ///< HTTP status, 0 if none
  std::string body;
  [[nodiscard]] bool ok() const { return curl_exit == 0 && status >= 200 && status < 300; }
};

/// One HTTP request through the curl binary (no libcurl dependency for the tests). `body`, if
/// given, is sent as the request body (for PUT/POST).
inline HttpResponse http_request(const std::string& method, const std::string& url,
                                 const std::string* body = nullptr, double timeout_seconds = 5) {
  std::string body_file;
  if (body) {
    body_file = (std::filesystem::temp_directory_path() /
                 ("fedvlm-http-" + std::to_string(::getpid()) + "-" +
                  std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())))
                    .string();
    std::ofstream(body_file, std::ios::binary) << *body;
  }
  // The status goes on a line of its own after the body so one pipe carries both.
  std::string cmd = "curl -sS -X " + shell_quote(method) + " --max-time " +
                    std::to_string(timeout_seconds) + " -o - -w '\\n%{http_code}' ";
  if (body) cmd += "--data-binary @" + shell_quote(body_file) + " ";
  cmd += shell_quote(url) + " 2>/dev/null";
  HttpResponse response;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return response;
  char buffer[8192];
  std::string out;
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  const int rc = ::pclose(pipe);
  if (!body_file.empty()) std::filesystem::remove(body_file);
  response.curl_exit = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  const auto nl = out.rfind('\n');
  if (nl != std::string::npos) {
    response.status = std::atoi(out.c_str() + nl + 1);
    response.body = out.substr(0, nl);
  }
  return response;
}

inline HttpResponse http_get(const std::string& url, double timeout_seconds = 5) {
  return http_request("GET", url, nullptr, timeout_seconds);
}

/// Polls `condition` every `interval` until it holds or `timeout` passed; returns the last result.
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(250)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}


/// A child process (argv[0] is the executable path) with stdout+stderr in `log_file`. The
/// destructor stops it: SIGTERM, then SIGKILL after a grace period.
class ChildProcess {
public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log_file)
      : log_file_(log_file) {
    if (argv.empty()) throw std::invalid_argument("ChildProcess: expected a non-empty argv");
    // Everything the child needs is built before fork(): only async-signal-safe calls after it.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const std::string log = log_file.string();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed starting " + argv[0]);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127); // parent died before prctl took effect
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Still running (not yet reaped)?
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000)) {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    if (!wait_until([&] { return !running(); }, grace, std::chrono::milliseconds(50))) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  /// The last `max_chars` of the child's output, for failure messages.
  [[nodiscard]] std::string log_tail(std::size_t max_chars = 3000) const {
    const std::string text = read_text_file(log_file_);
    return text.size() > max_chars ? text.substr(text.size() - max_chars) : text;
  }

private:
  pid_t pid_ = -1;
  std::filesystem::path log_file_;
};

/// Starts a server on a free loopback port and waits for its /-/ready. A port free a moment ago
/// may be taken by the time the server binds it, so it tries up to three ports; `command` builds
/// the command line for a port and attempt number. Throws with the server's log tail.
struct ReadyServer {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};
template <typename Command>
ReadyServer start_ready_server(const std::string& what, Command command, const std::filesystem::path& log,
                               std::chrono::milliseconds ready_timeout) {
  std::string last_log;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = free_port();
    auto child = std::make_unique<ChildProcess>(command(port, attempt), log);
    const std::string ready = "http://127.0.0.1:" + std::to_string(port) + "/-/ready";
    if (wait_until([&] { return !child->running() || http_get(ready, 2).ok(); }, ready_timeout) &&
        child->running())
      return {std::move(child), port};
    last_log = child->log_tail();
  }
  throw std::runtime_error(what + " did not become ready at /-/ready; its log:\n" + last_log);
}

/// A Prometheus server scraping `targets` ("host:port", path /metrics) every
/// `scrape_interval_seconds`, with its config, TSDB and log in its own TempDir.
class PrometheusServer {
public:
  static bool available() { return executable_exists(kPrometheusBinary); }

  explicit PrometheusServer(const std::vector<std::string>& targets,
                            double scrape_interval_seconds = 1,
                            std::chrono::milliseconds ready_timeout = std::chrono::seconds(30)) {
    std::ostringstream cfg;
    const std::string interval = std::to_string(static_cast<int>(
                                     std::max(1.0, scrape_interval_seconds * 1000))) + "ms";
    cfg << "global:\n  scrape_interval: " << interval << "\n  evaluation_interval: " << interval
        << "\nscrape_configs:\n  - job_name: fedvlm\n    scrape_interval: " << interval
        << "\n    scrape_timeout: " << interval << "\n    static_configs:\n      - targets: [";
    for (std::size_t i = 0; i < targets.size(); ++i) cfg << (i ? ", " : "") << '"' << targets[i] << '"';
    cfg << "]\n";
    config_ = dir_.path() / "prometheus.yml";
    write_text_file(config_, cfg.str());
    ReadyServer server = start_ready_server(
        "Prometheus",
        [&](int port, int attempt) {
          return std::vector<std::string>{
              kPrometheusBinary, "--config.file=" + config_.string(),
              "--storage.tsdb.path=" + (dir_.path() / ("data" + std::to_string(attempt))).string(),
              "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"};
        },
        dir_.path() / "prometheus.log", ready_timeout);
    process_ = std::move(server.process);
    port_ = server.port;
  }

  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] const std::filesystem::path& config_file() const { return config_; }
  [[nodiscard]] std::string log_tail() const { return process_ ? process_->log_tail() : std::string(); }

  /// Instant query via /api/v1/query; the parsed response, or null if none / not JSON.
  nlohmann::json query(const std::string& promql) const {
    const auto r = http_get(url() + "/api/v1/query?query=" + url_encode(promql), 5);
    if (!r.ok()) return nullptr;
    try {
      return nlohmann::json::parse(r.body);
    } catch (const std::exception&) {
      return nullptr;
    }
  }

  /// The `data.result` array of a successful vector query, else an empty array.
  nlohmann::json query_vector(const std::string& promql) const {
    const auto j = query(promql);
    if (j.is_object() && j.value("status", "") == "success" && j.contains("data") &&
        j["data"].value("resultType", "") == "vector")
      return j["data"]["result"];
    return nlohmann::json::array();
  }

  void stop() { process_.reset(); }

private:
  TempDir dir_{"fedvlm-prometheus"};
  std::filesystem::path config_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

/// A Prometheus Pushgateway on a free loopback port, persisting into its own TempDir.
class PushgatewayServer {
public:
  static bool available() { return executable_exists(kPushgatewayBinary); }

  explicit PushgatewayServer(std::chrono::milliseconds ready_timeout = std::chrono::seconds(20)) {
    ReadyServer server = start_ready_server(
        "Pushgateway",
        [&](int port, int) {
          return std::vector<std::string>{kPushgatewayBinary, "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                          "--persistence.file=" + (dir_.path() / "pushgateway.data").string(),
                                          "--log.level=warn"};
        },
        dir_.path() / "pushgateway.log", ready_timeout);
    process_ = std::move(server.process);
    port_ = server.port;
  }

  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string log_tail() const { return process_ ? process_->log_tail() : std::string(); }

private:
  TempDir dir_{"fedvlm-pushgateway"};
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

/// One sample line of the text exposition format.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Parses text exposition format 0.0.4 sample lines (comments and blank lines skipped).
/// Throws std::runtime_error quoting the line it cannot read.
inline std::vector<Sample> parse_exposition(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    std::size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) throw std::runtime_error("exposition: no value in: " + line);
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
          throw std::runtime_error("exposition: expected label=\"value\" in: " + line);
        const std::string key = line.substr(i, eq - i);
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) throw std::runtime_error("exposition: unterminated label in: " + line);
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) throw std::runtime_error("exposition: missing '}' in: " + line);
      ++i;
    }
    std::istringstream rest(line.substr(i));
    std::string value;
    rest >> value;
    if (value == "+Inf") s.value = HUGE_VAL;
    else if (value == "-Inf") s.value = -HUGE_VAL;
    else if (value == "NaN") s.value = std::nan("");
    else {
      try {
        s.value = std::stod(value);
      } catch (const std::exception&) {
        throw std::runtime_error("exposition: expected a number in: " + line);
      }
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

/// Samples named `name` whose labels include every pair in `labels`.
inline std::vector<Sample> find_samples(const std::vector<Sample>& samples, const std::string& name,
                                        const std::map<std::string, std::string>& labels = {}) {
  std::vector<Sample> out;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      const auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) out.push_back(s);
  }
  return out;
}

/// Feeds `observer` a small deterministic run, so scrapes have known values:
///   before (round 0, phase "before"): accuracy = 0.25 + 0.0625·c;
///   round r ≥ 1 (phase "round"):      accuracy = 0.5 + 0.125·c·r/rounds  (client 2, last round: 0.75);
///   precision = accuracy, recall = accuracy/2, f1 = accuracy/4, loss = 2 − accuracy,
///   train_loss = 1/r; per round each client sends 1000·(c+1) bytes and receives 4000;
///   round r lasts 0.5 + r s; per client and round one "train" job (waited 0.25 s, ran 0.5 s)
///   and one "eval" job (0 s, 0.125 s); queue depth ends at 0; device memory 2^20·(r+1) bytes.
///   As a served run: after round r node k (0, 1) reports queue depth k, 1 running job, 2r
///   "train" jobs busy 0.75·r·(k+1) s, resident 7·2^20·(k+1) bytes, device 4·2^20 (no peak); the
///   wire carried 10000·r bytes sent and 5000·r received in round r.
inline void feed_synthetic_run(RunObserver& o, const std::string& run = "t",
                               const std::string& strategy = "plora", int clients = 3,
                               int rounds = 2) {
  o.run_started(run, strategy, clients, rounds);
  auto record = [&](int c, int r) {
    ClientRoundRecord rec;
    rec.run = run;
    rec.strategy = strategy;
    rec.client = c;
    rec.round = r;
    rec.phase = r == 0 ? kPhaseBefore : kPhaseRound;
    rec.accuracy = r == 0 ? 0.25 + 0.0625 * c : 0.5 + 0.125 * c * r / rounds;
    rec.precision = rec.accuracy;
    rec.recall = rec.accuracy / 2;
    rec.f1 = rec.accuracy / 4;
    rec.loss = 2 - rec.accuracy;
    rec.train_loss = r == 0 ? 0 : 1.0 / r;
    rec.test_samples = 20;
    rec.train_samples = 80;
    rec.bytes_up = r == 0 ? 0 : 1000 * (c + 1);
    rec.bytes_down = r == 0 ? 0 : 4000;
    rec.participated = r > 0;
    rec.round_seconds = r == 0 ? 0 : 0.5 + r;
    rec.task_metrics["exact_match"] = rec.accuracy / 8; // a VQA-style run, so every family has a series
    rec.drift = r == 0 ? 0 : 0.125 * (c + 1) / r;
    rec.staleness = r == 0 ? std::numeric_limits<double>::quiet_NaN() : c; // an async run too
    return rec;
  };
  for (int c = 0; c < clients; ++c) o.client_evaluated(record(c, 0));
  for (int r = 1; r <= rounds; ++r) {
    o.round_started(run, r, rounds);
    o.device_memory((int64_t{1} << 20) * (r + 1), (int64_t{2} << 20) * (r + 1)); // a GPU run: a peak too
    o.process_memory((int64_t{3} << 20) * (r + 1));
    o.scheduler_memory(r, int64_t{64} << 20, (int64_t{5} << 20) * r); // a run with scheduler.memory_budget
    for (int c = 0; c < clients; ++c) {
      o.scheduler_queue(clients - c);
      o.scheduler_job("train", 0.25, 0.5);
      o.client_finished_training(run, r, c);
    }
    for (int c = 0; c < clients; ++c) {
      o.scheduler_job("eval", 0, 0.125);
      o.client_evaluated(record(c, r));
    }
    o.scheduler_queue(0);
    RoundSummary s;
    s.run = run;
    s.strategy = strategy;
    s.round = r;
    s.total_rounds = rounds;
    s.clients_answered = clients;
    s.clients_selected = clients;
    s.min_accuracy = 0.5;
    s.max_accuracy = 0.5 + 0.125 * (clients - 1) * r / rounds;
    s.mean_accuracy = (s.min_accuracy + s.max_accuracy) / 2;
    s.p10_accuracy = s.min_accuracy + 0.1 * (s.max_accuracy - s.min_accuracy);
    s.seconds = 0.5 + r;
    s.clients_failed = r % 2;
    s.clients_late = 1;
    s.aggregation_error = 0.25 / r;
    s.aggregation_error_by_layer = {{"classifier.0", 0.5 / r}, {"classifier.3", 0.0}};
    s.epsilon = 0.75 * r; // a DP run too
    s.virtual_seconds = 10.0 * r;
    s.mean_staleness = (clients - 1) / 2.0;
    s.max_staleness = clients - 1;
    s.global_accuracy = 0.5 + 0.125 * r / rounds; // and a run with evaluation.global_test
    s.global_loss = 1.0 / r;
    s.holdout_accuracy = 0.25 + 0.125 * r / rounds; // and evaluation.holdout_clients
    s.holdout_adapted_accuracy = s.holdout_accuracy + 0.125;
    s.target_accuracy = 0.55; // evaluation.target_accuracy: reached from round 1 on
    s.global_rounds_to_target = 0.5;
    for (int node = 0; node < 2; ++node) {
      NodeSchedulerStats n;
      n.node = node;
      n.queue_depth = node;
      n.running_jobs = 1;
      n.jobs["train"] = 2 * r;
      n.busy_seconds["train"] = 0.75 * r * (node + 1);
      n.resident_bytes = (int64_t{7} << 20) * (node + 1);
      n.device_bytes_in_use = int64_t{4} << 20;
      o.node_scheduler(n);
    }
    s.wire_bytes_sent = 10000 * r;
    s.wire_bytes_received = 5000 * r;
    o.round_finished(s);
  }
  o.run_finished(run);
}

} // namespace fedvlm::testing
