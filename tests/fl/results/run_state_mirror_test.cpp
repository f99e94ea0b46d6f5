// tests/fl/results/run_state_mirror_test.cpp — the driver's copy of a run's state from partial hand-overs, and the checkpoints written from it.
#include "fl/results/run_state_mirror.hpp"
#include "fl/results/incremental_checkpoint.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <vector>

namespace {

using namespace fedvlm;
using fedvlm::testing::read_text_file;
using fedvlm::testing::TempDir;

const std::string kA = "fc.lora_A", kB = "fc.lora_B", kMomentum = "fc.lora_A.momentum";

ClientCheckpoint fresh_client(int id, const at::Tensor& b) {
  ClientCheckpoint c;
  c.id = id;
  c.adapters[kA] = at::randn({4, 8});
  c.adapters[kB] = b;
  c.optimizer_state[kMomentum] = at::randn({4, 8});
  return c;
}

RunCheckpoint round_one(int clients) {
  RunCheckpoint ck;
  ck.run = "exp/run";
  ck.round = 1;
  ck.total_rounds = 8;
  ck.global[kB] = at::randn({6, 4});
  for (int id = 0; id < clients; ++id) ck.clients.push_back(fresh_client(id, ck.global[kB]));
  return ck;
}

/// A partial hand-over of round `round`: `trained` get new state holding `b`; the download is
/// `b` (undefined: the round downloaded nothing).
RoundStateChange partial(int round, std::size_t clients, const std::vector<int>& trained, const at::Tensor& b) {
  RoundStateChange change;
  change.whole = false;
  change.clients = clients;
  change.state.run = "exp/run";
  change.state.round = round;
  change.state.total_rounds = 8;
  if (b.defined()) {
    change.state.global[kB] = b;
    change.download[kB] = b;
  }
  for (int id : trained) change.state.clients.push_back(fresh_client(id, b.defined() ? b : at::randn({6, 4})));
  return change;
}

TEST(RunStateMirror, ClientsNotNamedTakeTheNewestDownloadWhenRead) {
  RunStateMirror m;
  EXPECT_TRUE(m.empty());
  EXPECT_THROW(m.apply(partial(2, 4, {1}, at::randn({6, 4}))), std::invalid_argument); // nothing whole yet
  const RunCheckpoint first = round_one(4);
  m.apply(RoundStateChange{first, true, {}, 0});
  EXPECT_EQ(m.last_changed(), (std::vector<std::size_t>{0, 1, 2, 3}));

  const at::Tensor b2 = at::randn({6, 4});
  RoundStateChange second = partial(2, 4, {1}, b2);
  const at::Tensor a1 = second.state.clients[0].adapters.at(kA);
  m.apply(second);
  EXPECT_EQ(m.round(), 2);
  EXPECT_EQ(m.last_changed(), (std::vector<std::size_t>{1}));
  EXPECT_TRUE(m.client(1).adapters.at(kA).is_same(a1));
  for (std::size_t i : {0u, 2u, 3u}) {
    EXPECT_TRUE(m.client(i).adapters.at(kB).is_same(b2)) << i;
    EXPECT_TRUE(m.client(i).adapters.at(kA).is_same(first.clients[i].adapters.at(kA))) << i; // its own A kept
    EXPECT_TRUE(m.client(i).optimizer_state.at(kMomentum).is_same(first.clients[i].optimizer_state.at(kMomentum)));
  }

  m.apply(partial(3, 4, {}, at::Tensor())); // a round without quorum: no download
  EXPECT_TRUE(m.client(3).adapters.at(kB).is_same(b2));

  const at::Tensor b4 = at::randn({6, 4});
  m.apply(partial(4, 4, {2}, b4));
  for (std::size_t i : {0u, 1u, 3u}) EXPECT_TRUE(m.client(i).adapters.at(kB).is_same(b4)) << i;
  EXPECT_TRUE(m.client(1).adapters.at(kA).is_same(a1)); // what it trained in round 2 stays
  EXPECT_EQ(m.changed_after(1), (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(m.changed_after(2), (std::vector<std::size_t>{2}));
  EXPECT_TRUE(m.changed_after(4).empty());
  for (const ClientCheckpoint& cs : m.whole().clients) EXPECT_TRUE(cs.adapters.at(kB).is_same(b4)) << cs.id;

  EXPECT_THROW(m.apply(partial(5, 5, {0}, b4)), std::invalid_argument); // another population
  RoundStateChange unordered = partial(5, 4, {2, 1}, b4);
  EXPECT_THROW(m.apply(unordered), std::invalid_argument);
}

/// Whole hand-overs every round (asynchronous mode, collect_every_state): a client that only took
/// the round's global tensors is not counted as changed, so the chained delta leaves it out.
TEST(RunStateMirror, AWholeHandOverCountsOnlyClientsThatChangedBeyondTheGlobal) {
  TempDir dir;
  CheckpointWriter writer(dir.path(), 100, 10);
  RunStateMirror m;
  RunCheckpoint whole = round_one(5);
  m.apply(RoundStateChange{whole, true, {}, 0});
  writer.save(m);
  RunCheckpoint next = whole;
  next.round = 2;
  next.global[kB] = at::randn({6, 4});
  for (auto& cs : next.clients) cs.adapters[kB] = next.global[kB].clone(); // every client takes B_g ...
  next.clients[3] = fresh_client(3, next.global[kB]);                     // ... and client 3 trained
  m.apply(RoundStateChange{next, true, {}, 0});
  EXPECT_EQ(m.changed_after(1), (std::vector<std::size_t>{3}));
  writer.save(m);
  const auto file = checkpoint_path(dir.path(), 2);
  const StoredCheckpoint stored = stored_checkpoint_decode(read_text_file(file), file.string());
  ASSERT_EQ(stored.state.clients.size(), 1u);
  EXPECT_EQ(stored.state.clients[0].id, 3);
  EXPECT_EQ(checkpoint_encode(checkpoint_load(file)), checkpoint_encode(next));
}

/// The checkpoints CheckpointWriter writes from the mirror's partial hand-overs: each delta holds
/// the clients that trained since the checkpoint before (a chain over the previous file, not the
/// last full one: the same size at every point of it), and every file loads as exactly the
/// round's whole state built here client by client.
TEST(RunStateMirror, ChainedCheckpointsHoldTheRoundsClientsAndLoadAsTheWholeState) {
  TempDir dir;
  const int clients = 12;
  CheckpointWriter writer(dir.path(), 100, 4); // full, delta, delta, delta, full, ...
  RunStateMirror m;
  RunCheckpoint whole = round_one(clients);
  m.apply(RoundStateChange{whole, true, {}, 0});
  writer.save(m);
  for (int round = 2; round <= 8; ++round) {
    const at::Tensor b = round == 5 ? at::Tensor() : at::randn({6, 4}); // round 5: no download
    const std::vector<int> trained = {round % clients, (3 * round) % clients};
    std::set<int> named(trained.begin(), trained.end());
    RoundStateChange change = partial(round, clients, std::vector<int>(named.begin(), named.end()), b);
    whole.round = round;
    if (b.defined()) whole.global[kB] = b;
    change.state.global = whole.global; // without a download the global stays
    for (auto& cs : whole.clients) {
      if (b.defined()) cs.adapters[kB] = b.clone(); // a copy: the checks compare bytes, not tensors
      for (const ClientCheckpoint& t : change.state.clients)
        if (t.id == cs.id) cs = ClientCheckpoint{t.id, {{kA, t.adapters.at(kA).clone()}, {kB, t.adapters.at(kB).clone()}},
                                                 {{kMomentum, t.optimizer_state.at(kMomentum).clone()}}, {}};
    }
    m.apply(change);
    writer.save(m);
    const auto file = checkpoint_path(dir.path(), round);
    EXPECT_EQ(checkpoint_encode(checkpoint_load(file)), checkpoint_encode(whole)) << "round " << round;
    const StoredCheckpoint stored = stored_checkpoint_decode(read_text_file(file), file.string());
    EXPECT_EQ(writer.last_was_full(), round == 5) << round;
    if (writer.last_was_full()) continue;
    EXPECT_EQ(stored.info.base_round, round - 1) << round;
    std::set<int> held;
    for (const ClientCheckpoint& cs : stored.state.clients) held.insert(cs.id);
    EXPECT_EQ(held, named) << "round " << round;
  }
}

} // namespace
