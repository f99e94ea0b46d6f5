// tests/fl/config/model_family_test.cpp — the model architecture table: lookups, errors, and that the schema's help lists every arch.
#include "fl/config/experiment_toml.hpp"
#include "fl/config/model_family.hpp"
#include "model/clip.hpp"
#include "model/florence2.hpp"

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

// The set-up builds each family from the row's columns, not from name checks: the variant is a
// size the family's builder knows, and only the tiny test models are self-contained.
TEST(ModelFamily, ColumnsNameWhatTheFamilysSetUpBuilds) {
  for (const auto& row : model_archs()) {
    const std::string arch = row.arch, variant = row.variant;
    switch (row.family) {
    case ModelFamily::florence2:
      EXPECT_EQ(arch, "florence2_" + variant); // what the set-up used to cut off the name
      EXPECT_NO_THROW((void)Florence2Config::named(variant)) << arch;
      break;
    case ModelFamily::mobilenet_v3:
      EXPECT_EQ(arch, "mobilenet_v3_" + variant);
      break;
    case ModelFamily::clip:
      EXPECT_EQ(variant, "") << arch;
      EXPECT_NO_THROW((void)clip_config_named(arch)) << arch;
      break;
    case ModelFamily::classic:
      EXPECT_EQ(variant, "") << arch;
      break;
    }
    EXPECT_EQ(row.self_contained, arch == "clip_tiny" || arch == "florence2_tiny") << arch;
  }
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
