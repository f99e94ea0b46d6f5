// tests/actors/cluster_netns_test.cpp — a server and two nodes in their own Linux network
// namespaces, joined by veth pairs and shaped links, over mutual TLS on a non-loopback address.
#include "tests/served_run_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

const fs::path& kFashion = testing::kFashionMnist;
using testing::records_without_times;

std::string config(const fs::path& out) { return testing::small_served_config(out, "netns", 4, 300); }



/// Bash that makes the CA and the server's and nodes' certificates in the current directory.
std::string certificates() {
  std::string s = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=ca "
                  "-keyout ca.key -out ca.pem 2>/dev/null; ";
  for (const char* who : {"server", "node"})
    s += std::string("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=") + who +
         " -keyout " + who + ".key -out " + who + ".csr 2>/dev/null; openssl x509 -req -in " + who +
         ".csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 30 -out " + who + ".pem 2>/dev/null; ";
  return s;
}

// Three namespaces: the server's (10.77.1.1 towards node A, 10.77.2.1 towards node B) and one
// per node, each joined to the server's by a veth pair. Both ends of each pair are shaped:
// `tc netem` 25 ms one-way delay at 100 Mbit/s where the kernel has netem; otherwise (this
// machine's kernel is built without CONFIG_NET_SCH_NETEM) a token bucket at 100 Mbit/s (`tbf`)
// and no delay, said in the test's output. The server listens on 10.77.1.1 only, with mutual TLS;
// node B reaches it through the server namespace's other interface. The metrics are those of
// one process, and the veth counters show the traffic crossed them.
TEST(ClusterNetns, ServerAndNodesInTheirOwnNamespacesOverShapedLinks) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  if (std::system("command -v openssl ip tc > /dev/null") != 0) GTEST_SKIP() << "openssl, ip or tc (iproute2) missing";
  const std::string probe = "fvp" + std::to_string(::getpid());
  if (std::system(("ip netns add " + probe + " > /dev/null 2>&1 && ip netns del " + probe).c_str()) != 0)
    GTEST_SKIP() << "creating a network namespace is not permitted here (needs root / CAP_SYS_ADMIN)";
  testing::TempDir tmp("fedvlm-netns");
  const std::string cli = FEDVLM_CLI, dir = tmp.path().string();
  testing::write_text_file(tmp.path() / "x.toml", config(tmp.path() / "single"));
  ASSERT_EQ(std::system(("'" + cli + "' '" + dir + "/x.toml' --quiet > /dev/null 2>&1").c_str()), 0);
  testing::write_text_file(tmp.path() / "x.toml", config(tmp.path() / "served"));
  const std::string p = "fv" + std::to_string(::getpid() % 100000);
  const std::string tls = " --cert " + dir + "/WHO.pem --key " + dir + "/WHO.key --ca " + dir + "/ca.pem";
  auto tls_of = [&](const std::string& who) {
    std::string t = tls;
    for (std::size_t at; (at = t.find("WHO")) != std::string::npos;) t.replace(at, 3, who);
    return t;
  };
  const std::string script =
      "cd '" + dir + "'; " + certificates() + "S=" + p + "s A=" + p + "a B=" + p + "b; "
      "cleanup() { ip netns del $S; ip netns del $A; ip netns del $B; } 2>/dev/null; trap cleanup EXIT; "
      "set -e; for n in $S $A $B; do ip netns add $n; ip -n $n link set lo up; done; "
      "ip link add " + p + "sa netns $S type veth peer name " + p + "as netns $A; "
      "ip link add " + p + "sb netns $S type veth peer name " + p + "bs netns $B; "
      "ip -n $S addr add 10.77.1.1/24 dev " + p + "sa; ip -n $A addr add 10.77.1.2/24 dev " + p + "as; "
      "ip -n $S addr add 10.77.2.1/24 dev " + p + "sb; ip -n $B addr add 10.77.2.2/24 dev " + p + "bs; "
      "for d in $S:" + p + "sa $A:" + p + "as $S:" + p + "sb $B:" + p + "bs; do ip -n ${d%%:*} link set ${d#*:} up; done; "
      "ip -n $A route add default via 10.77.1.1; ip -n $B route add default via 10.77.2.1; "
      "shape=netem; for d in $S:" + p + "sa $A:" + p + "as $S:" + p + "sb $B:" + p + "bs; do "
      "  ip netns exec ${d%%:*} tc qdisc add dev ${d#*:} root netem delay 25ms rate 100mbit 2>/dev/null || "
      "  { shape=tbf; ip netns exec ${d%%:*} tc qdisc add dev ${d#*:} root tbf rate 100mbit burst 64kb latency 100ms; }; "
      "done; echo $shape > shape.txt; set +e; "
      "timeout 120 ip netns exec $S '" + cli + "' serve x.toml --listen 10.77.1.1:4242 --nodes 2 --wait 60 --quiet" +
      tls_of("server") + " > serve.log 2>&1 & server=$!; "
      "timeout 120 ip netns exec $A '" + cli + "' node --connect 10.77.1.1:4242" + tls_of("node") + " > a.log 2>&1 & "
      "timeout 120 ip netns exec $B '" + cli + "' node --connect 10.77.1.1:4242" + tls_of("node") + " > b.log 2>&1 & "
      "wait $server; rc=$?; wait; "
      "ip netns exec $S cat /sys/class/net/" + p + "sa/statistics/tx_bytes /sys/class/net/" + p +
      "sb/statistics/tx_bytes > veth_tx.txt; exit $rc";
  testing::write_text_file(tmp.path() / "script.sh", script);
  const int status = std::system(("timeout 200 bash '" + dir + "/script.sh' > '" + dir + "/script.log' 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << testing::read_text_file(tmp.path() / "script.log") << testing::read_text_file(tmp.path() / "serve.log")
      << testing::read_text_file(tmp.path() / "a.log");
  std::string shape = testing::read_text_file(tmp.path() / "shape.txt");
  if (!shape.empty() && shape.back() == '\n') shape.pop_back();
  std::printf("links shaped with %s%s\n", shape.c_str(),
              shape == "tbf" ? " (100 Mbit/s, no delay: this kernel has no netem)" : " (25 ms one way, 100 Mbit/s)");
  const std::string served = testing::read_text_file(tmp.path() / "serve.log");
  EXPECT_NE(served.find("serving on 10.77.1.1:4242 (mutual TLS"), std::string::npos) << served;
  const auto single = records_without_times(tmp.path() / "single" / "netns" / "run");
  const auto over_veth = records_without_times(tmp.path() / "served" / "netns" / "run");
  ASSERT_EQ(single.size(), 4u * 3u);
  ASSERT_EQ(over_veth.size(), single.size()) << served;
  for (std::size_t i = 0; i < single.size(); ++i) EXPECT_EQ(over_veth[i], single[i]) << i;
  // Each node's link carried at least its clients' downloads: 2 clients x 2 rounds x the B
  // matrices (fc1 200x4 + fc3 10x4 floats = 3 360 B), here from the server's side.
  std::ifstream tx(tmp.path() / "veth_tx.txt");
  long long to_a = 0, to_b = 0;
  tx >> to_a >> to_b;
  EXPECT_GT(to_a, 2 * 2 * 3360);
  EXPECT_GT(to_b, 2 * 2 * 3360);
}

} // namespace
} // namespace fedvlm
