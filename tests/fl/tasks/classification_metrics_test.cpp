// tests/fl/tasks/classification_metrics_test.cpp — accuracy and macro P/R/F1 against hand-computed values.
#include "fl/tasks/classification_metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

constexpr double kTol = 1e-12;

TEST(ClassificationMetrics, PerfectPredictionsScoreOne) {
  const std::vector<int64_t> y = {0, 1, 2, 2, 1, 0, 3};
  const auto m = classification_metrics(y, y);
  EXPECT_EQ(m.count, 7);
  EXPECT_NEAR(m.accuracy, 1.0, kTol);
  EXPECT_NEAR(m.macro_precision, 1.0, kTol);
  EXPECT_NEAR(m.macro_recall, 1.0, kTol);
  EXPECT_NEAR(m.macro_f1, 1.0, kTol);
}

TEST(ClassificationMetrics, ClassNeverPredictedCountsAsZero) {
  // class 0: TP 1, pred 1, true 1 -> P 1,   R 1, F1 1
  // class 1: TP 1, pred 2, true 1 -> P 1/2, R 1, F1 2/3
  // class 2: TP 0, pred 0, true 1 -> P 0 (zero_division), R 0, F1 0
  const auto m = classification_metrics({0, 1, 2}, {0, 1, 1});
  EXPECT_NEAR(m.accuracy, 2.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_precision, 0.5, kTol);
  EXPECT_NEAR(m.macro_recall, 2.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_f1, 5.0 / 9.0, kTol);
}

TEST(ClassificationMetrics, MacroF1IsMeanOfPerClassF1NotF1OfMeans) {
  const auto m = classification_metrics({0, 1, 2}, {0, 1, 1});
  const double f1_of_means =
      2 * m.macro_precision * m.macro_recall / (m.macro_precision + m.macro_recall); // 4/7
  EXPECT_NEAR(f1_of_means, 4.0 / 7.0, kTol);
  EXPECT_GT(std::abs(m.macro_f1 - f1_of_means), 1e-3);
}

TEST(ClassificationMetrics, ClassOnlyPredictedIsIncludedInTheAverage) {
  // Label 2 never occurs in y_true but is predicted once, so it joins the averaged set.
  // class 0: TP 1, pred 1, true 2 -> P 1, R 1/2, F1 2/3
  // class 1: TP 1, pred 1, true 1 -> P 1, R 1,   F1 1
  // class 2: TP 0, pred 1, true 0 -> P 0, R 0 (zero_division), F1 0
  // Averaging over y_true's labels only would give R 3/4 instead of 1/2.
  const auto m = classification_metrics({0, 0, 1}, {0, 2, 1});
  EXPECT_NEAR(m.accuracy, 2.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_precision, 2.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_recall, 0.5, kTol);
  EXPECT_NEAR(m.macro_f1, 5.0 / 9.0, kTol);
}

TEST(ClassificationMetrics, MatchesScikitLearnDocumentationExample) {
  // The example from sklearn.metrics.precision_recall_fscore_support's docstring:
  //   y_true = [0, 1, 2, 0, 1, 2]; y_pred = [0, 2, 1, 0, 0, 1]
  //   precision_recall_fscore_support(y_true, y_pred, average='macro')
  //   -> (0.22..., 0.33..., 0.26..., None)
  // By hand: class 0: TP 2, pred 3, true 2 -> P 2/3, R 1, F1 0.8
  //          class 1: TP 0, pred 2, true 2 -> 0, 0, 0
  //          class 2: TP 0, pred 1, true 2 -> 0, 0, 0
  //   macro P = 2/9 = 0.2222, R = 1/3 = 0.3333, F1 = 0.8/3 = 0.2667; accuracy = 2/6.
  const auto m = classification_metrics({0, 1, 2, 0, 1, 2}, {0, 2, 1, 0, 0, 1});
  EXPECT_NEAR(m.accuracy, 1.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_precision, 2.0 / 9.0, kTol);
  EXPECT_NEAR(m.macro_recall, 1.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_f1, 0.8 / 3.0, kTol);
  EXPECT_EQ(m.count, 6);
}

TEST(ClassificationMetrics, SparseAndNegativeLabelIdsAreClassesLikeAnyOther) {
  // Same structure as the never-predicted case with ids {-7, 100, 5}: the ids must not matter.
  const auto m = classification_metrics({-7, 100, 5}, {-7, 100, 100});
  EXPECT_NEAR(m.macro_precision, 0.5, kTol);
  EXPECT_NEAR(m.macro_recall, 2.0 / 3.0, kTol);
  EXPECT_NEAR(m.macro_f1, 5.0 / 9.0, kTol);
}

TEST(ClassificationMetrics, AllWrongGivesZeros) {
  const auto m = classification_metrics({0, 0, 1, 1}, {1, 1, 0, 0});
  EXPECT_EQ(m.accuracy, 0.0);
  EXPECT_EQ(m.macro_precision, 0.0);
  EXPECT_EQ(m.macro_recall, 0.0);
  EXPECT_EQ(m.macro_f1, 0.0);
}

TEST(ClassificationMetrics, EmptyInputGivesZeros) {
  const auto m = classification_metrics({}, {});
  EXPECT_EQ(m.count, 0);
  EXPECT_EQ(m.accuracy, 0.0);
  EXPECT_EQ(m.macro_precision, 0.0);
  EXPECT_EQ(m.macro_recall, 0.0);
  EXPECT_EQ(m.macro_f1, 0.0);
}

TEST(ClassificationMetrics, LengthMismatchThrows) {
  try {
    (void)classification_metrics({0, 1, 2}, {0, 1});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("y_pred"), std::string::npos) << e.what();
  }
}

} // namespace
} // namespace fedvlm
