// tests/fl/results/run_checkpoint_test.cpp — checkpoint files: exact round trip, size from the shapes, damage detected, rotation.
#include "fl/results/incremental_checkpoint.hpp"
#include "fl/results/run_checkpoint.hpp"
#include "model/tensor_wire.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <gtest/gtest.h>

#include <fstream>

namespace {

using namespace fedvlm;
using fedvlm::testing::TempDir;

RunCheckpoint sample_checkpoint() {
  RunCheckpoint ck;
  ck.run = "exp/clients=4,strategy=plora";
  ck.config_hash = 0x1234abcd5678ef00ULL;
  ck.round = 3;
  ck.total_rounds = 5;
  ck.rounds_without_quorum = 1;
  ck.global["classifier.3.lora_B"] = at::randn({10, 4});
  for (int id = -1; id < 2; ++id) {
    ClientCheckpoint c;
    c.id = id;
    c.adapters["classifier.3.lora_A"] = at::randn({4, 32});
    c.adapters["classifier.3.lora_B"] = at::randn({10, 4}).to(at::kBFloat16);
    c.optimizer_state["classifier.3.lora_A.momentum"] = at::randn({4, 32});
    c.optimizer_state["step"] = at::tensor({int64_t{7}});
    ck.clients.push_back(c);
  }
  ck.crashes = {0, 2, 0, 0}; // stored without the trailing zeros (the run pads them back)
  return ck;
}

void expect_same(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_EQ(t.scalar_type(), b.at(name).scalar_type()) << name;
    EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  }
}

TEST(RunCheckpoint, RoundTripsEveryFieldBitForBit) {
  const RunCheckpoint ck = sample_checkpoint();
  const RunCheckpoint back = checkpoint_decode(checkpoint_encode(ck), "memory");
  EXPECT_EQ(back.run, ck.run);
  EXPECT_EQ(back.config_hash, ck.config_hash);
  EXPECT_EQ(back.round, 3);
  EXPECT_EQ(back.total_rounds, 5);
  EXPECT_EQ(back.rounds_without_quorum, 1);
  EXPECT_EQ(back.crashes, (std::vector<int>{0, 2}));
  expect_same(back.global, ck.global);
  ASSERT_EQ(back.clients.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.clients[i].id, ck.clients[i].id);
    expect_same(back.clients[i].adapters, ck.clients[i].adapters);
    expect_same(back.clients[i].optimizer_state, ck.clients[i].optimizer_state);
  }
}

// Streamed to the file in 1 MiB pieces, hashed on the way: the same bytes as encoding it whole.
TEST(RunCheckpoint, WrittenStraightToItsFileItHoldsTheEncodedBytes) {
  TempDir dir("ckpt_write");
  StoredCheckpoint stored;
  stored.state = sample_checkpoint();
  for (auto& c : stored.state.clients) c.adapters["big.weight"] = at::randn({700, 1000}); // 2.8 MB each
  stored.state.clients[1].residual["classifier.3.lora_B"] = at::randn({10, 4});
  const auto file = dir.path() / "round_000003.ckpt";
  const std::size_t written = checkpoint_write(file, stored);
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string expected = checkpoint_encode(stored);
  EXPECT_GT(expected.size(), std::size_t{8} << 20); // several pieces
  EXPECT_EQ(written, expected.size());
  EXPECT_TRUE(bytes == expected) << "file " << bytes.size() << " bytes, encoded " << expected.size();
  const StoredCheckpoint back = stored_checkpoint_decode(bytes, file.string());
  ASSERT_EQ(back.state.clients.size(), stored.state.clients.size());
  expect_same(back.state.clients[2].adapters, stored.state.clients[2].adapters);
  expect_same(back.state.clients[1].residual, stored.state.clients[1].residual);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename(), file.filename()) << "a temporary file was left";
  // Under a regular file there is no directory to write in: an error naming the file.
  try {
    (void)checkpoint_write(file / "round_000004.ckpt", stored);
    FAIL() << "wrote under a regular file";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("round_000003.ckpt"), std::string::npos) << e.what();
  }
}

TEST(RunCheckpoint, HoldsEveryTensorsBytesAsTheShapesSay) {
  const RunCheckpoint ck = sample_checkpoint();
  // From the shapes alone: global B 10x4 f32; per client A 4x32 f32, B 10x4 bf16, momentum
  // 4x32 f32, step 1 i64.
  const std::size_t tensor_bytes = 10 * 4 * 4 + 3 * (4 * 32 * 4 + 10 * 4 * 2 + 4 * 32 * 4 + 8);
  const std::string bytes = checkpoint_encode(ck);
  EXPECT_GE(bytes.size(), 28 + tensor_bytes);
  // Framing and names cost little beside the tensors: under 1 KiB here.
  EXPECT_LT(bytes.size(), 28 + tensor_bytes + 1024);
  // The raw float bytes of the global B appear verbatim (host byte order, no re-encoding).
  const at::Tensor b = ck.global.at("classifier.3.lora_B").contiguous();
  const std::string raw(static_cast<const char*>(b.data_ptr()), 10 * 4 * 4);
  EXPECT_NE(bytes.find(raw), std::string::npos);
}

TEST(RunCheckpoint, DamageIsReportedNotLoaded) {
  const std::string good = checkpoint_encode(sample_checkpoint());
  auto error_of = [](const std::string& bytes) {
    try {
      (void)checkpoint_decode(bytes, "ck.bin");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(error_of("hello").find("ck.bin: not a usable fedvlm-sim checkpoint: missing the FEDVLMCK header"), std::string::npos);
  EXPECT_NE(error_of(good.substr(0, good.size() - 9)).find("truncated"), std::string::npos);
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  EXPECT_NE(error_of(flipped).find("checksum mismatch"), std::string::npos);
  std::string version = good;
  version[8] = 9;
  EXPECT_NE(error_of(version).find("format version 9"), std::string::npos);
}

TEST(TensorWire, RefusesBytesThatDisagreeWithTheShape) {
  WireTensor w = tensor_to_wire(at::ones({2, 3}));
  EXPECT_EQ(w.bytes.size(), 24u);
  EXPECT_TRUE(at::equal(tensor_from_wire(w), at::ones({2, 3})));
  w.bytes.pop_back();
  try {
    (void)tensor_from_wire(w);
    FAIL() << "accepted 23 bytes for a 2x3 float32 tensor";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("needs 24 bytes, got 23"), std::string::npos) << e.what();
  }
  w = tensor_to_wire(at::Tensor());
  EXPECT_EQ(w.dtype, -1);
  EXPECT_FALSE(tensor_from_wire(w).defined());
  w.dtype = 42;
  EXPECT_THROW((void)tensor_from_wire(w), std::invalid_argument);
}

// A tensor's bytes go through caf's serializers in one piece; the encoding must stay that of
// its fields one by one (dtype, shape, then the bytes as a sequence of chars), which files and
// messages of earlier builds hold.
TEST(TensorWire, BytesInOnePieceAreEncodedAsTheFieldsOneByOne) {
  at::Tensor t = at::randn({3, 5}).to(at::kBFloat16);
  std::vector<char> fast, fields;
  {
    caf::binary_serializer sink{nullptr, fast};
    ASSERT_FALSE(sink(t));
  }
  WireTensor w = tensor_to_wire(t);
  {
    caf::binary_serializer sink{nullptr, fields};
    ASSERT_FALSE(sink(w.dtype, w.shape, w.bytes));
  }
  EXPECT_EQ(fast, fields);
  at::Tensor back;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr), fields.data(), fields.size()};
  ASSERT_FALSE(source(back));
  EXPECT_EQ(back.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(back, t));
  // A length the shape cannot hold is refused before anything is allocated for it.
  w.bytes.assign(3 * 5 * 8 + 1, 0);
  std::vector<char> damaged;
  {
    caf::binary_serializer sink{nullptr, damaged};
    ASSERT_FALSE(sink(w.dtype, w.shape, w.bytes));
  }
  caf::binary_deserializer bad{static_cast<caf::execution_unit*>(nullptr), damaged.data(), damaged.size()};
  EXPECT_TRUE(bad(back));
  EXPECT_TRUE(wire_bytes_fit_shape(120, {3, 5}));
  EXPECT_FALSE(wire_bytes_fit_shape(121, {3, 5}));
  EXPECT_FALSE(wire_bytes_fit_shape(0, {-1}));
}

TEST(RunCheckpoint, SaveKeepsTheNewestAndLoadsTheLatest) {
  TempDir dir;
  RunCheckpoint ck = sample_checkpoint();
  EXPECT_FALSE(latest_checkpoint(dir.path()).has_value());
  for (int round = 1; round <= 4; ++round) {
    ck.round = round;
    checkpoint_save(dir.path(), ck, 2);
  }
  EXPECT_FALSE(std::filesystem::exists(checkpoint_path(dir.path(), 1)));
  EXPECT_FALSE(std::filesystem::exists(checkpoint_path(dir.path(), 2)));
  EXPECT_TRUE(std::filesystem::exists(checkpoint_path(dir.path(), 3)));
  ASSERT_TRUE(latest_checkpoint(dir.path()).has_value());
  EXPECT_EQ(*latest_checkpoint(dir.path()), checkpoint_path(dir.path(), 4));
  EXPECT_EQ(checkpoint_load(*latest_checkpoint(dir.path())).round, 4);
  // No temporary files are left beside them.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "checkpoints")) {
    ++files;
    EXPECT_EQ(e.path().extension(), ".ckpt") << e.path();
  }
  EXPECT_EQ(files, 2);
}

TEST(ConfigHash, IsFnv1a64) {
  // Published FNV-1a 64 test vectors.
  EXPECT_EQ(config_hash(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(config_hash("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(config_hash("foobar"), 0x85944171f73967e8ULL);
}

} // namespace
