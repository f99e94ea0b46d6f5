// Each enum of the experiment is named once, in its table: every value has a name, names are
// distinct, the TOML key reads each name back to its value and its help text lists them all.
#include "fl/config/experiment_config.hpp"
#include "fl/config/experiment_toml.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace fedvlm;

namespace {

/// Every value from 0 to the table's size names itself and parses back; names are unique.
template <class E> void expect_complete_table(const char* what) {
  const auto& table = enum_names(E{});
  ASSERT_FALSE(table.empty()) << what;
  std::set<std::string> names;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const E value = static_cast<E>(i);
    const std::string name = to_string(value);
    EXPECT_NE(name, "?") << what << " value " << i << " has no row";
    EXPECT_TRUE(names.insert(name).second) << what << ": '" << name << "' twice";
    EXPECT_EQ(parse_name(table, name, what), value) << what << " " << name;
  }
}

/// `key = "NAME"` in a file gives the value named so, for every name of the table.
template <class E, class Get> void expect_key_reads_every_name(const std::string& key, const std::string& extra, Get get) {
  for (const auto& row : enum_names(E{})) {
    const std::string section = key.substr(0, key.find('.'));
    const std::string text = "[" + section + "]\n" + key.substr(key.find('.') + 1) + " = \"" + row.name + "\"\n" + extra;
    const auto plan = parse_experiment(text, "t.toml");
    EXPECT_EQ(get(plan.runs.at(0)), row.value) << key << " = " << row.name;
  }
}

} // namespace

TEST(ConfigEnums, EveryValueHasOneNameThatParsesBack) {
  expect_complete_table<OptimizerKind>("optimizer");
  expect_complete_table<Weighting>("weighting");
  expect_complete_table<FederationMode>("mode");
  expect_complete_table<StalenessRule>("staleness rule");
  expect_complete_table<DelayDistribution>("distribution");
  expect_complete_table<PrivacyMode>("privacy mode");
  expect_complete_table<PartitionScheme>("partition scheme");
  expect_complete_table<StrategyKind>("strategy");
}

TEST(ConfigEnums, KeysReadEveryNameOfTheirTable) {
  expect_key_reads_every_name<OptimizerKind>("train.optimizer", "", [](const ExperimentConfig& c) { return c.train.optimizer; });
  expect_key_reads_every_name<Weighting>("federation.weighting", "", [](const ExperimentConfig& c) { return c.federation.weighting; });
  expect_key_reads_every_name<DelayDistribution>("faults.slow_distribution", "slow_fraction = 0.5\nslow_seconds = 1.0\n",
                                                 [](const ExperimentConfig& c) { return c.faults.slow_distribution; });
}

TEST(ConfigEnums, UnknownNameListsTheTableAndHelpShowsMeanings) {
  try {
    (void)parse_experiment("[train]\noptimizer = \"lamb\"\n", "t.toml");
    FAIL() << "an unknown optimizer must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("t.toml:2:1: key 'train.optimizer': unknown optimizer 'lamb' (expected sgd, adam or adamw)"),
              std::string::npos)
        << e.what();
  }
  const std::string keys = describe_experiment_keys();
  for (const auto& row : enum_names(Weighting{}))
    EXPECT_NE(keys.find(std::string(row.name) + " (" + row.meaning + ")"), std::string::npos) << row.name;
  for (const auto& row : enum_names(StrategyKind{})) EXPECT_NE(keys.find(row.name), std::string::npos) << row.name;
}
