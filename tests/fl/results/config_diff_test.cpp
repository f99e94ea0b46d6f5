// tests/fl/results/config_diff_test.cpp — comparing resolved configurations key by key.
#include "fl/results/config_diff.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// --force extends runs; a change of what the saved state means (strategy, model, data,
// partition, LoRA shape, seed, clients) is singled out so that resume refuses it even so.
TEST(ConfigDiff, StateMeaningDifferencesAreTheStrategyModelDataAndPartitionKeys) {
  const std::string base =
      "seed = 1\n[model]\narch = \"mobilenet_v2\"\nweights = \"a.safetensors\"\n[data]\nmax_samples = 100\npath = \"/d\"\n"
      "[partition]\nscheme = \"iid\"\n[strategy]\nname = \"plora\"\n[lora]\nrank = 4\n"
      "[federation]\nrounds = 5\nclients = 4\n[train]\nlr = 0.1\n";
  const auto a = config_values(base, "a");
  auto changed = [&](const std::string& from, const std::string& to) {
    std::string text = base;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    return state_meaning_differences(a, config_values(text, "b"));
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(changed("name = \"plora\"", "name = \"flora\""), V{"strategy.name: 'plora' -> 'flora'"});
  EXPECT_EQ(changed("max_samples = 100", "max_samples = 200"), V{"data.max_samples: 100 -> 200"});
  EXPECT_EQ(changed("scheme = \"iid\"", "scheme = \"dirichlet\""), V{"partition.scheme: 'iid' -> 'dirichlet'"});
  EXPECT_EQ(changed("arch = \"mobilenet_v2\"", "arch = \"resnet18\""), V{"model.arch: 'mobilenet_v2' -> 'resnet18'"});
  EXPECT_EQ(changed("rank = 4", "rank = 8"), V{"lora.rank: 4 -> 8"});
  EXPECT_EQ(changed("seed = 1", "seed = 2"), V{"seed: 1 -> 2"});
  EXPECT_EQ(changed("clients = 4", "clients = 5"), V{"federation.clients: 4 -> 5"});
  // What --force is for: more rounds, another learning rate; and files that moved.
  EXPECT_TRUE(changed("rounds = 5", "rounds = 9").empty());
  EXPECT_TRUE(changed("lr = 0.1", "lr = 0.05").empty());
  EXPECT_TRUE(changed("path = \"/d\"", "path = \"/elsewhere\"").empty());
  EXPECT_TRUE(changed("weights = \"a.safetensors\"", "weights = \"/mnt/a.safetensors\"").empty());
}

} // namespace
