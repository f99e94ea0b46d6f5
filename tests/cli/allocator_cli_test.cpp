// tests/cli/allocator_cli_test.cpp — fedvlm-sim runs on jemalloc where libjemalloc2 is installed, and on glibc's malloc when told.
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#ifndef FEDVLM_CLI
#error "FEDVLM_CLI must name the fedvlm-sim binary"
#endif

namespace {

namespace fs = std::filesystem;
using fedvlm::testing::read_text_file;
using fedvlm::testing::TempDir;
using fedvlm::testing::write_text_file;

const fs::path kFashionMnist = "/usr/share/datasets/fashion-mnist";
const fs::path kJemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/// Runs a two-client mlp_2nn experiment with `env` before the command; returns its fedvlm.log.
std::string run_log(const fs::path& dir, const std::string& env) {
  const fs::path out = dir / "out";
  fs::create_directories(dir);
  write_text_file(dir / "exp.toml",
                  "name = \"alloc\"\noutput_dir = \"" + out.string() +
                      "\"\n[model]\narch = \"mlp_2nn\"\n[data]\ndataset = \"fashion_mnist\"\npath = \"" +
                      kFashionMnist.string() +
                      "\"\nmax_samples = 200\n[partition]\nscheme = \"iid\"\n[federation]\nclients = 2\nrounds = 1\n"
                      "[strategy]\nname = \"plora\"\n[lora]\ntargets = [\"fc1\", \"fc2\", \"fc3\"]\n");
  const std::string cmd = env + " '" + std::string(FEDVLM_CLI) + "' '" + (dir / "exp.toml").string() +
                          "' --quiet </dev/null >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return read_text_file(out / "alloc" / "run" / "fedvlm.log");
}

class AllocatorCli : public ::testing::Test {
protected:
  void SetUp() override {
    if (!fs::is_directory(kFashionMnist)) GTEST_SKIP() << kFashionMnist << " is absent";
  }
  TempDir dir_{"fedvlm-alloc"};
};

TEST_F(AllocatorCli, JemallocIsMappedWhereInstalledAndSystemKeepsGlibc) {
  if (!fs::exists(kJemalloc)) GTEST_SKIP() << "libjemalloc2 is not installed";
  // A clean environment: the test binary itself may run under a preload.
  const std::string log = run_log(dir_.path() / "a", "env -u LD_PRELOAD -u FEDVLM_ALLOCATOR -u FEDVLM_ALLOCATOR_PRELOADED");
  EXPECT_NE(log.find("allocator: jemalloc (" + kJemalloc.string() + ", preloaded by a re-exec)"), std::string::npos) << log;
  const std::string system = run_log(dir_.path() / "b", "env -u LD_PRELOAD -u FEDVLM_ALLOCATOR_PRELOADED FEDVLM_ALLOCATOR=system");
  EXPECT_NE(system.find("allocator: glibc malloc (FEDVLM_ALLOCATOR=system)"), std::string::npos) << system;
  // The same results either way.
  EXPECT_EQ(read_text_file(dir_.path() / "a/out/alloc/run/adapters/client_1.safetensors"),
            read_text_file(dir_.path() / "b/out/alloc/run/adapters/client_1.safetensors"));
}

} // namespace
