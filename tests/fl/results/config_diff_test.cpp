// tests/fl/results/config_diff_test.cpp — comparing resolved configurations key by key.
#include "fl/results/config_diff.hpp"

#include <gtest/gtest.h>

namespace {

using namespace fedvlm;

TEST(ConfigDiff, NamesEveryChangedAddedAndRemovedKey) {
  const auto a = config_values("# run 'x'\nname = \"q\"\n[federation]\nrounds = 5\nclients = 4\n[lora]\nrank = 8\n", "a.toml");
  const auto b = config_values("name = \"q\"\n\n[federation]\nclients = 4\nrounds = 10\n[train]\nlr = 0.5\n", "b.toml");
  EXPECT_EQ(a.at("federation.rounds"), "5");
  const auto d = config_differences(a, b);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], "federation.rounds: 5 -> 10");
  EXPECT_EQ(d[1], "lora.rank: 8 -> (absent)");
  EXPECT_EQ(d[2], "train.lr: (absent) -> 0.5");
}

TEST(ConfigDiff, CommentsAndLayoutDoNotCount) {
  const auto a = config_values("# one\n[federation]\nrounds = 5\n", "a");
  const auto b = config_values("[federation]   # two\n  rounds=5\n", "b");
  EXPECT_TRUE(config_differences(a, b).empty());
  EXPECT_EQ(config_fingerprint(a), config_fingerprint(b));
  EXPECT_NE(config_fingerprint(a), config_fingerprint(config_values("[federation]\nrounds = 6\n", "c")));
}

TEST(ConfigDiff, BadTomlNamesTheFileAndLine) {
  try {
    (void)config_values("[federation]\nrounds = = 5\n", "run/config.toml");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("run/config.toml:2:", 0), 0u) << e.what();
  }
}

} // namespace
