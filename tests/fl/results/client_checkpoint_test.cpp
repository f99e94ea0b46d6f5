// tests/fl/results/client_checkpoint_test.cpp — a served run's client states in a node's directory: when, where, round trip.
#include "fl/results/client_checkpoint.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace {

using namespace fedvlm;
using fedvlm::testing::TempDir;

TEST(ClientCheckpoint, DueEveryNRoundsAndAfterTheLast) {
  std::vector<int> due;
  for (int r = 0; r <= 7; ++r)
    if (checkpoint_due(r, 3, 7)) due.push_back(r);
  EXPECT_EQ(due, (std::vector<int>{3, 6, 7}));
  for (int r = 0; r <= 7; ++r) EXPECT_FALSE(checkpoint_due(r, 0, 7)) << r; // 0: never
  EXPECT_FALSE(checkpoint_due(0, 1, 7)); // round 0 is the evaluation before fine-tuning
  EXPECT_TRUE(checkpoint_due(5, 1, 7));
}

TEST(ClientCheckpoint, EachClientInItsOwnFolderExactRoundTripOnlyTheNewestKept) {
  TempDir tmp("fedvlm-client-ck");
  ClientCheckpoint a{3, {{"fc1.lora_A", at::randn({4, 8})}}, {{"fc1.lora_A.momentum", at::randn({4, 8})}}};
  EXPECT_EQ(client_state_dir(tmp.path(), "exp/run", 3), tmp.path() / "exp" / "run" / "client_000003");
  for (int round = 1; round <= 4; ++round) {
    a.adapters["fc1.lora_A"] = at::full({4, 8}, static_cast<float>(round)); // each round another state
    client_state_save(tmp.path(), "exp/run", 42, round, a, 2);
  }
  // The two newest rounds are kept; the one asked for is returned exactly.
  EXPECT_FALSE(client_state_load(tmp.path(), "exp/run", 3, 2).has_value());
  const auto third = client_state_load(tmp.path(), "exp/run", 3, 3);
  ASSERT_TRUE(third.has_value());
  EXPECT_TRUE(at::equal(third->adapters.at("fc1.lora_A"), at::full({4, 8}, 3.0f)));
  const auto fourth = client_state_load(tmp.path(), "exp/run", 3, 4);
  ASSERT_TRUE(fourth.has_value());
  EXPECT_EQ(fourth->id, 3);
  EXPECT_TRUE(at::equal(fourth->adapters.at("fc1.lora_A"), a.adapters.at("fc1.lora_A")));
  EXPECT_TRUE(at::equal(fourth->optimizer_state.at("fc1.lora_A.momentum"), a.optimizer_state.at("fc1.lora_A.momentum")));
  // Another client, another run: nothing there.
  EXPECT_FALSE(client_state_load(tmp.path(), "exp/run", 2, 4).has_value());
  EXPECT_FALSE(client_state_load(tmp.path(), "exp/other", 3, 4).has_value());
  // A file that holds another client's state is not taken for this one.
  std::filesystem::create_directories(client_state_dir(tmp.path(), "exp/run", 5) / "checkpoints");
  std::filesystem::copy_file(checkpoint_path(client_state_dir(tmp.path(), "exp/run", 3), 4),
                             checkpoint_path(client_state_dir(tmp.path(), "exp/run", 5), 4));
  EXPECT_THROW((void)client_state_load(tmp.path(), "exp/run", 5, 4), std::runtime_error);
}

} // namespace
