// tests/fl/results/incremental_checkpoint_test.cpp — deltas over the last full checkpoint: exact state back, what is left out, rotation, version 1 files.
#include "fl/results/incremental_checkpoint.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <limits>

namespace {

using namespace fedvlm;
using fedvlm::testing::read_text_file;
using fedvlm::testing::TempDir;

/// `clients` clients with pLoRA-like state: a private A, the global B, momentum and a step.
RunCheckpoint population(int clients, int round) {
  RunCheckpoint ck;
  ck.run = "exp/run";
  ck.round = round;
  ck.total_rounds = 9;
  ck.global["fc.lora_B"] = at::randn({16, 4});
  for (int id = 0; id < clients; ++id) {
    ClientCheckpoint c;
    c.id = id;
    c.adapters["fc.lora_A"] = at::randn({4, 64});
    c.adapters["fc.lora_B"] = ck.global["fc.lora_B"].clone(); // what the download leaves: a copy of the global's
    c.optimizer_state["fc.lora_A.momentum"] = at::randn({4, 64});
    c.optimizer_state["step"] = at::tensor({int64_t{id}});
    ck.clients.push_back(c);
  }
  return ck;
}

/// The next round: a new global B every client downloads (as copies); `trained` clients get a
/// new A and momentum.
RunCheckpoint next_round(const RunCheckpoint& prev, const std::vector<int>& trained) {
  RunCheckpoint ck = prev;
  ck.round = prev.round + 1;
  ck.global["fc.lora_B"] = at::randn({16, 4});
  for (auto& c : ck.clients) {
    c.adapters["fc.lora_A"] = c.adapters["fc.lora_A"].clone(); // a snapshot copies: equal bytes, other tensors
    c.adapters["fc.lora_B"] = ck.global["fc.lora_B"].clone();
    c.optimizer_state["fc.lora_A.momentum"] = c.optimizer_state["fc.lora_A.momentum"].clone();
    if (std::count(trained.begin(), trained.end(), c.id)) {
      c.adapters["fc.lora_A"] = at::randn({4, 64});
      c.optimizer_state["fc.lora_A.momentum"] = at::randn({4, 64});
    }
  }
  return ck;
}

void expect_same_state(const RunCheckpoint& a, const RunCheckpoint& b) {
  EXPECT_EQ(a.round, b.round);
  EXPECT_EQ(a.run, b.run);
  EXPECT_TRUE(same_tensor_maps(a.global, b.global));
  ASSERT_EQ(a.clients.size(), b.clients.size());
  for (std::size_t i = 0; i < a.clients.size(); ++i) {
    EXPECT_EQ(a.clients[i].id, b.clients[i].id);
    EXPECT_TRUE(same_tensor_maps(a.clients[i].adapters, b.clients[i].adapters)) << "client " << a.clients[i].id;
    EXPECT_TRUE(same_tensor_maps(a.clients[i].optimizer_state, b.clients[i].optimizer_state)) << "client " << a.clients[i].id;
    EXPECT_TRUE(same_tensor_maps(a.clients[i].residual, b.clients[i].residual)) << "client " << a.clients[i].id;
  }
}

TEST(IncrementalCheckpoint, SameBytesIsByteEqualityNotValueEquality) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor a = at::tensor({1.0f, nan, 0.0f});
  EXPECT_TRUE(same_bytes(a, a.clone()));                          // NaN equals itself byte for byte
  EXPECT_FALSE(at::equal(a, a.clone()));                          // (values: NaN != NaN)
  EXPECT_FALSE(same_bytes(at::tensor({0.0f}), at::tensor({-0.0f}))); // values equal, bytes differ
  EXPECT_FALSE(same_bytes(at::zeros({2, 3}), at::zeros({3, 2})));
  EXPECT_FALSE(same_bytes(at::zeros({2}), at::zeros({2}, at::kDouble)));
  EXPECT_TRUE(same_bytes(at::arange(6).reshape({2, 3}).t(), at::arange(6).reshape({2, 3}).t().contiguous()));
}

TEST(IncrementalCheckpoint, ADeltaHoldsOnlyWhatChangedAndResolvesToTheWholeState) {
  const RunCheckpoint base = population(50, 1);
  const RunCheckpoint now = next_round(base, {3, 17});
  const StoredCheckpoint delta = checkpoint_delta(base, now);
  EXPECT_EQ(delta.info.base_round, 1);
  EXPECT_TRUE(delta.info.same_clients_as_base);
  EXPECT_TRUE(delta.info.client_ids.empty());
  EXPECT_TRUE(delta.info.left_out_take_global);
  // Every client's B is now the new global's: the 48 that only merged it are left out; 3 and 17
  // store A and momentum, their B named as the global's.
  ASSERT_EQ(delta.state.clients.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const ClientCheckpoint& c = delta.state.clients[i];
    const KeptTensors& kept = delta.info.kept[i];
    EXPECT_EQ(c.id, i == 0 ? 3 : 17);
    EXPECT_EQ(kept.adapters_from_global, std::vector<std::string>{"fc.lora_B"});
    EXPECT_EQ(kept.optimizer_from_base.size(), 1u) << c.id; // the step did not change
    EXPECT_EQ(c.adapters.size(), 1u) << c.id;
  }
  // The two clients' tensors, not the population's: under a tenth of the full file, and the
  // same size (within the bytes of the global) with ten times the population.
  const std::string full = checkpoint_encode(now), stored = checkpoint_encode(delta);
  EXPECT_LT(stored.size() * 10, full.size());
  const RunCheckpoint big = population(500, 1);
  const std::string stored_big = checkpoint_encode(checkpoint_delta(big, next_round(big, {3, 17})));
  EXPECT_LT(stored_big.size(), stored.size() + 64) << "a delta grew with the clients that did not train";
  const RunCheckpoint back = checkpoint_resolve(base, stored_checkpoint_decode(stored, "delta"), "delta");
  expect_same_state(back, now);
  // Negative control: resolved over another base, the clients that did not train get that base's A.
  const RunCheckpoint other = population(50, 1);
  const RunCheckpoint wrong = checkpoint_resolve(other, stored_checkpoint_decode(stored, "delta"), "delta");
  EXPECT_FALSE(same_tensor_maps(wrong.clients[0].adapters, now.clients[0].adapters));
  EXPECT_TRUE(same_tensor_maps(wrong.clients[3].adapters, now.clients[3].adapters));
}

TEST(IncrementalCheckpoint, UnchangedClientsAreLeftOutAndADeltaIsNotReadAlone) {
  RunCheckpoint base = population(6, 4);
  RunCheckpoint now = base;
  now.round = 5;
  now.clients[2].optimizer_state.erase("step"); // a tensor that is gone must stay gone
  const StoredCheckpoint delta = checkpoint_delta(base, now);
  ASSERT_EQ(delta.state.clients.size(), 1u);
  EXPECT_EQ(delta.state.clients[0].id, 2);
  const std::string bytes = checkpoint_encode(delta);
  expect_same_state(checkpoint_resolve(base, stored_checkpoint_decode(bytes, "d"), "d"), now);
  try {
    (void)checkpoint_decode(bytes, "round_000005.ckpt");
    FAIL() << "a delta was read as a whole checkpoint";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("a delta over the checkpoint of round 4"), std::string::npos) << e.what();
  }
  // Other clients than the base's: no delta.
  now.clients.pop_back();
  EXPECT_THROW((void)checkpoint_delta(base, now), std::invalid_argument);
}

TEST(IncrementalCheckpoint, WriterCompactsKeepsTheBaseItNeedsAndLoadsEveryRoundExactly) {
  TempDir dir;
  CheckpointWriter writer(dir.path(), 2, 3); // full, delta, delta, full, ...
  RunCheckpoint state = population(20, 1);
  std::vector<bool> full;
  std::vector<RunCheckpoint> saved;
  for (int round = 1; round <= 7; ++round) {
    if (round > 1) state = next_round(state, {round, round + 5});
    writer.save(state);
    saved.push_back(state);
    full.push_back(writer.last_was_full());
    // What is on disk now loads as exactly this state.
    const auto latest = latest_checkpoint(dir.path());
    ASSERT_TRUE(latest.has_value());
    expect_same_state(checkpoint_load(*latest), state);
  }
  EXPECT_EQ(full, (std::vector<bool>{true, false, false, true, false, false, true}));
  // The two newest (6, a delta over 5, and 7, full) and the chain 6 needs (5, a delta over 4, and
  // 4); 3 and older are gone.
  namespace fs = std::filesystem;
  for (int round = 1; round <= 7; ++round)
    EXPECT_EQ(fs::exists(checkpoint_path(dir.path(), round)), round >= 4) << "round " << round;
  expect_same_state(checkpoint_load(checkpoint_path(dir.path(), 6)), saved[5]); // its bases still there
  EXPECT_EQ(stored_checkpoint_decode(read_text_file(checkpoint_path(dir.path(), 6)), "6").info.base_round, 5);
  // A chain with a link missing names the missing file.
  fs::remove(checkpoint_path(dir.path(), 4));
  try {
    (void)checkpoint_load(checkpoint_path(dir.path(), 6));
    FAIL() << "loaded a delta whose chain lacks a file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("round_000004.ckpt is missing"), std::string::npos) << e.what();
  }
}

TEST(IncrementalCheckpoint, AMissingBaseIsNamed) {
  TempDir dir;
  CheckpointWriter writer(dir.path(), 5, 10);
  RunCheckpoint state = population(3, 1);
  writer.save(state);
  state = next_round(state, {0});
  writer.save(state);
  std::filesystem::remove(checkpoint_path(dir.path(), 1));
  try {
    (void)checkpoint_load(checkpoint_path(dir.path(), 2));
    FAIL() << "loaded a delta without its base";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("round_000001.ckpt is missing"), std::string::npos) << e.what();
  }
}

TEST(IncrementalCheckpoint, FullEveryOneWritesWholeCheckpointsAsBefore) {
  TempDir dir;
  CheckpointWriter writer(dir.path(), 2, 1);
  RunCheckpoint state = population(4, 1);
  writer.save(state);
  state = next_round(state, {1});
  writer.save(state);
  EXPECT_TRUE(writer.last_was_full());
  EXPECT_EQ(read_text_file(checkpoint_path(dir.path(), 2)), checkpoint_encode(state));
}

/// `current`'s payload less its last `cut` bytes, framed as format `version`: what an older
/// build wrote for the same state.
std::string older_file(const std::string& current, uint32_t version, std::size_t cut) {
  const std::size_t header = 8 + 4 + 8 + 8;
  const std::string payload = current.substr(header, current.size() - header - cut);
  std::string out = current.substr(0, 8);
  const uint64_t size = payload.size(), sum = config_hash(payload);
  out.append(reinterpret_cast<const char*>(&version), 4);
  out.append(reinterpret_cast<const char*>(&size), 8);
  out.append(reinterpret_cast<const char*>(&sum), 8);
  return out + payload;
}

TEST(IncrementalCheckpoint, VersionOneFilesStillLoad) {
  // A version 1 file: the same payload without the delta part (base_round 0 and two empty
  // lists: 4 + 1 + 1 bytes), the residuals (an empty list: 1 byte) nor the delta's rules (1
  // byte), framed with version 1.
  const RunCheckpoint ck = population(3, 2);
  const std::string v1 = older_file(checkpoint_encode(ck), 1, 8);
  expect_same_state(checkpoint_decode(v1, "v1"), ck);
  // The control: the same bytes labelled version 2 lack the delta part.
  std::string mislabelled = v1;
  mislabelled[8] = 2;
  EXPECT_THROW((void)checkpoint_decode(mislabelled, "v1"), std::runtime_error);
}

TEST(IncrementalCheckpoint, TopkResidualsAreStoredAndVersionTwoFilesLoadWithout) {
  RunCheckpoint ck = population(3, 2);
  ck.clients[0].residual["fc.lora_B"] = at::randn({16, 4});
  ck.clients[2].residual["fc.lora_B"] = at::randn({16, 4});
  const RunCheckpoint back = checkpoint_decode(checkpoint_encode(ck), "v3");
  expect_same_state(back, ck);
  EXPECT_TRUE(back.clients[1].residual.empty());
  EXPECT_FALSE(same_tensor_maps(back.clients[0].residual, back.clients[2].residual));

  // A version 2 file (no residual section: an empty list is 1 byte; nor the rules' byte) loads with none.
  const RunCheckpoint plain = population(3, 2);
  const RunCheckpoint v2 = checkpoint_decode(older_file(checkpoint_encode(plain), 2, 2), "v2");
  expect_same_state(v2, plain);
  for (const auto& c : v2.clients) EXPECT_TRUE(c.residual.empty());
  // A version 3 delta (every client listed, none left out on the global's account) still resolves.
  const RunCheckpoint plain_next = next_round(plain, {1});
  StoredCheckpoint v3_delta = checkpoint_delta(plain, plain_next);
  ASSERT_EQ(v3_delta.state.clients.size(), 1u);
  v3_delta.info.same_clients_as_base = v3_delta.info.left_out_take_global = false;
  v3_delta.info.client_ids = {0, 1, 2};
  for (int id : {0, 2}) { // as version 3 stored them: B named as the global's, A and momentum from the base
    ClientCheckpoint c;
    c.id = id;
    v3_delta.state.clients.insert(v3_delta.state.clients.begin() + (id == 0 ? 0 : 2), c);
    KeptTensors k;
    k.id = id;
    k.adapters_from_base = {"fc.lora_A"};
    k.adapters_from_global = {"fc.lora_B"};
    k.optimizer_from_base = {"fc.lora_A.momentum", "step"};
    v3_delta.info.kept.insert(v3_delta.info.kept.begin() + (id == 0 ? 0 : 2), k);
  }
  const std::string v3 = older_file(checkpoint_encode(v3_delta), 3, 1);
  expect_same_state(checkpoint_resolve(plain, stored_checkpoint_decode(v3, "v3"), "v3"), plain_next);

  // A delta stores a client whose residual alone changed, with it whole; the others are left out.
  RunCheckpoint later = ck;
  later.round = 3;
  later.clients[2].residual["fc.lora_B"] = at::randn({16, 4});
  const StoredCheckpoint delta = checkpoint_delta(ck, later);
  ASSERT_EQ(delta.state.clients.size(), 1u);
  EXPECT_EQ(delta.state.clients[0].id, 2);
  const StoredCheckpoint stored = stored_checkpoint_decode(checkpoint_encode(delta), "delta");
  expect_same_state(checkpoint_resolve(ck, stored, "delta"), later);
}

} // namespace
