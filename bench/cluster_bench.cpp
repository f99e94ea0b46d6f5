// bench/cluster_bench.cpp — seconds per round in one process vs a server and 2 node processes.
//
// Writes a small experiment (Fashion-MNIST, mlp_2nn with LoRA, 8 clients), runs it with
// fedvlm-sim in one process and as `serve` + 2 `node` processes on 127.0.0.1, checks that both
// give the same metrics, and prints the mean seconds per round (rounds after the first) of
// each, from rounds.jsonl, and the bytes per round the server's connections to its nodes really
// carried (TCP_INFO) beside the tensor bytes the records compute. Run it with TLS=1 in the
// environment to do the served run over mutual TLS (certificates made with openssl).
//
// SHAPED=MBIT[:DELAY_MS] (root, iproute2) adds a third run: the server and each node in their own
// network namespace, joined by veth pairs shaped to MBIT Mbit/s and DELAY_MS one-way delay with
// `tc netem` (a kernel without netem: `tbf`, bandwidth only, delay 0, said in the output), and
// prints its seconds per round beside a model of the round built from the loopback run:
//   t_shaped = t_loopback + k x RTT + (bytes to a node + bytes from a node) / bandwidth
// (nothing overlapped; and a lower figure where a node's transfers overlap its clients' training
// but for one client's share)
// with RTT = 2 x DELAY_MS, k = 2 request/answer exchanges a round (train, evaluate) and the bytes
// per node link the loopback run counted on its sockets (TCP_INFO; both nodes' links in parallel).
// Usage: cluster_bench [CLIENTS] [ROUNDS] [LOCAL_EPOCHS]
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::vector<nlohmann::json> lines(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

double mean_round_seconds(const fs::path& run) {
  const auto rounds = lines(run / "rounds.jsonl");
  double sum = 0;
  int n = 0;
  for (const auto& r : rounds)
    if (r.at("round").get<int>() > 1) {
      sum += r.at("seconds").get<double>();
      ++n;
    }
  return n ? sum / n : 0;
}

/// Mean per round after round 0: (wire sent, wire received, computed down, computed up).
std::array<double, 4> bytes_per_round(const fs::path& run) {
  std::array<double, 4> sum{};
  int n = 0;
  for (const auto& r : lines(run / "rounds.jsonl"))
    if (r.at("round").get<int>() > 0) {
      sum[0] += r.value("wire_bytes_sent", 0.0);
      sum[1] += r.value("wire_bytes_received", 0.0);
      ++n;
    }
  for (const auto& r : lines(run / "metrics.jsonl")) {
    sum[2] += r.at("bytes_down").get<double>();
    sum[3] += r.at("bytes_up").get<double>();
  }
  for (double& v : sum) v /= n > 0 ? n : 1;
  return sum;
}

bool same_metrics(const fs::path& a, const fs::path& b) {
  auto strip = [](std::vector<nlohmann::json> v) {
    for (auto& j : v) j.erase("round_seconds");
    return v;
  };
  return strip(lines(a / "metrics.jsonl")) == strip(lines(b / "metrics.jsonl"));
}

/// A CA, a server and a node certificate made with openssl (a shell snippet), and the options
/// that use them.
struct TlsScripts {
  std::string certs, server_tls, node_tls;
};
TlsScripts tls_scripts(const fs::path& dir) {
  TlsScripts t;
  const std::string d = "'" + dir.string() + "'/";
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  t.certs = "set -e; openssl req -x509 " + key + " -days 2 -subj /CN=ca -keyout " + d + "ca.key -out " + d +
          "ca.pem 2>/dev/null\nfor n in server node; do openssl req " + key + " -subj /CN=$n -keyout " + d +
          "$n.key -out " + d + "$n.csr 2>/dev/null; openssl x509 -req -in " + d + "$n.csr -CA " + d + "ca.pem -CAkey " +
          d + "ca.key -set_serial 1 -days 2 -out " + d + "$n.pem 2>/dev/null; done\nset +e\n";
  t.server_tls = " --cert " + d + "server.pem --key " + d + "server.key --ca " + d + "ca.pem";
  t.node_tls = " --cert " + d + "node.pem --key " + d + "node.key --ca " + d + "ca.pem";
  return t;
}

/// The served run again with the server and its two nodes in their own network namespaces,
/// joined by veth pairs shaped to `mbit` (netem with `delay_ms` where the kernel has it, else tbf).
bool run_shaped(const fs::path& dir, const fs::path& cli, const TlsScripts& t, bool tls, double mbit, double delay_ms) {
  const std::string p = "fb" + std::to_string(::getpid() % 100000), rate = std::to_string(mbit) + "mbit";
  // tbf's bucket: 10 ms of the rate (at least 4 KiB), so that a round's few tens of KB are
  // paced by the rate and not passed at once from a full bucket.
  const long long burst = std::max(4096LL, static_cast<long long>(mbit * 1e6 / 8 / 100));
  const std::string links[] = {"$S:" + p + "sa", "$A:" + p + "as", "$S:" + p + "sb", "$B:" + p + "bs"};
  std::string each;
  for (const auto& l : links) each += " " + l;
  const std::string listen = tls ? " --listen 10.78.1.1:4242" + t.server_tls : " --listen 10.78.1.1:4242 --insecure";
  std::ofstream(dir / "shaped.sh")
      << t.certs << "S=" << p << "s A=" << p << "a B=" << p << "b\n"
      << "cleanup() { ip netns del $S; ip netns del $A; ip netns del $B; } 2>/dev/null; trap cleanup EXIT\n"
      << "set -e; for n in $S $A $B; do ip netns add $n; ip -n $n link set lo up; done\n"
      << "ip link add " << p << "sa netns $S type veth peer name " << p << "as netns $A\n"
      << "ip link add " << p << "sb netns $S type veth peer name " << p << "bs netns $B\n"
      << "ip -n $S addr add 10.78.1.1/24 dev " << p << "sa; ip -n $A addr add 10.78.1.2/24 dev " << p << "as\n"
      << "ip -n $S addr add 10.78.2.1/24 dev " << p << "sb; ip -n $B addr add 10.78.2.2/24 dev " << p << "bs\n"
      << "for d in" << each << "; do ip -n ${d%%:*} link set ${d#*:} up; done\n"
      << "ip -n $A route add default via 10.78.1.1; ip -n $B route add default via 10.78.2.1\n"
      << "shape=netem; for d in" << each << "; do\n"
      << "  ip netns exec ${d%%:*} tc qdisc add dev ${d#*:} root netem delay " << delay_ms << "ms rate " << rate
      << " 2>/dev/null || { shape=tbf; ip netns exec ${d%%:*} tc qdisc add dev ${d#*:} root tbf rate " << rate
      << " burst " << burst << " latency 2s; }\ndone; echo $shape > '" << (dir / "shape.txt").string() << "'; set +e\n"
      << "ip netns exec $S '" << cli.string() << "' serve '" << (dir / "bench.toml").string() << "'" << listen
      << " --nodes 2 --quiet > '" << (dir / "shaped.log").string() << "' 2>&1 & s=$!; sleep 1\n"
      << "ip netns exec $A '" << cli.string() << "' node --connect 10.78.1.1:4242" << t.node_tls << " > /dev/null 2>&1 &\n"
      << "ip netns exec $B '" << cli.string() << "' node --connect 10.78.1.1:4242" << t.node_tls << " > /dev/null 2>&1 &\n"
      << "wait $s; rc=$?; wait; exit $rc\n";
  if (std::system(("timeout 600 bash '" + (dir / "shaped.sh").string() + "'").c_str()) != 0) {
    std::fprintf(stderr, "the shaped run failed (root and iproute2 needed); see %s\n", (dir / "shaped.log").c_str());
    return false;
  }
  return true;
}

/// The shaped run's seconds per round beside a model of it: the loopback round plus the RTTs
/// and the bytes over the link, with or without transfers overlapping training.
void print_shaped(const fs::path& dir, const fs::path& a, double two, const std::array<double, 4>& bytes,
                  const std::string& shaper, double mbit, double delay_ms, int clients) {
  const fs::path c = dir / "shaped" / "bench" / "run";
  const double shaped = mean_round_seconds(c);
  // Each node's link carries about half of what the server's connections carried.
  const double link_bytes = (bytes[0] + bytes[1]) / 2;
  const double rtt = 2 * delay_ms / 1000, transfer = link_bytes * 8 / (mbit * 1e6);
  // Upper: nothing overlaps. Lower: a node's transfers overlap its clients' training but for
  // the first client's download and the last one's upload (its share of the bytes).
  const double model = two + 2 * rtt + transfer, per_node = std::max(1, clients / 2);
  const double overlapped = two + 2 * rtt + transfer / per_node;
  std::printf("shaped links (%s: %.1f Mbit/s, %.0f ms one way%s), server and nodes in their own namespaces:\n",
              shaper.c_str(), mbit, delay_ms, shaper == "netem" ? "" : "; this kernel has no netem: no delay");
  std::printf("  measured                  : %8.3f s  (same metrics: %s)\n", shaped, same_metrics(a, c) ? "yes" : "NO");
  std::printf("  model, nothing overlapped : %8.3f s  = %.3f (loopback round) + 2 x %.3f (RTT) + %.0f B x 8 / %.1f Mbit/s"
              " (%.3f s)\n", model, two, rtt, link_bytes, mbit, transfer);
  std::printf("  model, transfers overlap  : %8.3f s  (only 1 of a node's %.0f clients' transfers in the way)\n", overlapped,
              per_node);
}

} // namespace

int main(int argc, char** argv) {
  const int clients = argc > 1 ? std::atoi(argv[1]) : 8;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 4;
  const int epochs = argc > 3 ? std::atoi(argv[3]) : 10;
  const fs::path cli = fs::read_symlink("/proc/self/exe").parent_path() / "fedvlm-sim";
  const fs::path dir = fs::temp_directory_path() / ("fedvlm-cluster-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto config = [&](const std::string& out) {
    std::ofstream f(dir / "bench.toml");
    f << "name = \"bench\"\nseed = 1\noutput_dir = \"" << (dir / out).string() << "\"\n"
      << "[data]\npath = \"/usr/share/datasets/fashion-mnist\"\nmax_samples = " << clients * 400 << "\n"
      << "[model]\narch = \"mlp_2nn\"\n[pretrain]\nenabled = false\n"
      << "[partition]\nscheme = \"shards\"\nshards = " << 2 * clients << "\nshards_per_client = 2\n"
      << "[federation]\nclients = " << clients << "\nrounds = " << rounds << "\n"
      << "[strategy]\nname = \"plora\"\n[lora]\ntargets = [\"fc1\", \"fc2\", \"fc3\"]\n"
      << "[train]\nlr = 0.01\nlocal_epochs = " << epochs << "\n[scheduler]\nconcurrency = 2\n";
  };
  config("single");
  if (std::system(("'" + cli.string() + "' '" + (dir / "bench.toml").string() + "' --quiet > '" +
                   (dir / "single.log").string() + "' 2>&1").c_str()) != 0) {
    std::fprintf(stderr, "the single-process run failed; see %s\n", (dir / "single.log").c_str());
    return 1;
  }
  config("served");
  const bool tls = std::getenv("TLS") && std::string(std::getenv("TLS")) == "1";
  const std::string at = "127.0.0.1:" + std::to_string(47000 + ::getpid() % 1000);
  const TlsScripts t = tls ? tls_scripts(dir) : TlsScripts{};
  const std::string& certs = t.certs;
  const std::string& server_tls = t.server_tls;
  const std::string& node_tls = t.node_tls;
  std::ofstream(dir / "run.sh") << certs << "'" << cli.string() << "' serve '" << (dir / "bench.toml").string()
                                << "' --listen " << at << " --nodes 2 --quiet" << server_tls << " > '"
                                << (dir / "served.log").string() << "' 2>&1 & s=$!; sleep 1\n"
                                << "'" << cli.string() << "' node --connect " << at << node_tls << " > /dev/null 2>&1 &\n"
                                << "'" << cli.string() << "' node --connect " << at << node_tls << " > /dev/null 2>&1 &\n"
                                << "wait $s; rc=$?; wait; exit $rc\n";
  if (std::system(("timeout 600 bash '" + (dir / "run.sh").string() + "'").c_str()) != 0) {
    std::fprintf(stderr, "the served run failed; see %s\n", (dir / "served.log").c_str());
    return 1;
  }
  // The shaped run: namespaces S (server), A and B (nodes); veth S<->A and S<->B.
  const char* shaped_env = std::getenv("SHAPED");
  double mbit = 0, delay_ms = 0;
  std::string shaper;
  if (shaped_env && *shaped_env) {
    mbit = std::atof(shaped_env);
    if (const char* colon = std::strchr(shaped_env, ':')) delay_ms = std::atof(colon + 1);
    if (mbit <= 0) {
      std::fprintf(stderr, "SHAPED=%s: expected MBIT[:DELAY_MS] with MBIT > 0\n", shaped_env);
      return 2;
    }
    config("shaped");
    if (!run_shaped(dir, cli, t, tls, mbit, delay_ms)) return 1;
    std::ifstream(dir / "shape.txt") >> shaper;
    if (shaper != "netem") delay_ms = 0; // tbf shapes bandwidth only
  }
  const fs::path a = dir / "single" / "bench" / "run", b = dir / "served" / "bench" / "run";
  const double one = mean_round_seconds(a), two = mean_round_seconds(b);
  std::printf("%d clients, %d rounds of %d local epochs (mlp_2nn, pLoRA), seconds per round after the first:\n",
              clients, rounds, epochs);
  std::printf("  one process               : %8.3f s\n", one);
  std::printf("  server + 2 node processes : %8.3f s  (%.2fx)%s\n", two, two / one, tls ? " over mutual TLS" : "");
  std::printf("  same metrics              : %s\n", same_metrics(a, b) ? "yes" : "NO");
  const auto bytes = bytes_per_round(b);
  std::printf("bytes per round (server side)   on the wire   computed tensors\n");
  std::printf("  sent to the nodes         : %11.0f   %11.0f  (%.2fx)\n", bytes[0], bytes[2], bytes[0] / bytes[2]);
  std::printf("  received from the nodes   : %11.0f   %11.0f  (%.2fx)\n", bytes[1], bytes[3], bytes[1] / bytes[3]);
  if (!shaper.empty()) print_shaped(dir, a, two, bytes, shaper, mbit, delay_ms, clients);
  fs::remove_all(dir);
  return 0;
}
