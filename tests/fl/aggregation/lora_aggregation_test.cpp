// tests/fl/aggregation/lora_aggregation_test.cpp — LoRA aggregation rules against hand-computed products, exactness, the error metric, rejected inputs.
//
// References are computed here, independently of the code under test: small matrices whose
// products are worked out in comments (all values exact in binary), or Σ p_k B_k A_k written
// out with at::matmul in float64.
#include "fl/aggregation/lora_aggregation.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using fedvlm::LoraFactors;

at::Tensor mat(int64_t rows, int64_t cols, std::vector<float> values) {
  return at::tensor(values, at::kFloat).reshape({rows, cols});
}

double fro(const at::Tensor& t) { return t.to(at::kDouble).norm().item<double>(); }

// Σ p_k B_k A_k written out in float64, independent of lora_mean_product.
at::Tensor reference_product(const std::vector<LoraFactors>& fs) {
  at::Tensor w;
  for (const auto& f : fs) {
    const at::Tensor term = at::matmul(f.B.to(at::kDouble), f.A.to(at::kDouble)) * f.weight;
    w = w.defined() ? w + term : term;
  }
  return w;
}

// Two rank-1 clients, p = 0.25 / 0.75, in = 3, out = 2.
//   B0 A0 = [2;0]·[1 0 2]  = [[2 0 4] [0 0 0]]
//   B1 A1 = [0;4]·[0 4 0]  = [[0 0 0] [0 16 0]]
//   Σ p B A = [[0.5 0 1] [0 12 0]]
std::vector<LoraFactors> rank_one_pair() {
  return {{0, 0.25, mat(1, 3, {1, 0, 2}), mat(2, 1, {2, 0})},
          {1, 0.75, mat(1, 3, {0, 4, 0}), mat(2, 1, {0, 4})}};
}

// Client 0 as above (rank 1), client 1 rank 2:
//   A1 = [[0 4 0] [1 1 0]], B1 = [[0 2] [4 0]], B1 A1 = [[2 2 0] [0 16 0]]
//   Σ p B A = 0.25·[[2 0 4] [0 0 0]] + 0.75·[[2 2 0] [0 16 0]] = [[2 1.5 1] [0 12 0]]
std::vector<LoraFactors> mixed_rank_pair() {
  return {{0, 0.25, mat(1, 3, {1, 0, 2}), mat(2, 1, {2, 0})},
          {1, 0.75, mat(2, 3, {0, 4, 0, 1, 1, 0}), mat(2, 2, {0, 2, 4, 0})}};
}

std::vector<LoraFactors> random_factors(const std::vector<int64_t>& ranks, int64_t out, int64_t in, uint64_t seed,
                                        at::ScalarType type = at::kFloat) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<LoraFactors> fs;
  // Unequal weights summing to 1: k+1 over the triangular number.
  const double total = static_cast<double>(ranks.size() * (ranks.size() + 1) / 2);
  for (size_t k = 0; k < ranks.size(); ++k)
    fs.push_back({static_cast<int>(10 + k), static_cast<double>(k + 1) / total,
                  at::randn({ranks[k], in}, gen, type), at::randn({out, ranks[k]}, gen, type)});
  return fs;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// -- FedIT ---------------------------------------------------------------------------------------

TEST(LoraAggregation, FeditTwoClientsHandComputed) {
  const auto r = fedvlm::aggregate_fedit(rank_one_pair());
  // Ā = 0.25·[1 0 2] + 0.75·[0 4 0] = [0.25 3 0.5]; B̄ = [0.5; 3]
  EXPECT_TRUE(at::equal(r.A, mat(1, 3, {0.25f, 3, 0.5f}))) << r.A;
  EXPECT_TRUE(at::equal(r.B, mat(2, 1, {0.5f, 3}))) << r.B;
  EXPECT_EQ(r.A.scalar_type(), at::kFloat);
  // B̄Ā = [[0.125 1.5 0.25] [0.75 9 1.5]] ≠ Σ p B A = [[0.5 0 1] [0 12 0]]: FedIT is inexact.
  EXPECT_TRUE(at::equal(at::matmul(r.B, r.A), mat(2, 3, {0.125f, 1.5f, 0.25f, 0.75f, 9, 1.5f})));
}

TEST(LoraAggregation, FeditIndependentOfInputOrder) {
  auto fs = random_factors({3, 3, 3, 3}, 5, 4, 7, at::kDouble);
  for (size_t k = 0; k < fs.size(); ++k) { // mixed magnitudes: the summation order shows in the last bits
    fs[k].A = fs[k].A * std::pow(10.0, static_cast<double>(k) - 2);
    fs[k].B = fs[k].B * std::pow(10.0, 2 - static_cast<double>(k));
  }
  const auto a = fedvlm::aggregate_fedit(fs);
  std::vector<LoraFactors> reversed(fs.rbegin(), fs.rend());
  const auto b = fedvlm::aggregate_fedit(reversed);
  EXPECT_TRUE(at::equal(a.A, b.A));
  EXPECT_TRUE(at::equal(a.B, b.B));
}

// -- FedEx-LoRA ----------------------------------------------------------------------------------

TEST(LoraAggregation, FedexTwoClientsHandComputedResidual) {
  const auto r = fedvlm::aggregate_fedex(rank_one_pair());
  EXPECT_TRUE(at::equal(r.A, mat(1, 3, {0.25f, 3, 0.5f})));
  EXPECT_TRUE(at::equal(r.B, mat(2, 1, {0.5f, 3})));
  // ΔW = [[0.5 0 1] [0 12 0]] − [[0.125 1.5 0.25] [0.75 9 1.5]]
  EXPECT_TRUE(at::equal(r.residual, mat(2, 3, {0.375f, -1.5f, 0.75f, -0.75f, 3, -1.5f}))) << r.residual;
  EXPECT_TRUE(at::equal(at::matmul(r.B, r.A) + r.residual, mat(2, 3, {0.5f, 0, 1, 0, 12, 0})));
  EXPECT_EQ(fedvlm::aggregation_error(rank_one_pair(), at::matmul(r.B, r.A) + r.residual), 0.0);
}

TEST(LoraAggregation, FedexIsExactOnRandomFactors) {
  for (const auto type : {at::kFloat, at::kDouble}) {
    const auto fs = random_factors({4, 4, 4}, 7, 5, 11, type);
    const auto r = fedvlm::aggregate_fedex(fs);
    ASSERT_EQ(r.residual.sizes(), (std::vector<int64_t>{7, 5}));
    EXPECT_EQ(r.residual.scalar_type(), type);
    const at::Tensor w = reference_product(fs);
    const at::Tensor p = at::matmul(r.B.to(at::kDouble), r.A.to(at::kDouble)) + r.residual.to(at::kDouble);
    EXPECT_TRUE(at::allclose(p, w, 0.0, 1e-6)) << (p - w).abs().max();
    EXPECT_LT(fedvlm::aggregation_error(fs, p), type == at::kDouble ? 1e-14 : 1e-6);
    // Negative control: without the residual the same product is off.
    EXPECT_GT(fedvlm::aggregation_error(fs, p - r.residual.to(at::kDouble)), 1e-2);
  }
}

// -- stacking ------------------------------------------------------------------------------------

TEST(LoraAggregation, StackHeterogeneousRanksHandComputed) {
  const auto r = fedvlm::aggregate_stack(mixed_rank_pair());
  // A_s = rows of A0 then A1; B_s = [0.25·B0 | 0.75·B1] = [[0.5 0 1.5] [0 3 0]]
  EXPECT_TRUE(at::equal(r.A, mat(3, 3, {1, 0, 2, 0, 4, 0, 1, 1, 0}))) << r.A;
  EXPECT_TRUE(at::equal(r.B, mat(2, 3, {0.5f, 0, 1.5f, 0, 3, 0}))) << r.B;
  EXPECT_TRUE(at::equal(at::matmul(r.B, r.A), mat(2, 3, {2, 1.5f, 1, 0, 12, 0})));
}

TEST(LoraAggregation, StackIsExactWithHeterogeneousRandomRanks) {
  auto fs = random_factors({1, 3, 2}, 6, 9, 5);
  std::swap(fs[0], fs[2]); // input order must not matter: blocks follow client ids
  const auto r = fedvlm::aggregate_stack(fs);
  ASSERT_EQ(r.A.sizes(), (std::vector<int64_t>{6, 9}));
  ASSERT_EQ(r.B.sizes(), (std::vector<int64_t>{6, 6}));
  // Client 10 (rank 1) comes first.
  EXPECT_TRUE(at::equal(r.A.slice(0, 0, 1), fs[2].A));
  const at::Tensor w = reference_product(fs);
  const at::Tensor p = at::matmul(r.B.to(at::kDouble), r.A.to(at::kDouble));
  EXPECT_TRUE(at::allclose(p, w, 0.0, 1e-6)) << (p - w).abs().max();
  EXPECT_LT(fedvlm::aggregation_error(fs, p), 1e-6);
}

// -- FlexLoRA ------------------------------------------------------------------------------------

TEST(LoraAggregation, FlexloraHandComputed) {
  // W = [[0.5 0 1] [0 12 0]]: orthogonal rows, singular values 12 and √1.25.
  // Rank 1 keeps [[0 0 0] [0 12 0]]; rank 2 is W itself.
  const auto fs = rank_one_pair();
  const auto r = fedvlm::aggregate_flexlora(fs, {1, 2});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].client, 0);
  EXPECT_EQ(r[1].client, 1);
  ASSERT_EQ(r[0].A.sizes(), (std::vector<int64_t>{1, 3}));
  ASSERT_EQ(r[0].B.sizes(), (std::vector<int64_t>{2, 1}));
  ASSERT_EQ(r[1].A.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(at::allclose(at::matmul(r[0].B, r[0].A), mat(2, 3, {0, 0, 0, 0, 12, 0}), 0.0, 1e-5));
  EXPECT_TRUE(at::allclose(at::matmul(r[1].B, r[1].A), mat(2, 3, {0.5f, 0, 1, 0, 12, 0}), 0.0, 1e-5));
  // Even split: B' = [0; √12], A' = [0 √12 0] (sign fixed so B's largest entry is positive).
  EXPECT_NEAR(r[0].B[1][0].item<float>(), std::sqrt(12.0f), 1e-5);
  EXPECT_NEAR(r[0].A[0][1].item<float>(), std::sqrt(12.0f), 1e-5);
}

TEST(LoraAggregation, FlexloraFullRankReproducesWAndTruncationIsBestRankR) {
  const auto fs = random_factors({2, 3, 1}, 8, 6, 23, at::kDouble); // Σr = 6 = min(out, in)
  const at::Tensor w = reference_product(fs);
  const at::Tensor s = at::linalg_svdvals(w);
  const auto full = fedvlm::aggregate_flexlora(fs, {6, 6, 6});
  EXPECT_TRUE(at::allclose(at::matmul(full[1].B, full[1].A), w, 0.0, 1e-10));
  EXPECT_LT(fedvlm::aggregation_error(fs, at::matmul(full[0].B, full[0].A)), 1e-12);
  for (int r = 1; r <= 5; ++r) {
    const auto out = fedvlm::aggregate_flexlora(fs, {r, r, 6});
    const at::Tensor approx = at::matmul(out[0].B, out[0].A);
    // Eckart–Young: the best rank-r error is √(Σ_{i>r} s_i²).
    const double tail = s.slice(0, r).pow(2).sum().sqrt().item<double>();
    EXPECT_NEAR(fro(w - approx), tail, 1e-9) << "rank " << r;
    EXPECT_EQ(at::linalg_matrix_rank(approx).item<int64_t>(), r);
    // Balanced split: B'ᵀB' = A'A'ᵀ = diag(s_1..s_r).
    const at::Tensor diag = at::diag(s.slice(0, 0, r));
    EXPECT_TRUE(at::allclose(at::matmul(out[0].B.t(), out[0].B), diag, 0.0, 1e-9));
    EXPECT_TRUE(at::allclose(at::matmul(out[0].A, out[0].A.t()), diag, 0.0, 1e-9));
    // Negative control: another rank-r factorisation (client 10's own rank-2 product, r = 2) is worse.
    if (r == 2) {
      EXPECT_GT(fro(w - at::matmul(fs[0].B, fs[0].A)), tail + 1e-3);
    }
  }
}

TEST(LoraAggregation, FlexloraOfZeroProductIsZeroNotNan) {
  // Round 0: every B is zero. The SVD of 0 is well defined; the factors are zero, not nan.
  auto fs = rank_one_pair();
  for (auto& f : fs) f.B = at::zeros_like(f.B);
  for (const auto& c : fedvlm::aggregate_flexlora(fs, {1, 2})) {
    EXPECT_TRUE(at::equal(c.A, at::zeros_like(c.A))) << c.A;
    EXPECT_TRUE(at::equal(c.B, at::zeros_like(c.B))) << c.B;
  }
}

TEST(LoraAggregation, FlexloraKeepsDtypeAndInputOrder) {
  auto fs = random_factors({2, 4}, 5, 7, 3);
  std::swap(fs[0], fs[1]);
  const auto r = fedvlm::aggregate_flexlora(fs, {4, 2});
  EXPECT_EQ(r[0].client, fs[0].client);
  EXPECT_EQ(r[0].A.size(0), 4);
  EXPECT_EQ(r[1].A.size(0), 2);
  EXPECT_EQ(r[0].A.scalar_type(), at::kFloat);
  EXPECT_EQ(r[0].B.scalar_type(), at::kFloat);
}

// -- HetLoRA -------------------------------------------------------------------------------------

TEST(LoraAggregation, HetloraHeterogeneousHandComputed) {
  // Padded: A0 → [[1 0 2] [0 0 0]], B0 → [[2 0] [0 0]].
  //   Ā = 0.25·pad(A0) + 0.75·A1 = [[0.25 3 0.5] [0.75 0.75 0]]
  //   B̄ = 0.25·pad(B0) + 0.75·B1 = [[0.5 1.5] [3 0]]
  const auto r = fedvlm::aggregate_hetlora(mixed_rank_pair(), {1, 2});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(at::equal(r[1].A, mat(2, 3, {0.25f, 3, 0.5f, 0.75f, 0.75f, 0}))) << r[1].A;
  EXPECT_TRUE(at::equal(r[1].B, mat(2, 2, {0.5f, 1.5f, 3, 0}))) << r[1].B;
  // Client 0 keeps the first row of Ā and the first column of B̄.
  EXPECT_TRUE(at::equal(r[0].A, mat(1, 3, {0.25f, 3, 0.5f})));
  EXPECT_TRUE(at::equal(r[0].B, mat(2, 1, {0.5f, 3})));
  // B̄Ā = [[0.5·0.25+1.5·0.75  0.5·3+1.5·0.75  0.5·0.5] [0.75 9 1.5]]
  EXPECT_TRUE(at::equal(at::matmul(r[1].B, r[1].A), mat(2, 3, {1.25f, 2.625f, 0.25f, 0.75f, 9, 1.5f})));
  EXPECT_TRUE(r[0].A.is_contiguous() && r[0].B.is_contiguous());
}

TEST(LoraAggregation, HetloraWithEqualRanksEqualsFedit) {
  const auto fs = random_factors({3, 3, 3}, 4, 6, 31);
  const auto fedit = fedvlm::aggregate_fedit(fs);
  for (const auto& c : fedvlm::aggregate_hetlora(fs, {3, 3, 3})) {
    EXPECT_TRUE(at::equal(c.A, fedit.A)) << "client " << c.client;
    EXPECT_TRUE(at::equal(c.B, fedit.B)) << "client " << c.client;
  }
}

// -- aggregation error and client drift ----------------------------------------------------------

TEST(LoraAggregation, AggregationErrorOfFeditHandComputed) {
  // ‖ΔW‖² = 0.375² + 1.5² + 0.75² + 0.75² + 3² + 1.5² = 14.765625; ‖Σ p B A‖² = 0.25 + 1 + 144
  const auto r = fedvlm::aggregate_fedit(rank_one_pair());
  EXPECT_NEAR(fedvlm::aggregation_error(rank_one_pair(), at::matmul(r.B, r.A)), std::sqrt(14.765625 / 145.25),
              1e-12);
}

TEST(LoraAggregation, AggregationErrorZeroWhenClientsShareA) {
  // FFA-LoRA: A frozen at a shared init, so Σ p B_k A = (Σ p B_k) A and FedIT is exact.
  auto fs = random_factors({4, 4, 4}, 6, 5, 41, at::kDouble);
  for (auto& f : fs) f.A = fs[0].A;
  const auto r = fedvlm::aggregate_fedit(fs);
  EXPECT_LT(fedvlm::aggregation_error(fs, at::matmul(r.B, r.A)), 1e-14);
}

TEST(LoraAggregation, AggregationErrorPositiveForFeditOnRandomFactors) {
  const auto fs = random_factors({4, 4}, 6, 5, 43);
  const auto r = fedvlm::aggregate_fedit(fs);
  EXPECT_GT(fedvlm::aggregation_error(fs, at::matmul(r.B, r.A)), 0.1);
}

TEST(LoraAggregation, AggregationErrorWhenTheMeanProductIsZero) {
  // Round 0: every B is zero, so Σ p B A = 0 and so is FedIT's product.
  auto fs = rank_one_pair();
  for (auto& f : fs) f.B = at::zeros_like(f.B);
  EXPECT_EQ(fedvlm::aggregation_error(fs, at::zeros({2, 3})), 0.0);
  EXPECT_EQ(fedvlm::aggregation_error(fs, at::ones({2, 3})), std::numeric_limits<double>::infinity());
}

TEST(LoraAggregation, ClientDrift) {
  const at::Tensor a = mat(2, 3, {1, 2, 0, -1, 0, 3});
  const at::Tensor b = mat(4, 2, {1, 0, 2, 1, 0, -1, 3, 3});
  EXPECT_EQ(fedvlm::client_drift(at::matmul(b, a), at::matmul(b, a)), 0.0);
  // ‖[[1 0] [0 0]] − [[2 0] [0 0]]‖ / ‖[[2 0] [0 0]]‖ = 1 / 2
  EXPECT_DOUBLE_EQ(fedvlm::client_drift(mat(2, 2, {1, 0, 0, 0}), mat(2, 2, {2, 0, 0, 0})), 0.5);
  EXPECT_EQ(fedvlm::client_drift(at::zeros({2, 2}), at::zeros({2, 2})), 0.0);
  EXPECT_EQ(fedvlm::client_drift(at::ones({2, 2}), at::zeros({2, 2})), std::numeric_limits<double>::infinity());
}

TEST(LoraAggregation, FeditErrorPerModule) {
  // Module "shared": one A for all clients (exact). Module "free": the rank-1 pair above.
  const auto pair = rank_one_pair();
  const at::Tensor shared_a = mat(2, 2, {1, 2, 3, 4});
  const fedvlm::TensorMap c0 = {{"shared.lora_A", shared_a}, {"shared.lora_B", mat(1, 2, {1, 1})},
                                {"free.lora_A", pair[0].A},  {"free.lora_B", pair[0].B},
                                {"head.weight", at::ones({3})}}; // not an adapter: ignored
  const fedvlm::TensorMap c1 = {{"shared.lora_A", shared_a}, {"shared.lora_B", mat(1, 2, {-2, 5})},
                                {"free.lora_A", pair[1].A},  {"free.lora_B", pair[1].B}};
  const auto by_module = fedvlm::lora_factors_by_module({{1, 0.75, &c1}, {0, 0.25, &c0}});
  ASSERT_EQ(by_module.size(), 2u);
  ASSERT_EQ(by_module.at("free").size(), 2u);
  EXPECT_EQ(by_module.at("free")[0].client, 0);
  EXPECT_EQ(by_module.at("free")[0].weight, 0.25);
  const auto err = fedvlm::fedit_error_per_module({{1, 0.75, &c1}, {0, 0.25, &c0}});
  ASSERT_EQ(err.size(), 2u);
  EXPECT_LT(err.at("shared"), 1e-15);
  EXPECT_NEAR(err.at("free"), std::sqrt(14.765625 / 145.25), 1e-12);
}

// -- rejected inputs -----------------------------------------------------------------------------

TEST(LoraAggregation, RejectsEmptyInput) {
  const std::vector<LoraFactors> none;
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_fedit(none); }), "fedit: no clients"));
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_fedex(none); }), "fedex: no clients"));
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_stack(none); }), "stack: no clients"));
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_flexlora(none, {}); }), "flexlora: no clients"));
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_hetlora(none, {}); }), "hetlora: no clients"));
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregation_error(none, at::zeros({1, 1})); }), "no clients"));
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::lora_factors_by_module({}); }), "no clients"));
}

TEST(LoraAggregation, RejectsMismatchedInAndOutDims) {
  auto in = rank_one_pair();
  in[1].A = mat(1, 2, {1, 2});
  const std::string m = error_of([&] { (void)fedvlm::aggregate_stack(in); });
  EXPECT_TRUE(contains(m, "stack: client 1's lora_A is [1, 2], in = 2; expected in = 3 as client 0's [1, 3]")) << m;
  auto out = rank_one_pair();
  out[0].B = mat(3, 1, {1, 2, 3});
  const std::string n = error_of([&] { (void)fedvlm::aggregate_fedit(out); });
  EXPECT_TRUE(contains(n, "fedit: client 1's lora_B is [2, 1], out = 2; expected out = 3 as client 0's [3, 1]")) << n;
}

TEST(LoraAggregation, RejectsRankMismatchWhereEqualRanksAreNeeded) {
  for (const std::string rule : {"fedit", "fedex"}) {
    const std::string m = error_of([&] {
      if (rule == "fedit") (void)fedvlm::aggregate_fedit(mixed_rank_pair());
      else (void)fedvlm::aggregate_fedex(mixed_rank_pair());
    });
    EXPECT_TRUE(contains(m, rule + ": client 1 has rank 2, client 0 has rank 1; " + rule + " needs equal ranks")) << m;
    EXPECT_TRUE(contains(m, "stacking, FlexLoRA and HetLoRA accept heterogeneous ranks")) << m;
  }
  // The rules that accept heterogeneous ranks do.
  EXPECT_EQ(error_of([] { (void)fedvlm::aggregate_stack(mixed_rank_pair()); }), "");
  EXPECT_EQ(error_of([] { (void)fedvlm::aggregate_flexlora(mixed_rank_pair(), {1, 2}); }), "");
  EXPECT_EQ(error_of([] { (void)fedvlm::aggregate_hetlora(mixed_rank_pair(), {1, 2}); }), "");
}

TEST(LoraAggregation, RejectsBadTargetRanks) {
  const auto fs = random_factors({2, 3}, 8, 4, 1); // min(out, in) = 4, stacked rank 5
  std::string m = error_of([&] { (void)fedvlm::aggregate_flexlora(fs, {2, 5}); });
  EXPECT_TRUE(contains(m, "flexlora: client 11's target rank 5 exceeds min(out 8, in 4, stacked rank 5) = 4")) << m;
  const auto narrow = random_factors({1, 2}, 8, 6, 2); // stacked rank 3 is the limit
  m = error_of([&] { (void)fedvlm::aggregate_flexlora(narrow, {4, 1}); });
  EXPECT_TRUE(contains(m, "flexlora: client 10's target rank 4 exceeds min(out 8, in 6, stacked rank 3) = 3")) << m;
  m = error_of([&] { (void)fedvlm::aggregate_flexlora(fs, {0, 1}); });
  EXPECT_TRUE(contains(m, "flexlora: client 10's target rank is 0; expected >= 1")) << m;
  m = error_of([&] { (void)fedvlm::aggregate_flexlora(fs, {1}); });
  EXPECT_TRUE(contains(m, "flexlora: 1 target ranks for 2 clients; expected one per client")) << m;
  m = error_of([&] { (void)fedvlm::aggregate_hetlora(fs, {4, 3}); });
  EXPECT_TRUE(contains(m, "hetlora: client 10's target rank 4 exceeds the largest client rank 3")) << m;
  m = error_of([&] { (void)fedvlm::aggregate_hetlora(fs, {1, -1}); });
  EXPECT_TRUE(contains(m, "hetlora: client 11's target rank is -1; expected >= 1")) << m;
  m = error_of([&] { (void)fedvlm::aggregate_hetlora(fs, {1, 1, 1}); });
  EXPECT_TRUE(contains(m, "hetlora: 3 target ranks for 2 clients")) << m;
}

TEST(LoraAggregation, RejectsWeightsNotSummingToOne) {
  auto fs = rank_one_pair();
  fs[1].weight = 0.5;
  const std::string m = error_of([&] { (void)fedvlm::aggregate_fedex(fs); });
  EXPECT_TRUE(contains(m, "fedex: client weights sum to 0.75, expected 1 (within 1e-9); normalise them")) << m;
  fs[1].weight = 0.75 + 5e-10; // inside the tolerance
  EXPECT_EQ(error_of([&] { (void)fedvlm::aggregate_fedex(fs); }), "");
  fs[1].weight = 0.75 + 5e-9;
  EXPECT_NE(error_of([&] { (void)fedvlm::aggregate_fedex(fs); }), "");
  fs[0].weight = -0.25;
  fs[1].weight = 1.25;
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_stack(fs); }),
                       "stack: client 0 has weight -0.25; expected a finite weight >= 0"));
  fs[0].weight = std::nan("");
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_stack(fs); }), "client 0 has weight nan"));
}

TEST(LoraAggregation, RejectsMalformedFactors) {
  auto fs = rank_one_pair();
  fs[1].client = 0;
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_fedit(fs); }), "fedit: client 0 appears twice"));
  fs = rank_one_pair();
  fs[1].B = mat(2, 2, {1, 2, 3, 4});
  std::string m = error_of([&] { (void)fedvlm::aggregate_stack(fs); });
  EXPECT_TRUE(contains(m, "stack: client 1's lora_B is [2, 2] but its lora_A is [1, 3]; expected B's columns to equal A's rows"))
      << m;
  fs = rank_one_pair();
  fs[0].A = at::ones({3});
  m = error_of([&] { (void)fedvlm::aggregate_hetlora(fs, {1, 1}); });
  EXPECT_TRUE(contains(m, "hetlora: client 0's lora_A has shape [3]; expected a 2-D rank × in matrix")) << m;
  fs = rank_one_pair();
  fs[1].B = at::ones({2, 1}, at::kLong);
  m = error_of([&] { (void)fedvlm::aggregate_fedit(fs); });
  EXPECT_TRUE(contains(m, "fedit: client 1's lora_B has dtype Long; expected a floating-point tensor")) << m;
  fs = rank_one_pair();
  fs[0].B = at::Tensor();
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_fedit(fs); }), "client 0's lora_B is undefined"));
  fs = rank_one_pair();
  fs[0].A = at::zeros({0, 3});
  fs[0].B = at::zeros({2, 0});
  EXPECT_TRUE(contains(error_of([&] { (void)fedvlm::aggregate_stack(fs); }), "client 0 has rank 0"));
}

TEST(LoraAggregation, RejectsWrongShapesInErrorMetrics) {
  std::string m = error_of([] { (void)fedvlm::aggregation_error(rank_one_pair(), at::zeros({3, 2})); });
  EXPECT_TRUE(contains(m, "aggregation_error: the aggregated product is [3, 2]; expected [2, 3]")) << m;
  m = error_of([] { (void)fedvlm::client_drift(at::zeros({2, 3}), at::zeros({3, 2})); });
  EXPECT_TRUE(contains(m, "client_drift: the global product B_g A_k is [2, 3] but the client's own product B_k A_k is [3, 2]"))
      << m;
  m = error_of([] { (void)fedvlm::client_drift(at::zeros({2, 3}), at::zeros({6})); });
  EXPECT_TRUE(contains(m, "client_drift: the client's own product B_k A_k is [6]; expected a 2-D")) << m;
}

TEST(LoraAggregation, RejectsInconsistentAdapterMaps) {
  const fedvlm::TensorMap full = {{"m.lora_A", mat(1, 2, {1, 2})}, {"m.lora_B", mat(2, 1, {1, 2})}};
  const fedvlm::TensorMap lone_a = {{"m.lora_A", mat(1, 2, {1, 2})}};
  const fedvlm::TensorMap lone_b = {{"m.lora_B", mat(2, 1, {1, 2})}};
  fedvlm::TensorMap extra = full;
  extra.emplace("n.lora_A", mat(1, 2, {1, 2}));
  extra.emplace("n.lora_B", mat(2, 1, {1, 2}));
  const fedvlm::TensorMap other = {{"n.lora_A", mat(1, 2, {1, 2})}, {"n.lora_B", mat(2, 1, {1, 2})}};
  auto msg = [](std::vector<fedvlm::ClientAdapters> cs) {
    return error_of([&] { (void)fedvlm::lora_factors_by_module(cs); });
  };
  std::string m = msg({{0, 0.5, &full}, {1, 0.5, &lone_a}});
  EXPECT_TRUE(contains(m, "client 1 has 'm.lora_A' but no 'm.lora_B'")) << m;
  m = msg({{0, 0.5, &lone_b}, {1, 0.5, &full}});
  EXPECT_TRUE(contains(m, "client 0 has 'm.lora_B' but no 'm.lora_A'")) << m;
  m = msg({{0, 0.5, &full}, {1, 0.5, &extra}});
  EXPECT_TRUE(contains(m, "client 1 has an adapter for module 'n', which client 0 lacks")) << m;
  m = msg({{0, 0.5, &extra}, {1, 0.5, &full}});
  EXPECT_TRUE(contains(m, "client 1 has no adapter for module 'n', which client 0 has")) << m;
  m = msg({{0, 0.5, &full}, {1, 0.5, &other}});
  EXPECT_TRUE(contains(m, "client 1 has no adapter for module 'm'")) << m;
  m = msg({{0, 0.5, &full}, {1, 0.5, nullptr}});
  EXPECT_TRUE(contains(m, "client 1 sent no adapters")) << m;
  m = msg({{2, 0.5, &full}, {2, 0.5, &full}});
  EXPECT_TRUE(contains(m, "client 2 appears twice")) << m;
  // fedit_error_per_module says which module is at fault.
  const fedvlm::TensorMap rank2 = {{"m.lora_A", at::ones({2, 2})}, {"m.lora_B", at::ones({2, 2})}};
  m = error_of([&] { (void)fedvlm::fedit_error_per_module({{0, 0.5, &full}, {1, 0.5, &rank2}}); });
  EXPECT_TRUE(contains(m, "module 'm': fedit: client 1 has rank 2, client 0 has rank 1")) << m;
}

} // namespace
