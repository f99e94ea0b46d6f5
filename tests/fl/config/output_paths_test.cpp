// tests/fl/config/output_paths_test.cpp — output_dir / pretrain.cache_dir checked up front, errors naming the key.
#include "fl/config/experiment_toml.hpp"
#include "fl/config/output_paths.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

std::string error_of(const ExperimentConfig& c) {
  try {
    check_output_paths(c);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

class OutputPaths : public ::testing::Test {
protected:
  testing::TempDir tmp_{"fedvlm-outpaths"};
  const fs::path dir_ = tmp_.path();
};

TEST_F(OutputPaths, CreatesMissingDirectoriesAndTheCacheRelativeToOutputDir) {
  ExperimentConfig c;
  c.output_dir = dir_ / "a" / "b";
  c.pretrain.enabled = true;
  EXPECT_EQ(resolved_cache_dir(c), dir_ / "a" / "b" / ".cache");
  check_output_paths(c);
  EXPECT_TRUE(fs::is_directory(dir_ / "a" / "b" / ".cache"));
  // The probe file is gone again.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ / "a" / "b" / ".cache")) ++entries;
  EXPECT_EQ(entries, 0);
  c.pretrain.cache_dir = dir_ / "elsewhere";
  EXPECT_EQ(resolved_cache_dir(c), dir_ / "elsewhere");
}

TEST_F(OutputPaths, FileWhereADirectoryIsExpectedNamesKeyAndPath) {
  const fs::path file = dir_ / "results";
  std::ofstream(file) << "not a directory\n";
  ExperimentConfig c;
  c.output_dir = file;
  EXPECT_EQ(error_of(c), "output_dir: '" + file.string() +
                             "' exists but is not a directory; expected a directory for the results");
}

// Tests run as root, for whom permission bits deny nothing: chmod 0500 would not fail. A path
// below a regular file fails for everyone (ENOTDIR), and so does writing into /sys.
TEST_F(OutputPaths, PathBelowARegularFileGivesTheOsReason) {
  const fs::path file = dir_ / "plain";
  std::ofstream(file) << "x\n";
  ExperimentConfig c;
  c.output_dir = file / "sub";
  EXPECT_EQ(error_of(c), "output_dir: '" + (file / "sub").string() + "': cannot create the directory: Not a directory");

  // Only checked when pretraining is on, and after output_dir.
  c.output_dir = dir_ / "out";
  c.pretrain.cache_dir = file / "cache";
  EXPECT_EQ(error_of(c), "<no error>");
  c.pretrain.enabled = true;
  EXPECT_EQ(error_of(c), "pretrain.cache_dir: '" + (file / "cache").string() +
                             "': cannot create the directory: Not a directory");
}

TEST_F(OutputPaths, DirectoryNobodyMayWriteInNamesKeyPathAndReason) {
  const fs::path sys = "/sys";
  const std::string probe = (sys / ".fedvlm-probe").string();
  if (!fs::is_directory(sys) || ::access(sys.c_str(), W_OK) == 0 && std::ofstream(probe).good()) {
    std::error_code ec;
    fs::remove(probe, ec);
    GTEST_SKIP() << "/sys is absent or writable here";
  }
  ExperimentConfig c;
  c.output_dir = sys;
  const std::string m = error_of(c);
  EXPECT_EQ(m.rfind("output_dir: '/sys': cannot create files in the directory: ", 0), 0u) << m;
  EXPECT_GT(m.size(), std::string("output_dir: '/sys': cannot create files in the directory: ").size()) << m;
}

} // namespace
} // namespace fedvlm
