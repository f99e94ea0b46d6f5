// tests/fl/config/experiment_toml_fedavg_test.cpp — the keys the FedAvg paper's table needs: mnist, rounds to target, full batch, [[rows]].
#include "fl/config/experiment_toml.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

ExperimentPlan parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return parse_experiment(text, "exp.toml", overrides);
}

ExperimentConfig parse_one(const std::string& text) {
  ExperimentPlan plan = parse(text);
  EXPECT_EQ(plan.runs.size(), 1u);
  return plan.runs.empty() ? ExperimentConfig{} : plan.runs.front();
}

void expect_config_error(const std::string& text, std::initializer_list<std::string> parts) {
  try {
    (void)parse(text);
    ADD_FAILURE() << "expected ConfigError for:\n" << text;
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

// The resolved file of a run reads back into the same settings this file is about.
void expect_round_trip(const ExperimentConfig& c) {
  const ExperimentConfig back = parse_one(c.resolved_toml);
  EXPECT_EQ(back.data.dataset, c.data.dataset);
  EXPECT_EQ(back.data.path, c.data.path);
  EXPECT_EQ(back.evaluation.target_accuracy, c.evaluation.target_accuracy);
  EXPECT_EQ(back.evaluation.stop_at_target, c.evaluation.stop_at_target);
  EXPECT_EQ(back.train.batch_size, c.train.batch_size);
  EXPECT_EQ(back.train.lr, c.train.lr);
  EXPECT_EQ(back.model.arch, c.model.arch);
  EXPECT_EQ(back.partition.scheme, c.partition.scheme);
}

TEST(ExperimentTomlFedAvg, MnistDatasetHasItsOwnDefaultDirectory) {
  const ExperimentConfig c = parse_one("[data]\ndataset = \"mnist\"\n");
  EXPECT_EQ(c.data.dataset, "mnist");
  EXPECT_EQ(c.data.path, fs::path("/usr/share/datasets/mnist"));
  expect_round_trip(c);
  EXPECT_EQ(parse_one("[data]\ndataset = \"mnist\"\npath = \"/data/m\"\n").data.path, fs::path("/data/m"));
  // Fashion-MNIST keeps its Debian directory.
  EXPECT_EQ(parse_one("[data]\ndataset = \"fashion_mnist\"\n").data.path, fs::path("/usr/share/datasets/fashion-mnist"));
  expect_config_error("[data]\ndataset = \"emnist\"\n", {"exp.toml:2:", "'data.dataset'", "mnist", "emnist"});
  // The official test split is there for the global test.
  EXPECT_TRUE(parse_one("[data]\ndataset = \"mnist\"\ntest_fraction = 0\n[evaluation]\nglobal_test = true\n").evaluation.global_test);
  EXPECT_EQ(parse_one("[model]\narch = \"cnn_fedavg\"\n").model.arch, "cnn_fedavg");
}

TEST(ExperimentTomlFedAvg, TargetAccuracyIsOptionalAndChecked) {
  const ExperimentConfig off = parse_one("");
  EXPECT_EQ(off.evaluation.target_accuracy, 0.0);
  EXPECT_FALSE(off.evaluation.stop_at_target);
  const ExperimentConfig c = parse_one("[evaluation]\ntarget_accuracy = 0.99\nstop_at_target = true\n");
  EXPECT_EQ(c.evaluation.target_accuracy, 0.99);
  EXPECT_TRUE(c.evaluation.stop_at_target);
  expect_round_trip(c);
  EXPECT_EQ(parse_one("[evaluation]\ntarget_accuracy = 1\n").evaluation.target_accuracy, 1.0);
  expect_config_error("[evaluation]\ntarget_accuracy = 1.5\n", {"exp.toml:2:", "'evaluation.target_accuracy'", "[0, 1] (0 = off)"});
  expect_config_error("[evaluation]\ntarget_accuracy = -0.5\n", {"exp.toml:2:", "'evaluation.target_accuracy'"});
  expect_config_error("[evaluation]\ntarget_accuracy = \"99%\"\n", {"'evaluation.target_accuracy'", "a number"});
  expect_config_error("[evaluation]\nstop_at_target = true\n", {"exp.toml:2:", "'evaluation.stop_at_target'", "target_accuracy"});
}

TEST(ExperimentTomlFedAvg, BatchSizeZeroMeansTheWholeLocalSet) {
  const ExperimentConfig c = parse_one("[train]\nbatch_size = 0\n");
  EXPECT_EQ(c.train.batch_size, 0);
  expect_round_trip(c);
  expect_config_error("[train]\nbatch_size = -1\n", {"exp.toml:2:", "'train.batch_size'", "0 for the client's whole local set"});
}

TEST(ExperimentTomlFedAvg, RowsSetSeveralKeysAtOnceAndNameTheirRuns) {
  const std::string text = R"(
[train]
lr = 0.01
local_epochs = 1
[[rows]]
label = "a"
train = { lr = 0.5, local_epochs = 3 }
[[rows]]
label = "b"
train.batch_size = 0
federation = { clients = 6 }
)";
  const ExperimentPlan plan = parse(text);
  ASSERT_EQ(plan.runs.size(), 2u);
  const ExperimentConfig& a = plan.runs[0];
  const ExperimentConfig& b = plan.runs[1];
  EXPECT_EQ(a.run_label, "a");
  EXPECT_EQ(b.run_label, "b");
  EXPECT_EQ(a.sweep.at("row"), "a");
  EXPECT_EQ(a.train.lr, 0.5);
  EXPECT_EQ(a.train.local_epochs, 3);
  EXPECT_EQ(a.train.batch_size, 32); // the default: row b's key does not leak into row a
  EXPECT_EQ(a.federation.clients, 4);
  EXPECT_EQ(b.train.lr, 0.01); // the file's value where the row says nothing
  EXPECT_EQ(b.train.batch_size, 0);
  EXPECT_EQ(b.federation.clients, 6);
  expect_round_trip(a);
  expect_round_trip(b);

  // A grid axis runs within each row; --set applies over the rows.
  const ExperimentPlan grid = parse(text + "[scheduler]\nconcurrency = [1, 2]\n", {"train.lr=0.2"});
  ASSERT_EQ(grid.runs.size(), 4u);
  EXPECT_EQ(grid.runs[0].run_label, "a,concurrency=1");
  EXPECT_EQ(grid.runs[3].run_label, "b,concurrency=2");
  for (const auto& c : grid.runs) EXPECT_EQ(c.train.lr, 0.2) << c.run_label;
}

TEST(ExperimentTomlFedAvg, BadRowsAreNamedWithTheirPosition) {
  expect_config_error("rows = 3\n", {"exp.toml:1:", "'rows'", "[[rows]]"});
  expect_config_error("[[rows]]\ntrain.lr = 0.1\n", {"exp.toml:1:", "'rows'", "label"});
  expect_config_error("[[rows]]\nlabel = \"a b\"\n", {"exp.toml:2:", "'rows.label'", "directory name"});
  expect_config_error("[[rows]]\nlabel = \"x\"\n[[rows]]\nlabel = \"x\"\n", {"exp.toml:4:", "row 'x' appears twice"});
  // Keys inside a row are checked like the file's own, with the row's line.
  expect_config_error("[[rows]]\nlabel = \"x\"\ntrain = { lr = -1.0 }\n", {"exp.toml:3:", "'train.lr'"});
  expect_config_error("[[rows]]\nlabel = \"x\"\ntrain = { rate = 1.0 }\n", {"'train.rate'"});
}

TEST(ExperimentTomlFedAvg, TheShippedTableIsThePapersSetting) {
  const ExperimentPlan plan = load_experiment(fs::path(FEDVLM_SOURCE_DIR) / "experiments" / "fedavg_mnist_table.toml");
  ASSERT_EQ(plan.runs.size(), 10u);
  int fedsgd = 0, noniid = 0;
  for (const auto& c : plan.runs) {
    SCOPED_TRACE(c.run_label);
    const std::string& l = c.run_label;
    const bool cnn = l.rfind("cnn_", 0) == 0;
    EXPECT_EQ(c.model.arch, cnn ? "cnn_fedavg" : "mlp_2nn");
    EXPECT_EQ(c.data.dataset, "mnist");
    EXPECT_EQ(c.federation.clients, 100);
    EXPECT_EQ(c.federation.clients_per_round, 10);
    EXPECT_EQ(c.data.test_fraction, 0.0);
    EXPECT_TRUE(c.evaluation.global_test);
    EXPECT_EQ(c.evaluation.target_accuracy, cnn ? 0.99 : 0.97);
    EXPECT_EQ(c.train.momentum, 0.0);
    EXPECT_EQ(c.train.weight_decay, 0.0);
    EXPECT_EQ(c.strategy, StrategyKind::full);
    if (l.find("noniid") != std::string::npos) {
      ++noniid;
      EXPECT_EQ(c.partition.scheme, PartitionScheme::shards);
      EXPECT_EQ(c.partition.shards, 200);
      EXPECT_EQ(c.partition.shards_per_client, 2);
    } else {
      EXPECT_EQ(c.partition.scheme, PartitionScheme::iid);
    }
    if (l.find("fedsgd") != std::string::npos) {
      ++fedsgd;
      EXPECT_EQ(c.train.batch_size, 0);
      EXPECT_EQ(c.train.local_epochs, 1);
    } else {
      EXPECT_EQ(c.train.batch_size, 10);
      const int e = l.find("_e20_") != std::string::npos ? 20 : l.find("_e5_") != std::string::npos ? 5 : 1;
      EXPECT_EQ(c.train.local_epochs, e);
    }
    expect_round_trip(c);
  }
  EXPECT_EQ(fedsgd, 2);
  EXPECT_EQ(noniid, 5);
}

} // namespace
} // namespace fedvlm
