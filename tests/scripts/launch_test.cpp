// tests/scripts/launch_test.cpp — the launchers of scripts/launch/ start a real served run:
// hosts.sh over a stand-in for ssh, slurm.sbatch under a one-machine Slurm where one can start.
#include "tests/served_run_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

const fs::path& kFashion = testing::kFashionMnist;
using testing::free_port;
using testing::records_without_times;

std::string config(const fs::path& out) { return testing::small_served_config(out, "launch", 4, 300); }

int run_script(const fs::path& dir, const std::string& script) { return testing::run_script(dir, script, 240); }





/// The single-process run's metrics, for the launched run to match.
std::vector<nlohmann::json> single_process_records(const fs::path& dir) {
  const fs::path file = dir / "single.toml";
  testing::write_text_file(file, config(dir / "single"));
  if (std::system(("'" + std::string(FEDVLM_CLI) + "' '" + file.string() + "' --quiet > /dev/null 2>&1").c_str()) != 0)
    throw std::runtime_error("the single-process run failed");
  return records_without_times(dir / "single" / "launch" / "run");
}

// hosts.sh HOSTFILE: the server on the first host, a node per further line; "ssh" here runs the
// command on this machine (a host named three times: one server, two nodes over 127.0.0.1).
TEST(Launch, HostsShRunsAServedRunWithTheSingleProcessMetrics) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  testing::TempDir tmp("fedvlm-launch");
  const auto single = single_process_records(tmp.path());
  testing::write_text_file(tmp.path() / "x.toml", config(tmp.path() / "served"));
  testing::write_text_file(tmp.path() / "fake_ssh", "shift\nexec bash -c \"$1\"\n");
  testing::write_text_file(tmp.path() / "hosts", "# server first\nlocalhost\nlocalhost\n\nlocalhost  # a second node\n");
  const std::string log = (tmp.path() / "hosts.log").string();
  const std::string script = "cd '" + tmp.path().string() + "' && FEDVLM_PORT=" + std::to_string(free_port()) +
                             " FEDVLM_BIN='" + FEDVLM_CLI + "' FEDVLM_SSH='bash " + (tmp.path() / "fake_ssh").string() +
                             "' '" + FEDVLM_SOURCE_DIR + "/scripts/launch/hosts.sh' hosts x.toml --quiet > '" + log +
                             "' 2>&1";
  ASSERT_EQ(run_script(tmp.path(), script), 0) << testing::read_text_file(log);
  const std::string text = testing::read_text_file(log);
  EXPECT_NE(text.find("node 2 of 2 joined"), std::string::npos) << text;
  const std::string nodes = testing::read_text_file(tmp.path() / "fedvlm-node-1.log") +
                            testing::read_text_file(tmp.path() / "fedvlm-node-2.log");
  EXPECT_NE(nodes.find("hosting clients 0, 1"), std::string::npos) << nodes;
  EXPECT_NE(nodes.find("hosting clients 2, 3"), std::string::npos) << nodes;
  const auto served = records_without_times(tmp.path() / "served" / "launch" / "run");
  ASSERT_EQ(single.size(), 4u * 3u);
  ASSERT_EQ(served.size(), single.size());
  for (std::size_t i = 0; i < single.size(); ++i) EXPECT_EQ(served[i], single[i]) << i;
}

// slurm.sbatch under a Slurm started on this machine (munged, slurmctld, slurmd: Debian's
// slurm-wlm) with 3 tasks: the server on task 0, two nodes; the same metrics as one process.
TEST(Launch, SlurmSbatchRunsUnderALocalSlurm) {
  if (!fs::exists(kFashion / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  if (std::system("command -v slurmctld sbatch munged > /dev/null") != 0)
    GTEST_SKIP() << "slurm-wlm is not installed (apt-get install slurm-wlm)";
  if (::geteuid() != 0) GTEST_SKIP() << "a local slurmd must run as root to start jobs";
  testing::TempDir tmp("fedvlm-launch");
  const auto single = single_process_records(tmp.path());
  testing::write_text_file(tmp.path() / "x.toml", config(tmp.path() / "served"));
  const std::string dir = tmp.path().string(), src = FEDVLM_SOURCE_DIR;
  const std::string start = "LOCAL_SLURM_PORT=" + std::to_string(free_port()) + " '" + src +
                            "/scripts/launch/local_slurm.sh' start '" + dir + "/slurm' > '" + dir + "/start.log' 2>&1";
  if (std::system(start.c_str()) != 0) {
    const std::string why = testing::read_text_file(tmp.path() / "start.log");
    std::system(("'" + src + "/scripts/launch/local_slurm.sh' stop '" + dir + "/slurm'").c_str());
    GTEST_SKIP() << "a local Slurm cannot start here: " << why;
  }
  const std::string script = "cd '" + src + "' && SLURM_CONF='" + dir + "/slurm/slurm.conf' FEDVLM_PORT=" +
                             std::to_string(free_port()) + " FEDVLM_BIN='" + FEDVLM_CLI +
                             "' sbatch --ntasks=3 --wait --output='" + dir + "/job.out' scripts/launch/slurm.sbatch '" +
                             dir + "/x.toml' --quiet > '" + dir + "/sbatch.log' 2>&1";
  const int rc = run_script(tmp.path(), script);
  std::system(("'" + src + "/scripts/launch/local_slurm.sh' stop '" + dir + "/slurm'").c_str());
  const std::string job = testing::read_text_file(tmp.path() / "job.out");
  ASSERT_EQ(rc, 0) << testing::read_text_file(tmp.path() / "sbatch.log") << job;
  EXPECT_NE(job.find("slurm.sbatch: server on"), std::string::npos) << job;
  EXPECT_NE(job.find("node 2 of 2 joined"), std::string::npos) << job;
  const auto served = records_without_times(tmp.path() / "served" / "launch" / "run");
  ASSERT_EQ(served.size(), single.size()) << job;
  for (std::size_t i = 0; i < single.size(); ++i) EXPECT_EQ(served[i], single[i]) << i;
}

} // namespace
} // namespace fedvlm
