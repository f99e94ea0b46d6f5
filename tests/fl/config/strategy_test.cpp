// tests/fl/config/strategy_test.cpp — the strategy table: what each strategy trains, shares and initialises.
#include "fl/config/strategy.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

const fedvlm::StrategySpec& spec(fedvlm::StrategyKind k) { return fedvlm::strategy_spec(k); }

// The key set of shared_part on a map with one A, one B and one non-adapter tensor.
std::set<std::string> shared_keys(fedvlm::StrategyKind k) {
  const fedvlm::TensorMap adapters = {{"x.lora_A", at::ones({2, 3})},
                                      {"x.lora_B", at::ones({3, 2})},
                                      {"x.weight", at::ones({3, 3})}};
  std::set<std::string> keys;
  for (const auto& [name, t] : fedvlm::shared_part(spec(k), adapters)) keys.insert(name);
  return keys;
}

TEST(Strategy, PloraTrainsBothSharesOnlyB) {
  const auto& s = spec(fedvlm::StrategyKind::plora);
  EXPECT_TRUE(s.train_a);
  EXPECT_TRUE(s.train_b);
  EXPECT_FALSE(s.share_a);
  EXPECT_TRUE(s.share_b);
  EXPECT_FALSE(s.centralized);
  EXPECT_TRUE(fedvlm::is_trainable(s, "x.lora_A"));
  EXPECT_TRUE(fedvlm::is_trainable(s, "x.lora_B"));
  EXPECT_FALSE(fedvlm::is_shared(s, "x.lora_A"));
  EXPECT_TRUE(fedvlm::is_shared(s, "x.lora_B"));
  EXPECT_EQ(shared_keys(fedvlm::StrategyKind::plora), (std::set<std::string>{"x.lora_B"}));
}

TEST(Strategy, FloraSharesBoth) {
  const auto& s = spec(fedvlm::StrategyKind::flora);
  EXPECT_TRUE(s.train_a && s.train_b);
  EXPECT_TRUE(s.share_a && s.share_b);
  // A is averaged, so clients must start from the same A for the average to mean anything.
  EXPECT_TRUE(s.common_a_init);
  EXPECT_FALSE(s.centralized);
  EXPECT_EQ(shared_keys(fedvlm::StrategyKind::flora), (std::set<std::string>{"x.lora_A", "x.lora_B"}));
}

TEST(Strategy, FfaLoraTrainsAndSharesOnlyBWithCommonA) {
  const auto& s = spec(fedvlm::StrategyKind::ffa_lora);
  EXPECT_FALSE(s.train_a);
  EXPECT_TRUE(s.train_b);
  EXPECT_FALSE(s.share_a);
  EXPECT_TRUE(s.share_b);
  EXPECT_TRUE(s.common_a_init);
  EXPECT_FALSE(fedvlm::is_trainable(s, "classifier.3.lora_A"));
  EXPECT_TRUE(fedvlm::is_trainable(s, "classifier.3.lora_B"));
  EXPECT_EQ(shared_keys(fedvlm::StrategyKind::ffa_lora), (std::set<std::string>{"x.lora_B"}));
}

TEST(Strategy, FedsaLoraSharesOnlyA) {
  const auto& s = spec(fedvlm::StrategyKind::fedsa_lora);
  EXPECT_TRUE(s.train_a && s.train_b);
  EXPECT_TRUE(s.share_a);
  EXPECT_FALSE(s.share_b);
  EXPECT_TRUE(s.common_a_init);
  EXPECT_EQ(shared_keys(fedvlm::StrategyKind::fedsa_lora), (std::set<std::string>{"x.lora_A"}));
}

TEST(Strategy, LocalSharesNothing) {
  const auto& s = spec(fedvlm::StrategyKind::local);
  EXPECT_TRUE(s.train_a && s.train_b);
  EXPECT_FALSE(s.share_a);
  EXPECT_FALSE(s.share_b);
  EXPECT_FALSE(s.centralized);
  EXPECT_TRUE(shared_keys(fedvlm::StrategyKind::local).empty());
}

TEST(Strategy, CentralizedFlags) {
  const auto& s = spec(fedvlm::StrategyKind::centralized);
  EXPECT_TRUE(s.centralized);
  EXPECT_TRUE(s.train_a && s.train_b);
  // Only centralized is centralized.
  for (const auto& name : fedvlm::strategy_names()) {
    const auto k = fedvlm::strategy_from_string(name);
    EXPECT_EQ(spec(k).centralized, k == fedvlm::StrategyKind::centralized) << name;
  }
}

TEST(Strategy, NonAdapterTensorsAreNeitherTrainedNorShared) {
  for (const auto& name : fedvlm::strategy_names()) {
    const auto& s = spec(fedvlm::strategy_from_string(name));
    for (const std::string t : {"lora_A", "x.lora_A.momentum", "x.lora_a", "x.lora_delta"}) {
      EXPECT_FALSE(fedvlm::is_trainable(s, t)) << name << " " << t;
      EXPECT_FALSE(fedvlm::is_shared(s, t)) << name << " " << t;
    }
    // A client's copy of a base tensor: only full fine-tuning trains and shares it.
    const bool full = s.kind == fedvlm::StrategyKind::full;
    EXPECT_EQ(fedvlm::is_trainable(s, "x.weight"), full) << name;
    EXPECT_EQ(fedvlm::is_shared(s, "classifier.3.bias"), full) << name;
    EXPECT_EQ(fedvlm::is_trainable(s, "x.lora_A"), s.train_a) << name;
  }
  EXPECT_EQ(fedvlm::tensor_kind("classifier.3.weight"), fedvlm::TensorKind::base);
  EXPECT_EQ(fedvlm::tensor_kind("x.lora_delta"), fedvlm::TensorKind::lora_delta);
  EXPECT_EQ(fedvlm::tensor_kind("x.lora_C"), fedvlm::TensorKind::unknown);
  EXPECT_EQ(fedvlm::tensor_kind("probe.weight"), fedvlm::TensorKind::head);
  // Only the linear probe trains and shares its classifier.
  for (const auto& name : fedvlm::strategy_names()) {
    const auto& s = spec(fedvlm::strategy_from_string(name));
    EXPECT_EQ(fedvlm::is_shared(s, "probe.bias"), s.kind == fedvlm::StrategyKind::linear_probe) << name;
  }
}

TEST(Strategy, NamesRoundTrip) {
  const std::vector<std::string> expected = {"plora", "flora",      "ffa_lora", "fedsa_lora", "local",   "centralized",
                                             "rolora", "fedex_lora", "stacking", "flexlora",   "hetlora", "full", "linear_probe"};
  const auto names = fedvlm::strategy_names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            std::set<std::string>(expected.begin(), expected.end()));
  EXPECT_EQ(names.size(), expected.size()); // no duplicates
  std::set<fedvlm::StrategyKind> kinds;
  for (const auto& n : names) {
    const fedvlm::StrategyKind k = fedvlm::strategy_from_string(n);
    EXPECT_EQ(fedvlm::to_string(k), n);
    EXPECT_EQ(spec(k).kind, k);
    EXPECT_EQ(std::string(spec(k).name), n);
    EXPECT_NE(std::string(spec(k).summary), "");
    kinds.insert(k);
  }
  EXPECT_EQ(kinds.size(), expected.size()); // every name maps to its own kind
}

TEST(Strategy, UnknownNameErrorListsValidNames) {
  try {
    (void)fedvlm::strategy_from_string("fedavg");
    FAIL() << "unknown strategy must throw";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fedavg"), std::string::npos) << msg;
    for (const auto& n : fedvlm::strategy_names()) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
  // Names are exact: no case folding or whitespace trimming.
  EXPECT_THROW((void)fedvlm::strategy_from_string("PLoRA"), std::invalid_argument);
  EXPECT_THROW((void)fedvlm::strategy_from_string(" plora"), std::invalid_argument);
  EXPECT_THROW((void)fedvlm::strategy_from_string(""), std::invalid_argument);
}

TEST(Strategy, SharedPartKeepsTensorsAndFiltersMultipleLayers) {
  const fedvlm::TensorMap adapters = {{"a.lora_A", at::full({1}, 1.0f)}, {"a.lora_B", at::full({1}, 2.0f)},
                                      {"b.lora_A", at::full({1}, 3.0f)}, {"b.lora_B", at::full({1}, 4.0f)}};
  const auto part = fedvlm::shared_part(spec(fedvlm::StrategyKind::plora), adapters);
  ASSERT_EQ(part.size(), 2u);
  EXPECT_EQ(part.at("a.lora_B").item<float>(), 2.0f);
  EXPECT_EQ(part.at("b.lora_B").item<float>(), 4.0f);
  EXPECT_EQ(part.count("a.lora_A"), 0u);
}

} // namespace

TEST(Strategy, RoLoRAAlternatesBThenAAndOthersDoNotAlternate) {
  const auto& base = fedvlm::strategy_spec(fedvlm::StrategyKind::rolora);
  EXPECT_TRUE(base.alternating);
  EXPECT_TRUE(base.common_a_init);
  for (int round : {1, 3, 5}) {
    const auto s = fedvlm::spec_in_round(base, round);
    EXPECT_TRUE(s.train_b && s.share_b) << round;
    EXPECT_FALSE(s.train_a || s.share_a) << round;
  }
  for (int round : {2, 4}) {
    const auto s = fedvlm::spec_in_round(base, round);
    EXPECT_TRUE(s.train_a && s.share_a) << round;
    EXPECT_FALSE(s.train_b || s.share_b) << round;
  }
  for (const auto& name : fedvlm::strategy_names()) {
    const auto k = fedvlm::strategy_from_string(name);
    if (k == fedvlm::StrategyKind::rolora) continue;
    const auto& s = fedvlm::strategy_spec(k);
    const auto r = fedvlm::spec_in_round(s, 2);
    EXPECT_FALSE(s.alternating) << name;
    EXPECT_EQ(std::tie(r.train_a, r.train_b, r.share_a, r.share_b), std::tie(s.train_a, s.train_b, s.share_a, s.share_b))
        << name;
  }
}

