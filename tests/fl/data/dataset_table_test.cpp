// The dataset table: every name unique, image datasets with a loader, VQA ones without; the
// experiment schema reads it (names, the default path, the pool's size, VQA or images).
#include "fl/data/dataset_table.hpp"
#include "fl/config/experiment_toml.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace fedvlm;

TEST(DatasetTable, RowsAreUniqueAndImageDatasetsHaveALoader) {
  std::set<std::string> names;
  for (const auto& row : dataset_rows()) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(row.load == nullptr, row.vqa) << row.name;
    if (row.generated) EXPECT_EQ(row.train_samples, 0) << row.name;
    EXPECT_EQ(find_dataset(row.name), &row);
  }
  EXPECT_EQ(find_dataset("imagenet"), nullptr);
  // The training splits' published sizes.
  EXPECT_EQ(dataset_row("fashion_mnist").train_samples, 60000);
  EXPECT_EQ(dataset_row("mnist").train_samples, 60000);
  EXPECT_EQ(dataset_row("cifar10").train_samples, 50000);
}

TEST(DatasetTable, SchemaRefusesAnUnknownNameListingEveryRow) {
  try {
    (void)parse_experiment("[data]\ndataset = \"imagenet\"\n", "t.toml");
    FAIL() << "an unknown dataset must be refused";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("key 'data.dataset'"), std::string::npos) << msg;
    for (const auto& row : dataset_rows()) EXPECT_NE(msg.find(row.name), std::string::npos) << msg;
  }
}

TEST(DatasetTable, DefaultPathAndPoolSizeComeFromTheRow) {
  const auto mnist = parse_experiment("[data]\ndataset = \"mnist\"\n", "t.toml").runs.at(0);
  EXPECT_EQ(mnist.data.path, dataset_row("mnist").default_path);
  const auto set_path = parse_experiment("[data]\ndataset = \"mnist\"\npath = \"/tmp/m\"\n", "t.toml").runs.at(0);
  EXPECT_EQ(set_path.data.path, "/tmp/m");
  // MNIST's 60,000 training images bound the population like Fashion-MNIST's.
  try {
    (void)parse_experiment("[data]\ndataset = \"mnist\"\n[federation]\nclients = 60001\n", "t.toml");
    FAIL() << "more clients than MNIST's training samples must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the 60000 training samples of mnist"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(parse_experiment("[data]\ndataset = \"synthetic_vqa\"\n[model]\narch = \"florence2_tiny\"\n", "t.toml")
                  .runs.at(0).data.is_vqa());
}
