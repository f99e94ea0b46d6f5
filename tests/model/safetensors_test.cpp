// tests/model/safetensors_test.cpp — round trips, exact bytes, corrupt files and sharded indexes.
#include "model/safetensors.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
protected:
  fs::path path(const std::string& name) const { return dir_ / name; }

  static void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << p;
  }

  static std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::string u64_le(std::uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return s;
  }

  // A hand-made file: length prefix, header exactly as given, then `buffer`.
  fs::path raw(const std::string& name, const std::string& header, const std::string& buffer) {
    const fs::path p = path(name);
    write_bytes(p, u64_le(header.size()) + header + buffer);
    return p;
  }

  // Runs `fn`, requires a SafetensorsError whose message names the file and contains `hint`.
  static void expect_error(const std::function<void()>& fn, const fs::path& file,
                           const std::string& hint) {
    try {
      fn();
      ADD_FAILURE() << "expected SafetensorsError containing '" << hint << "'";
    } catch (const SafetensorsError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(file.string(), 0), 0u) << "message should start with path: " << msg;
      EXPECT_NE(msg.find(hint), std::string::npos) << "missing '" << hint << "' in: " << msg;
    }
  }

  void expect_load_error(const fs::path& file, const std::string& hint) {
    expect_error([&] { (void)safetensors_load(file); }, file, hint);
  }

  fedvlm::testing::TempDir tmp_{"fedvlm-st"};
  const fs::path dir_ = tmp_.path();
};

// Bitwise equality: catches NaN payloads and -0.0 that allclose/equal would blur.
void expect_identical(const at::Tensor& expected, const at::Tensor& actual, const std::string& n) {
  ASSERT_TRUE(actual.defined()) << n;
  EXPECT_EQ(actual.scalar_type(), expected.scalar_type()) << n;
  EXPECT_EQ(actual.sizes(), expected.sizes()) << n;
  EXPECT_TRUE(actual.is_contiguous()) << n;
  const at::Tensor e = expected.contiguous();
  ASSERT_EQ(actual.nbytes(), e.nbytes()) << n;
  if (e.nbytes() > 0) {
    EXPECT_EQ(std::memcmp(actual.data_ptr(), e.data_ptr(), e.nbytes()), 0) << n;
  }
}

TEST_F(Safetensors, RoundTripPreservesDtypesValuesAndMetadata) {
  at::manual_seed(7);
  TensorMap in;
  at::Tensor f32 = at::randn({3, 4});
  f32[0][0] = -0.0f;
  f32[0][1] = std::numeric_limits<float>::infinity();
  f32[0][2] = std::numeric_limits<float>::quiet_NaN();
  in["a.f32"] = f32;
  in["b.f16"] = at::randn({5}).to(at::kHalf);
  in["c.bf16"] = at::randn({2, 3, 2}).to(at::kBFloat16);
  in["d.i64"] = at::tensor(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), -1,
                                                      0, std::numeric_limits<std::int64_t>::max()});
  in["e.bool"] = at::tensor(std::vector<std::int64_t>{1, 0, 0, 1, 1}).to(at::kBool);
  in["f.scalar"] = at::scalar_tensor(3.5, at::kDouble);
  in["g.empty"] = at::empty({0, 4}, at::kFloat);
  in["h.transposed"] = at::arange(6, at::kInt).reshape({2, 3}).t(); // non-contiguous input
  in["i.u8"] = at::arange(250, 256, at::kInt).to(at::kByte);
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"round", "12"}, {"ü", "ß"}};

  const fs::path p = path("rt.safetensors");
  safetensors_save(p, in, meta);
  const SafetensorsFile out = safetensors_load(p);

  EXPECT_EQ(out.metadata, meta);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (const auto& [name, t] : in) {
    const auto it = out.tensors.find(name);
    ASSERT_NE(it, out.tensors.end()) << name;
    expect_identical(t, it->second, name);
  }
  EXPECT_TRUE(std::isnan(out.tensors.at("a.f32")[0][2].item<float>()));
  EXPECT_TRUE(std::signbit(out.tensors.at("a.f32")[0][0].item<float>()));
  EXPECT_EQ(out.tensors.at("h.transposed")[2][1].item<int>(), 5);
}

TEST_F(Safetensors, NoMetadataKeyWhenMetadataEmpty) {
  const fs::path p = path("nometa.safetensors");
  safetensors_save(p, {{"x", at::ones({1})}});
  EXPECT_EQ(read_bytes(p).find("__metadata__"), std::string::npos);
  EXPECT_TRUE(safetensors_load(p).metadata.empty());
}

TEST_F(Safetensors, HeaderLengthIsMultipleOf8ForAnyNameLength) {
  for (int len = 1; len <= 9; ++len) {
    const fs::path p = path("pad" + std::to_string(len) + ".safetensors");
    const std::string name(static_cast<std::size_t>(len), 'n');
    safetensors_save(p, {{name, at::ones({3}, at::kHalf)}});
    const std::string bytes = read_bytes(p);
    ASSERT_GE(bytes.size(), 8u);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    EXPECT_EQ(n % 8, 0u) << "name length " << len;
    EXPECT_EQ(bytes.size(), 8 + n + 6) << "name length " << len;
    const auto back = safetensors_load(p).tensors;
    expect_identical(at::ones({3}, at::kHalf), back.at(name), name);
  }
}

TEST_F(Safetensors, ByteExactSmallFile) {
  const fs::path p = path("exact.safetensors");
  safetensors_save(p, {{"a", at::tensor(std::vector<float>{1.0f, -2.0f})}});
  // 54 bytes of JSON + 2 spaces of padding = 56 = 0x38.
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 54u);
  std::string expected("\x38\0\0\0\0\0\0\0", 8);
  expected += header + "  ";
  expected += std::string("\x00\x00\x80\x3f", 4); // 1.0f
  expected += std::string("\x00\x00\x00\xc0", 4); // -2.0f
  EXPECT_EQ(read_bytes(p), expected);
}

TEST_F(Safetensors, ByteExactWidestDtypeFirstWithMetadata) {
  const fs::path p = path("exact2.safetensors");
  // "b" sorts first by name but F16 is narrower than I64, so "w" goes first in the buffer.
  safetensors_save(p,
                   {{"b", at::ones({1}, at::kHalf)},
                    {"w", at::tensor(std::vector<std::int64_t>{5})}},
                   {{"format", "pt"}});
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]}})";
  ASSERT_EQ(header.size(), 139u); // + 5 spaces = 144 = 0x90
  std::string expected("\x90\0\0\0\0\0\0\0", 8);
  expected += header + "     ";
  expected += std::string("\x05\0\0\0\0\0\0\0", 8); // int64 5
  expected += std::string("\x00\x3c", 2);           // half 1.0
  EXPECT_EQ(read_bytes(p), expected);
}

TEST_F(Safetensors, SaveOverwritesAtomicallyWithoutLeftovers) {
  const fs::path p = path("ow.safetensors");
  safetensors_save(p, {{"x", at::zeros({4})}});
  safetensors_save(p, {{"y", at::ones({2})}});
  const auto t = safetensors_load(p).tensors;
  EXPECT_EQ(t.count("x"), 0u);
  expect_identical(at::ones({2}), t.at("y"), "y");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u);
}

TEST_F(Safetensors, SaveRejectsUnsupportedDtypeAndReservedName) {
  const fs::path p = path("bad.safetensors");
  expect_error([&] { safetensors_save(p, {{"z", at::zeros({2}, at::kComplexFloat)}}); }, p,
               "tensor 'z'");
  expect_error([&] { safetensors_save(p, {{"__metadata__", at::zeros({2})}}); }, p, "reserved");
  expect_error([&] { safetensors_save(p, {{"u", at::Tensor()}}); }, p, "undefined");
  EXPECT_FALSE(fs::exists(p));
}

// --- corrupt files -------------------------------------------------------------------------

const std::string kOneF32 = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
const std::string kEightBytes(8, '\x01');

TEST_F(Safetensors, ValidHandMadeFileLoads) {
  // Guards the corrupt-file tests: the base they mutate must itself be accepted.
  const auto p = raw("ok.safetensors", kOneF32, std::string(8, '\0'));
  expect_identical(at::zeros({2}), safetensors_load(p).tensors.at("t"), "t");
}

TEST_F(Safetensors, ErrorTruncatedFile) {
  const fs::path p = path("trunc.safetensors");
  write_bytes(p, std::string("\x10\0\0", 3));
  expect_load_error(p, "truncated");
  write_bytes(p, "");
  expect_load_error(p, "truncated");
}

TEST_F(Safetensors, ErrorHeaderLengthLargerThanFile) {
  const fs::path p = path("long.safetensors");
  write_bytes(p, u64_le(1000) + kOneF32);
  expect_load_error(p, "header length 1000 larger than the file");
}

TEST_F(Safetensors, ErrorHeaderLengthOverLimit) {
  const fs::path p = path("huge.safetensors");
  write_bytes(p, u64_le(std::numeric_limits<std::uint64_t>::max()) + kOneF32);
  expect_load_error(p, "exceeds the limit");
}

TEST_F(Safetensors, ErrorInvalidJson) {
  expect_load_error(raw("json.safetensors", R"({"t":{"dtype":"F32",)", ""), "invalid JSON");
  expect_load_error(raw("arr.safetensors", "[1,2]", ""), "must be a JSON object");
}

TEST_F(Safetensors, ErrorInvalidUtf8OrHugeNumberInHeaderIsPlainText) {
  for (const auto& [name, header, hint] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"utf8.safetensors", "{\"t\xff\":{}}", "ill-formed UTF-8"},
           {"num.safetensors", R"({"t":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", "number overflow"}}) {
    const fs::path p = raw(name, header, "");
    expect_load_error(p, "invalid JSON header: ");
    try {
      (void)safetensors_load(p);
    } catch (const SafetensorsError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(hint), std::string::npos) << m;
      EXPECT_EQ(m.find("[json.exception"), std::string::npos) << m;
      EXPECT_TRUE(std::all_of(m.begin(), m.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) << m;
    }
  }
}

TEST_F(Safetensors, ErrorUnknownAndUnsupportedDtype) {
  expect_load_error(
      raw("unk.safetensors", R"({"t":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})",
          kEightBytes),
      "tensor 't': unknown dtype \"F33\"");
  expect_load_error(
      raw("u16.safetensors", R"({"t":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}})",
          kEightBytes),
      "tensor 't': unsupported dtype \"U16\"");
}

TEST_F(Safetensors, ErrorMissingOrMistypedFields) {
  expect_load_error(
      raw("noshape.safetensors", R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", kEightBytes),
      "tensor 't': expected array \"shape\"");
  expect_load_error(raw("negshape.safetensors",
                        R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kEightBytes),
                    "non-negative integers");
  expect_load_error(raw("offs.safetensors", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})",
                        kEightBytes),
                    "tensor 't': expected \"data_offsets\"");
  expect_load_error(raw("meta.safetensors",
                        R"({"__metadata__":{"k":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                        kEightBytes),
                    "value for key 'k' must be a string");
}

TEST_F(Safetensors, ErrorOffsetsOutOfBounds) {
  expect_load_error(
      raw("oob.safetensors", R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
          kEightBytes),
      "tensor 't': data_offsets [0, 16] out of bounds of the 8-byte data buffer");
}

TEST_F(Safetensors, ErrorOverlappingOffsets) {
  expect_load_error(raw("overlap.safetensors",
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        std::string(12, '\0')),
                    "tensor 'b': overlapping data_offsets");
}

TEST_F(Safetensors, ErrorGapBetweenTensors) {
  expect_load_error(raw("gap.safetensors",
                        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        std::string(12, '\0')),
                    "tensor 'b': gap in data buffer");
}

TEST_F(Safetensors, ErrorByteSizeMismatchWithShape) {
  expect_load_error(
      raw("size.safetensors", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
          kEightBytes),
      "tensor 't': byte size mismatch: shape [3] of F32 needs 12 bytes, data_offsets span 8");
  // A shape whose byte count overflows 64 bits must not wrap around to a small number.
  expect_load_error(
      raw("ovf.safetensors",
          R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
          kEightBytes),
      "byte size mismatch");
}

TEST_F(Safetensors, ErrorTrailingGarbageAfterBuffer) {
  expect_load_error(raw("trail.safetensors", kOneF32, std::string(8, '\0') + "junk"),
                    "trailing bytes after the data buffer");
}

TEST_F(Safetensors, ErrorBoolByteOutOfRange) {
  expect_load_error(
      raw("bool.safetensors", R"({"t":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
          std::string("\x01\x02", 2)),
      "tensor 't': BOOL element 1 has byte value 2");
}

// --- sharded checkpoints -------------------------------------------------------------------

TEST_F(Safetensors, ShardedIndexLoadsEveryTensor) {
  const at::Tensor w1 = at::randn({2, 3});
  const at::Tensor w2 = at::arange(4, at::kLong);
  const at::Tensor w3 = at::randn({5}).to(at::kBFloat16);
  safetensors_save(path("model-00001-of-00002.safetensors"), {{"l1.w", w1}, {"l1.b", w2}});
  safetensors_save(path("model-00002-of-00002.safetensors"), {{"l2.w", w3}});
  write_bytes(path("model.safetensors.index.json"),
              R"({"metadata":{"total_size":64},"weight_map":{)"
              R"("l1.w":"model-00001-of-00002.safetensors",)"
              R"("l1.b":"model-00001-of-00002.safetensors",)"
              R"("l2.w":"model-00002-of-00002.safetensors"}})");

  for (const fs::path& p : {path("model.safetensors.index.json"), dir_}) {
    const TensorMap t = safetensors_load_any(p);
    ASSERT_EQ(t.size(), 3u) << p;
    expect_identical(w1, t.at("l1.w"), "l1.w");
    expect_identical(w2, t.at("l1.b"), "l1.b");
    expect_identical(w3, t.at("l2.w"), "l2.w");
  }
}

TEST_F(Safetensors, ShardedIndexNamingMissingTensorFails) {
  safetensors_save(path("s1.safetensors"), {{"a", at::ones({1})}});
  const fs::path index = path("model.safetensors.index.json");
  write_bytes(index, R"({"weight_map":{"a":"s1.safetensors","ghost":"s1.safetensors"}})");
  expect_error([&] { (void)safetensors_load_any(index); }, index,
               "tensor 'ghost': weight_map names shard 's1.safetensors' but the tensor is missing");
}

TEST_F(Safetensors, ShardedIndexRejectsBadIndexes) {
  const fs::path index = path("x.safetensors.index.json");
  write_bytes(index, R"({"weight_map":{"a":"../outside.safetensors"}})");
  expect_error([&] { (void)safetensors_load_any(index); }, index, "without '..'");
  write_bytes(index, R"({"metadata":{}})");
  expect_error([&] { (void)safetensors_load_any(index); }, index, "\"weight_map\"");
  // A missing shard file is reported against the shard's own path.
  write_bytes(index, R"({"weight_map":{"a":"absent.safetensors"}})");
  expect_error([&] { (void)safetensors_load_any(index); }, path("absent.safetensors"),
               "cannot open");
}

TEST_F(Safetensors, LoadAnySingleFileAndDirectory) {
  const at::Tensor x = at::randn({3});
  safetensors_save(path("model.safetensors"), {{"x", x}});
  expect_identical(x, safetensors_load_any(path("model.safetensors")).at("x"), "x (file)");
  expect_identical(x, safetensors_load_any(dir_).at("x"), "x (dir)");
}

TEST_F(Safetensors, LoadAnyExplainsWhatItExpected) {
  const fs::path empty_dir = path("empty");
  fs::create_directories(empty_dir);
  expect_error([&] { (void)safetensors_load_any(empty_dir); }, empty_dir,
               "neither model.safetensors nor model.safetensors.index.json");
  const fs::path other = path("weights.pt");
  write_bytes(other, "xx");
  expect_error([&] { (void)safetensors_load_any(other); }, other, "expected a .safetensors file");
  // Pickled checkpoints get the one command that converts them.
  const fs::path pickled = path("pickled");
  fs::create_directories(pickled);
  write_bytes(pickled / "pytorch_model.bin", "xx");
  expect_error([&] { (void)safetensors_load_any(pickled); }, pickled,
               "scripts/convert_to_safetensors.py '" + pickled.string() + "'");
  expect_error([&] { (void)safetensors_load_any(pickled / "pytorch_model.bin"); }, pickled / "pytorch_model.bin",
               "scripts/convert_to_safetensors.py '" + pickled.string() + "'");
}

// scripts/convert_to_safetensors.py with Debian's torch as the writer of the pickle: every dtype
// a checkpoint uses arrives bit for bit, tied entries included.
TEST_F(Safetensors, ConvertScriptTurnsAPickleIntoWhatWeLoad) {
  const std::string python = "/usr/bin/python3";
  if (std::system((python + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "python3-torch is not installed (./test.sh installs it)";
  const std::string make =
      python + " -c \"import torch, sys; w = torch.arange(12.).view(3, 4) / 7; "
               "torch.save({'w': w, 'tied': w, 'h': (torch.arange(6.) / 3).half(), "
               "'b': (torch.arange(4.) * 0.37).bfloat16(), 'n': torch.arange(5)}, sys.argv[1])\" '" +
      (dir_ / "pytorch_model.bin").string() + "'";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const std::string convert = python + " " FEDVLM_SOURCE_DIR "/scripts/convert_to_safetensors.py '" +
                              dir_.string() + "' >/dev/null";
  ASSERT_EQ(std::system(convert.c_str()), 0) << convert;

  const TensorMap loaded = safetensors_load_any(dir_);
  const at::Tensor w = at::arange(12, at::kFloat).view({3, 4}) / 7;
  expect_identical(w, loaded.at("w"), "w");
  expect_identical(w, loaded.at("tied"), "tied");
  expect_identical(at::arange(6, at::kFloat).div(3).to(at::kHalf), loaded.at("h"), "h");
  expect_identical(at::arange(4, at::kFloat).mul(0.37).to(at::kBFloat16), loaded.at("b"), "b");
  expect_identical(at::arange(5, at::kLong), loaded.at("n"), "n");
  EXPECT_EQ(loaded.size(), 5u);
  // A second conversion refuses to overwrite what is there.
  EXPECT_NE(std::system(convert.c_str()), 0);
}

} // namespace
} // namespace fedvlm
