// tests/fl/aggregation/compression_test.cpp — compressed updates on known inputs: round-trip error bounds, encoded sizes, top-k's error feedback.
#include "fl/aggregation/compression.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace fedvlm;

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

TEST(Compression, Float16KeepsElevenBitsAndHalvesTheBytes) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({16, 8});
  const EncodedTensor e = compress_tensor(x, CompressionKind::float16, 0);
  EXPECT_EQ(e.bytes, 2 * 16 * 8);
  EXPECT_EQ(e.decoded.scalar_type(), at::kFloat);
  // Round to nearest with an 11-bit significand: relative error <= 2^-11 (no subnormals here).
  EXPECT_TRUE(((e.decoded - x).abs() <= x.abs() * std::ldexp(1.0, -11)).all().item<bool>());
  EXPECT_GT(max_abs(e.decoded - x), 0); // it does round
}

TEST(Compression, Int8PerTensorAndPerRowWithinHalfAStep) {
  const at::Tensor x = at::tensor({1.0f, -2.0f, 0.5f, 100.0f, -200.0f, 3.0f}).reshape({2, 3});
  const EncodedTensor t = compress_tensor(x, CompressionKind::int8, 0);
  EXPECT_EQ(t.bytes, 6 + 4);
  const double step = 200.0 / 127; // one scale: the largest magnitude over 127
  EXPECT_LE(max_abs(t.decoded - x), step / 2 + 1e-5);
  // Entry 0 (1.0) rounds to 1 step = 1.5748..., as computed by hand.
  EXPECT_NEAR(t.decoded[0][0].item<double>(), step, 1e-5);
  const EncodedTensor r = compress_tensor(x, CompressionKind::int8_row, 0);
  EXPECT_EQ(r.bytes, 6 + 4 * 2);
  EXPECT_LE(max_abs(r.decoded[0] - x[0]), 2.0 / 127 / 2 + 1e-6); // row 0's own scale 2/127
  EXPECT_LE(max_abs(r.decoded[1] - x[1]), 200.0 / 127 / 2 + 1e-5);
  EXPECT_LT(max_abs(r.decoded[0] - x[0]), max_abs(t.decoded[0] - x[0])); // per row is finer for the small row
  // A zero tensor stays zero.
  EXPECT_EQ(max_abs(compress_tensor(at::zeros({3}), CompressionKind::int8, 0).decoded), 0);
}

TEST(Compression, TopKSendsTheLargestEntriesAsValueAndIndex) {
  const at::Tensor x = at::tensor({0.1f, -5.0f, 3.0f, 0.2f});
  const EncodedTensor e = compress_tensor(x, CompressionKind::topk, 0.5);
  EXPECT_EQ(e.bytes, 2 * (4 + 4));
  EXPECT_TRUE(at::equal(e.decoded, at::tensor({0.0f, -5.0f, 3.0f, 0.0f})));
  EXPECT_EQ(compress_tensor(x, CompressionKind::topk, 0.01).bytes, 8); // at least one entry
  EXPECT_EQ(compress_tensor(x, CompressionKind::none, 0).bytes, 16);
}

TEST(Compression, ErrorFeedbackCarriesTheResidualToTheNextRound) {
  CompressionSettings c;
  c.up = CompressionKind::topk;
  c.topk_fraction = 0.5;
  const TensorMap received{{"b", at::ones({4})}};
  TensorMap residual;
  TensorMap sent{{"b", at::ones({4}) + at::tensor({0.1f, -5.0f, 3.0f, 0.2f})}};
  EXPECT_EQ(compress_update(sent, received, residual, c), 16);
  EXPECT_TRUE(at::allclose(sent.at("b"), at::tensor({1.0f, -4.0f, 4.0f, 1.0f})));
  EXPECT_TRUE(at::allclose(residual.at("b"), at::tensor({0.1f, 0.0f, 0.0f, 0.2f})));
  // Next round's update 0.15 on entry 0: with the residual, entries 0 and 3 lead and go out.
  TensorMap next{{"b", at::ones({4}) + at::tensor({0.15f, 0.0f, 0.0f, 0.0f})}};
  (void)compress_update(next, received, residual, c);
  EXPECT_TRUE(at::allclose(next.at("b") - 1, at::tensor({0.25f, 0.0f, 0.0f, 0.2f})));
  EXPECT_TRUE(at::allclose(residual.at("b"), at::zeros({4})));
  // Without error feedback the residual is dropped.
  c.error_feedback = false;
  TensorMap plain{{"b", at::ones({4}) + at::tensor({0.1f, -5.0f, 3.0f, 0.2f})}};
  (void)compress_update(plain, received, residual, c);
  EXPECT_TRUE(residual.empty());
  // A received tensor of another shape is refused, naming it.
  TensorMap wrong{{"b", at::ones({5})}};
  try {
    (void)compress_update(wrong, received, residual, c);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos);
  }
}

} // namespace
