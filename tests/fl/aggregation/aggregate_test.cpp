// tests/fl/aggregation/aggregate_test.cpp — FedAvg: exact weights, order independence, dtypes and rejected inputs.
#include "fl/aggregation/aggregate.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

fedvlm::TensorMap one(const std::string& name, std::vector<float> values) {
  return {{name, at::tensor(values, at::kFloat)}};
}

TEST(Aggregate, SampleWeightingIsExact) {
  // samples 1 and 3 → weights 0.25 / 0.75; values chosen so every product is exact in float.
  const fedvlm::TensorMap c0 = {{"x.lora_B", at::tensor({4.0f, -8.0f, 0.0f, 2.0f}).reshape({2, 2})},
                                {"y.lora_B", at::tensor({1.0f})}};
  const fedvlm::TensorMap c1 = {{"x.lora_B", at::tensor({8.0f, 4.0f, 2.0f, -2.0f}).reshape({2, 2})},
                                {"y.lora_B", at::tensor({3.0f})}};
  const fedvlm::TensorMap out =
      fedvlm::aggregate({{0, 1, &c0}, {1, 3, &c1}}, fedvlm::Weighting::samples);
  ASSERT_EQ(out.size(), 2u);
  // 0.25·4 + 0.75·8 = 7, 0.25·-8 + 0.75·4 = 1, 0.25·0 + 0.75·2 = 1.5, 0.25·2 + 0.75·-2 = -1
  EXPECT_TRUE(at::equal(out.at("x.lora_B"), at::tensor({7.0f, 1.0f, 1.5f, -1.0f}).reshape({2, 2})))
      << out.at("x.lora_B");
  EXPECT_TRUE(at::equal(out.at("y.lora_B"), at::tensor({2.5f}))) << out.at("y.lora_B");
}

TEST(Aggregate, UniformWeightingIsOneOverKAndIgnoresSamples) {
  const auto c0 = one("t", {1.0f, 0.0f});
  const auto c1 = one("t", {2.0f, 4.0f});
  const auto c2 = one("t", {3.0f, 8.0f});
  const auto c3 = one("t", {6.0f, -4.0f});
  // Very different sample counts: uniform weighting must not look at them.
  const auto out = fedvlm::aggregate({{0, 1, &c0}, {1, 1000, &c1}, {2, 0, &c2}, {3, 7, &c3}},
                                     fedvlm::Weighting::uniform);
  EXPECT_TRUE(at::equal(out.at("t"), at::tensor({3.0f, 2.0f}))) << out.at("t");
  // K = 3: the mean 7/3 is not exact in binary, but the float64 sum rounds to float(7/3).
  const auto c4 = one("t", {4.0f, 1.0f});
  const auto o3 = fedvlm::aggregate({{0, 5, &c0}, {1, 5, &c1}, {5, 5, &c4}}, fedvlm::Weighting::uniform);
  EXPECT_FLOAT_EQ(o3.at("t")[0].item<float>(), static_cast<float>(7.0 / 3.0));
  EXPECT_FLOAT_EQ(o3.at("t")[1].item<float>(), static_cast<float>(5.0 / 3.0));
  // A single client is returned as is.
  const auto solo = fedvlm::aggregate({{4, 10, &c1}}, fedvlm::Weighting::samples);
  EXPECT_TRUE(at::equal(solo.at("t"), c1.at("t")));
}

TEST(Aggregate, SampleWeightedMatchesFloat64Reference) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  std::vector<fedvlm::TensorMap> maps;
  const std::vector<int64_t> samples = {5, 0, 12, 3, 80};
  for (size_t k = 0; k < samples.size(); ++k)
    maps.push_back({{"a", at::randn({3, 4}, gen, at::kFloat)}});
  std::vector<fedvlm::ClientContribution> cs;
  at::Tensor ref = at::zeros({3, 4}, at::kDouble);
  for (size_t k = 0; k < maps.size(); ++k) {
    cs.push_back({static_cast<int>(k), samples[k], &maps[k]});
    ref += maps[k].at("a").to(at::kDouble) * (static_cast<double>(samples[k]) / 100.0);
  }
  const auto out = fedvlm::aggregate(cs, fedvlm::Weighting::samples);
  EXPECT_TRUE(at::allclose(out.at("a").to(at::kDouble), ref, 0.0, 1e-6));
}

TEST(Aggregate, ResultIndependentOfArrivalOrder) {
  // float64 tensors of mixed magnitudes: here the summation order shows in the last bits, so a
  // result that depended on arrival order would fail the bitwise comparison.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  std::vector<fedvlm::TensorMap> maps;
  for (int k = 0; k < 9; ++k) {
    const double mag = std::pow(10.0, (k % 5) - 2);
    maps.push_back({{"p.lora_A", at::randn({16, 8}, gen, at::kDouble) * mag},
                    {"p.lora_B", at::randn({8, 16}, gen, at::kDouble) * mag}});
  }
  std::vector<fedvlm::ClientContribution> cs;
  for (int k = 0; k < 9; ++k) cs.push_back({k * 3 + 1, 7 + 13 * k, &maps[k]});
  const auto reference = fedvlm::aggregate(cs, fedvlm::Weighting::samples);
  const auto reference_u = fedvlm::aggregate(cs, fedvlm::Weighting::uniform);

  std::mt19937 rng(42);
  for (int trial = 0; trial < 10; ++trial) {
    std::shuffle(cs.begin(), cs.end(), rng);
    const auto out = fedvlm::aggregate(cs, fedvlm::Weighting::samples);
    const auto out_u = fedvlm::aggregate(cs, fedvlm::Weighting::uniform);
    for (const auto& [name, t] : reference) {
      EXPECT_TRUE(at::equal(out.at(name), t)) << name << " trial " << trial;
      EXPECT_TRUE(at::equal(out_u.at(name), reference_u.at(name))) << name << " trial " << trial;
    }
  }
}

TEST(Aggregate, DtypePreserved) {
  const fedvlm::TensorMap f0 = {{"f", at::full({2}, 0.1f)}, {"d", at::full({2}, 0.1, at::kDouble)}};
  const fedvlm::TensorMap f1 = {{"f", at::full({2}, 0.3f)}, {"d", at::full({2}, 0.3, at::kDouble)}};
  const auto out = fedvlm::aggregate({{0, 1, &f0}, {1, 1, &f1}}, fedvlm::Weighting::samples);
  EXPECT_EQ(out.at("f").scalar_type(), at::kFloat);
  EXPECT_EQ(out.at("d").scalar_type(), at::kDouble);
  EXPECT_NEAR(out.at("f")[0].item<float>(), 0.2f, 1e-7);
  EXPECT_NEAR(out.at("d")[0].item<double>(), 0.2, 1e-15);
  // The inputs are read, never written.
  EXPECT_TRUE(at::equal(f0.at("f"), at::full({2}, 0.1f)));
}

// Runs aggregate and returns the std::invalid_argument message ("" when nothing was thrown).
std::string error_of(std::vector<fedvlm::ClientContribution> cs, fedvlm::Weighting w) {
  try {
    (void)fedvlm::aggregate(std::move(cs), w);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Aggregate, RejectsEmptyList) {
  EXPECT_NE(error_of({}, fedvlm::Weighting::samples), "");
  EXPECT_NE(error_of({}, fedvlm::Weighting::uniform), "");
}

TEST(Aggregate, RejectsMismatchedNames) {
  const fedvlm::TensorMap a = {{"x.lora_A", at::zeros({2})}, {"x.lora_B", at::zeros({2})}};
  const fedvlm::TensorMap b = {{"x.lora_A", at::zeros({2})}, {"y.lora_B", at::zeros({2})}};
  const fedvlm::TensorMap c = {{"x.lora_A", at::zeros({2})}};
  const fedvlm::TensorMap d = {{"x.lora_A", at::zeros({2})}, {"x.lora_B", at::zeros({2})},
                               {"z.lora_B", at::zeros({2})}};
  // Same count, different names, in both orders (the first client defines the expected set).
  EXPECT_NE(error_of({{0, 1, &a}, {1, 1, &b}}, fedvlm::Weighting::samples), "");
  EXPECT_NE(error_of({{0, 1, &b}, {1, 1, &a}}, fedvlm::Weighting::samples), "");
  // A missing tensor and an extra tensor.
  EXPECT_NE(error_of({{0, 1, &a}, {1, 1, &c}}, fedvlm::Weighting::uniform), "");
  EXPECT_NE(error_of({{0, 1, &a}, {1, 1, &d}}, fedvlm::Weighting::uniform), "");
  EXPECT_NE(error_of({{0, 1, &d}, {1, 1, &a}}, fedvlm::Weighting::uniform), "");
}

TEST(Aggregate, RejectsMismatchedShapes) {
  const fedvlm::TensorMap a = {{"w", at::zeros({2, 3})}};
  const fedvlm::TensorMap b = {{"w", at::zeros({3, 2})}}; // same numel, other shape
  const fedvlm::TensorMap c = {{"w", at::zeros({6})}};
  const std::string msg = error_of({{0, 1, &a}, {1, 1, &b}}, fedvlm::Weighting::samples);
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(error_of({{0, 1, &a}, {1, 1, &c}}, fedvlm::Weighting::samples), "");
}

TEST(Aggregate, RejectsZeroTotalSamplesUnderSampleWeighting) {
  const auto t = one("t", {1.0f});
  EXPECT_NE(error_of({{0, 0, &t}, {1, 0, &t}}, fedvlm::Weighting::samples), "");
  // Uniform weighting does not divide by the sample total, so zero samples are fine there.
  const auto out = fedvlm::aggregate({{0, 0, &t}, {1, 0, &t}}, fedvlm::Weighting::uniform);
  EXPECT_TRUE(at::equal(out.at("t"), t.at("t")));
}

TEST(Aggregate, RejectsAClientContributingTwice) {
  const auto t = one("t", {1.0f});
  const std::string msg = error_of({{3, 1, &t}, {1, 1, &t}, {3, 2, &t}}, fedvlm::Weighting::samples);
  EXPECT_NE(msg.find("client 3 contributed twice"), std::string::npos) << msg;
}

TEST(Aggregate, RejectsNullTensorsAndNegativeSamples) {
  const auto t = one("t", {1.0f});
  EXPECT_NE(error_of({{0, 1, &t}, {1, 1, nullptr}}, fedvlm::Weighting::samples), "");
  EXPECT_NE(error_of({{0, 4, &t}, {1, -1, &t}}, fedvlm::Weighting::samples), "");
}

} // namespace
