// tests/actors/message_serialization_test.cpp — every engine message survives CAF's binary serialization byte-exactly.
#include "actors/message_types.hpp"

#include <ATen/ATen.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/uniform_type_info_map.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

template <class T>
T round_trip(T value, std::size_t* wire_bytes = nullptr) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (auto err = sink(value)) ADD_FAILURE() << "serialize: " << caf::to_string(err);
  if (wire_bytes) *wire_bytes = buf.size();
  T out;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr), buf.data(), buf.size()};
  if (auto err = source(out)) ADD_FAILURE() << "deserialize: " << caf::to_string(err);
  return out;
}

bool same(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.scalar_type() != t.scalar_type() || !at::equal(it->second, t)) return false;
  }
  return true;
}

TensorMap adapters(int seed) {
  at::manual_seed(seed);
  return {{"head.lora_A", at::randn({4, 16})}, {"head.lora_B", at::randn({10, 4})},
          {"head.lora_delta", at::randn({10, 16}).to(at::kBFloat16)}};
}

TEST(MessageSerialization, UpdatesAndDownloadsCarryTensorsBitExactly) {
  ClientUpdate up;
  up.client = 3;
  up.round = 7;
  up.samples = 512;
  up.tensors = adapters(1);
  up.bytes = 4 * (4 * 16 + 10 * 4) + 2 * 10 * 16;
  up.train_loss = 0.6931471805599453;
  up.delay_seconds = 1.5;
  up.measured = adapters(2);
  std::size_t wire = 0;
  const ClientUpdate back = round_trip(up, &wire);
  EXPECT_EQ(back.client, 3);
  EXPECT_EQ(back.round, 7);
  EXPECT_EQ(back.samples, 512);
  EXPECT_EQ(back.bytes, up.bytes);
  EXPECT_EQ(back.train_loss, up.train_loss);
  EXPECT_EQ(back.delay_seconds, 1.5);
  EXPECT_TRUE(same(back.tensors, up.tensors));
  EXPECT_TRUE(same(back.measured, up.measured));
  // The payload is at least the tensors' raw bytes, computed from their shapes: 2 maps of
  // float32 A (4 x 16) and B (10 x 4) and a bfloat16 delta (10 x 16).
  EXPECT_GE(wire, 2u * (4 * (4 * 16 + 10 * 4) + 2 * 10 * 16));

  GlobalDown down;
  down.round = 2;
  down.tensors = adapters(3);
  down.bytes = 99;
  const GlobalDown d = round_trip(down);
  EXPECT_EQ(d.round, 2);
  EXPECT_EQ(d.bytes, 99);
  EXPECT_TRUE(same(d.tensors, down.tensors));
}

TEST(MessageSerialization, JobsResultsAndEvaluationsKeepEveryField) {
  TrainJobMsg job;
  job.client = 1;
  job.round = 4;
  job.job.adapters = adapters(4);
  job.job.optimizer_state = {{"head.lora_A.momentum", at::randn({4, 16})}};
  job.job.trainable = {"head.lora_A", "head.lora_B"};
  job.job.prox_reference = adapters(5);
  job.job.indices = {5, 3, 99, 1 << 20};
  job.job.seed = 0xFFFFFFFFFFFFFFFFULL;
  job.job.client = 1;
  job.job.round = 4;
  TrainGroupMsg group;
  group.jobs = {job, job};
  group.jobs[1].client = 2;
  const TrainGroupMsg g = round_trip(group);
  ASSERT_EQ(g.jobs.size(), 2u);
  EXPECT_EQ(g.jobs[1].client, 2);
  const LocalTrainJob& j = g.jobs[0].job;
  EXPECT_TRUE(same(j.adapters, job.job.adapters));
  EXPECT_TRUE(same(j.optimizer_state, job.job.optimizer_state));
  EXPECT_TRUE(same(j.prox_reference, job.job.prox_reference));
  EXPECT_EQ(j.trainable, job.job.trainable);
  EXPECT_EQ(j.indices, job.job.indices);
  EXPECT_EQ(j.seed, job.job.seed);
  EXPECT_EQ(j.round, 4);

  TrainGroupDoneMsg done;
  LocalTrainResult r;
  r.adapters = adapters(6);
  r.mean_loss = 1.25;
  r.samples = 40;
  r.steps = 5;
  done.results = {r};
  const TrainGroupDoneMsg dd = round_trip(done);
  ASSERT_EQ(dd.results.size(), 1u);
  EXPECT_TRUE(same(dd.results[0].adapters, r.adapters));
  EXPECT_EQ(dd.results[0].mean_loss, 1.25);
  EXPECT_EQ(dd.results[0].steps, 5);

  ClientEval ev;
  ev.client = 5;
  ev.round = 3;
  ev.result.metrics = {0.75, 0.5, 0.25, 0.125, 40};
  ev.result.loss = 0.33;
  ev.result.task_metrics = {{"exact_match", 0.5}};
  ev.test_samples = 40;
  ev.train_samples = 160;
  const ClientEval e = round_trip(ev);
  EXPECT_EQ(e.result.metrics.accuracy, 0.75);
  EXPECT_EQ(e.result.metrics.macro_f1, 0.125);
  EXPECT_EQ(e.result.metrics.count, 40);
  EXPECT_EQ(e.result.task_metrics, ev.result.task_metrics);
  EXPECT_EQ(e.train_samples, 160);

  AdapterSnapshot snap;
  snap.client = 2;
  snap.adapters = adapters(7);
  EXPECT_TRUE(same(round_trip(snap).adapters, snap.adapters));
  RunDone rd;
  rd.rounds_completed = 3;
  rd.note = "privacy budget spent";
  rd.adapters = {adapters(8), {}};
  const RunDone rdb = round_trip(rd);
  EXPECT_EQ(rdb.note, rd.note);
  ASSERT_EQ(rdb.adapters.size(), 2u);
  EXPECT_TRUE(same(rdb.adapters[0], rd.adapters[0]));
  EXPECT_TRUE(rdb.adapters[1].empty());
}

// A node's report crosses the network with what a resume and a roll-back read from it: the
// clients it has no saved state of, and whether it keeps its clients' states (--state).
TEST(MessageSerialization, NodeReadySaysWhetherTheNodeKeepsState) {
  NodeReady r;
  r.node = 1;
  r.setup_fingerprint = {1, 2, 3};
  r.without_state = {3, 4};
  r.keeps_state = true;
  const NodeReady back = round_trip(r);
  EXPECT_EQ(back.node, 1);
  EXPECT_EQ(back.setup_fingerprint, r.setup_fingerprint);
  EXPECT_EQ(back.without_state, r.without_state);
  EXPECT_TRUE(back.keeps_state);
  EXPECT_FALSE(round_trip(NodeReady{}).keeps_state);
}

// The registry CAF's middleman needs: a remote peer's message is rebuilt from its type name.
// Every type of the one list (the list registration walks) is named, rebuilt from its name,
// and survives the binary round trip a peer's message takes; the count is the 15 types the
// typed interfaces (client_actor, registry_actor) and the scheduler's jobs use.
TEST(MessageSerialization, EveryMessageTypeIsNamedForTheMiddleman) {
  caf::actor_system_config cfg;
  register_message_types(cfg);
  caf::actor_system system{cfg};
  std::vector<std::string> names;
  for_each_message_type([&](auto tag, const char* name) {
    using T = typename decltype(tag)::type;
    names.emplace_back(name);
    auto made = system.types().make_value(name);
    ASSERT_NE(made, nullptr) << name;
    EXPECT_TRUE(made->type() == caf::make_rtti_pair<T>()) << name << " is rebuilt as another type";
    (void)round_trip(T{});
  });
  EXPECT_EQ(names.size(), 17u);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end()) << "a name is listed twice";
  EXPECT_EQ(system.types().make_value("fedvlm::NoSuchMessage"), nullptr);
  // A message outside the list is not known to the middleman: the check above can fail.
  caf::actor_system_config bare;
  caf::actor_system bare_system{bare};
  EXPECT_EQ(bare_system.types().make_value("fedvlm::GlobalDown"), nullptr);
}

} // namespace
} // namespace fedvlm
