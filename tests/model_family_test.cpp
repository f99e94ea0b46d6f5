// tests/model_family_test.cpp — the model architecture table: lookups, errors, and that the schema's help lists every arch.
#include "fl/experiment_toml.hpp"
#include "fl/model_family.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

using namespace fedvlm;

TEST(ModelFamily, EveryArchHasOneRow) {
  std::set<std::string> seen;
  for (const auto& row : model_archs()) {
    EXPECT_TRUE(seen.insert(row.arch).second) << row.arch << " twice";
    EXPECT_EQ(&model_arch(row.arch), &row);
    EXPECT_NE(std::string(row.summary), "");
  }
  EXPECT_EQ(model_arch("florence2_base").family, ModelFamily::florence2);
  EXPECT_EQ(model_arch("florence2_base").data, ModelData::vqa);
  EXPECT_EQ(model_arch("mobilenet_v3_small").data, ModelData::images);
  EXPECT_FALSE(model_arch("mobilenet_v3_small").bfloat16);
}

TEST(ModelFamily, UnknownArchListsTheValidOnes) {
  try {
    (void)model_arch("resnet50");
    FAIL() << "an unknown arch was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("resnet50"), std::string::npos) << what;
    for (const auto& row : model_archs()) EXPECT_NE(what.find(row.arch), std::string::npos) << row.arch;
  }
}

TEST(ModelFamily, KeysHelpAndSchemaErrorsNameEveryArch) {
  const std::string keys = describe_experiment_keys();
  for (const auto& row : model_archs()) EXPECT_NE(keys.find(row.arch), std::string::npos) << row.arch;
  try {
    (void)parse_experiment("[model]\narch = \"resnet50\"\n", "exp.toml");
    FAIL() << "an unknown arch was accepted";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exp.toml:2:"), std::string::npos) << what;
    EXPECT_NE(what.find("florence2_tiny"), std::string::npos) << what; // today's --keys omitted these
  }
}

} // namespace
