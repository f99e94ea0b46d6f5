// tests/model/max_pool_2x2_test.cpp — max_pool_2x2 against at::max_pool2d, bit for bit, forward and backward.
#include "model/max_pool_2x2.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

namespace fedvlm {
namespace {

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<std::size_t>(ca.nbytes())) == 0;
}

/// Values from a small set (many ties inside a window), with NaNs, ±inf and -0 sprinkled in.
at::Tensor awkward_input(at::IntArrayRef shape, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor x = at::randint(-3, 4, shape, gen, at::kFloat);
  const at::Tensor pick = at::rand(shape, gen);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  x = at::where(pick < 0.03, at::full({}, nan), x);
  x = at::where((pick >= 0.03) & (pick < 0.06), at::full({}, -inf), x);
  x = at::where((pick >= 0.06) & (pick < 0.08), at::full({}, inf), x);
  x = at::where((pick >= 0.08) & (pick < 0.12), at::full({}, -0.0f), x);
  return x;
}

/// Forward and input gradient of `pool` for a gradient of the output that holds -0 and NaN too.
std::pair<at::Tensor, at::Tensor> run(const at::Tensor& input, bool ours, uint64_t seed) {
  const at::Tensor x = input.detach().clone().requires_grad_(true);
  const at::Tensor y = ours ? max_pool_2x2(x) : at::max_pool2d(x, {2, 2});
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor g = at::randn(y.sizes(), gen);
  g = at::where(at::rand(y.sizes(), gen) < 0.2, at::full({}, -0.0f), g);
  y.backward(g);
  return {y.detach(), x.grad()};
}

TEST(MaxPool2x2, EqualsATenBitForBitWithTiesNaNsInfinitiesAndSignedZeros) {
  const std::vector<std::vector<int64_t>> shapes = {{10, 10, 24, 24}, {10, 20, 8, 8}, {256, 32, 28, 28},
                                                    {1, 1, 2, 2},     {3, 4, 7, 9},   {2, 3, 5, 4}};
  uint64_t seed = 1;
  for (const auto& shape : shapes) {
    const at::Tensor x = awkward_input(shape, seed++);
    const auto [ours_y, ours_g] = run(x, true, seed);
    const auto [aten_y, aten_g] = run(x, false, seed);
    EXPECT_TRUE(same_bits(ours_y, aten_y)) << at::IntArrayRef(shape);
    EXPECT_TRUE(same_bits(ours_g, aten_g)) << at::IntArrayRef(shape);
  }
}

TEST(MaxPool2x2, TakesTheFirstOfEqualMaximaAndTheLastNaN) {
  // One window per case, read row by row: the gradient shows which element won.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::pair<std::vector<float>, int>> cases = {
      {{1, 1, 1, 1}, 0}, {{0, 2, 2, 1}, 1}, {{nan, 5, 5, 1}, 0}, {{1, nan, 3, nan}, 3}, {{-1, -1, 0, 0}, 2}};
  for (const auto& [values, winner] : cases) {
    const at::Tensor x = at::tensor(values).reshape({1, 1, 2, 2}).requires_grad_(true);
    max_pool_2x2(x).sum().backward();
    const at::Tensor expected = at::zeros({4});
    expected[winner] = 1.0f;
    EXPECT_TRUE(at::equal(x.grad().reshape({4}), expected)) << values[0] << " " << values[1] << " " << values[2] << " " << values[3];
  }
}

TEST(MaxPool2x2, StridedInputsAndNoGradAgree) {
  const at::Tensor base = awkward_input({4, 6, 12, 10}, 7);
  const at::Tensor strided = base.transpose(2, 3); // (4, 6, 10, 12), not contiguous
  EXPECT_TRUE(same_bits(max_pool_2x2(strided), at::max_pool2d(strided, {2, 2})));
  at::NoGradGuard no_grad;
  EXPECT_TRUE(same_bits(max_pool_2x2(base), at::max_pool2d(base, {2, 2})));
  // Another dtype goes to ATen itself.
  const at::Tensor d = base.to(at::kDouble);
  EXPECT_TRUE(same_bits(max_pool_2x2(d), at::max_pool2d(d, {2, 2})));
}

} // namespace
} // namespace fedvlm
