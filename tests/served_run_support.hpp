// tests/served_run_support.hpp — what the tests of served runs share: a free port, a bash script run, a small run's config, its metrics.
#pragma once

#include "tests/test_support.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm::testing {

inline const std::filesystem::path kFashionMnist = "/usr/share/datasets/fashion-mnist";

/// A port nothing listens on right now.
inline uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Runs `script` with bash from a file in `dir` (no quoting through std::system's shell), for at
/// most `timeout_seconds`; its exit status.
inline int run_script(const std::filesystem::path& dir, const std::string& script, int timeout_seconds) {
  const std::filesystem::path file = dir / "script.sh";
  write_text_file(file, script);
  const int status = std::system(("timeout " + std::to_string(timeout_seconds) + " bash '" + file.string() + "'").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A run's metrics.jsonl records without their wall times: what a served and a one-process run share.
inline std::vector<nlohmann::json> records_without_times(const std::filesystem::path& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("round_seconds");
    out.push_back(j);
  }
  return out;
}

/// A run's rounds.jsonl summaries without their wall times and the bytes CAF put on the wire
/// (which count connections and retries, not the run).
inline std::vector<nlohmann::json> rounds_without_times(const std::filesystem::path& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "rounds.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    for (const char* key : {"seconds", "wire_bytes_sent", "wire_bytes_received"}) j.erase(key);
    out.push_back(j);
  }
  return out;
}

/// A small pLoRA run on Fashion-MNIST (mlp_2nn, two shards per client, 2 rounds) named `name`.
inline std::string small_served_config(const std::filesystem::path& out, const std::string& name, int clients,
                                       int max_samples) {
  return "name = \"" + name + "\"\nseed = 1\noutput_dir = \"" + out.string() + "\"\n"
         "[data]\npath = \"" + kFashionMnist.string() + "\"\nmax_samples = " + std::to_string(max_samples) + "\n"
         "[model]\narch = \"mlp_2nn\"\n[pretrain]\nenabled = false\n"
         "[partition]\nscheme = \"shards\"\nshards = " + std::to_string(2 * clients) + "\nshards_per_client = 2\n"
         "[federation]\nclients = " + std::to_string(clients) + "\nrounds = 2\n[strategy]\nname = \"plora\"\n"
         "[lora]\ntargets = [\"fc1\", \"fc3\"]\n[train]\nlr = 0.05\n";
}

} // namespace fedvlm::testing
