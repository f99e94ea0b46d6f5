// fl/tasks/classification_metrics.cpp — accuracy and scikit-learn-style macro precision/recall/F1.
#include "fl/tasks/classification_metrics.hpp"

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>

namespace fedvlm {

namespace {
struct ClassCounts {
  int64_t true_positive = 0;
  int64_t predicted = 0; ///< times the class appears in y_pred
  int64_t actual = 0;    ///< times the class appears in y_true
};

double safe_ratio(int64_t num, int64_t den) { // zero_division=0
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}
} // namespace

ClassificationMetrics classification_metrics(const std::vector<int64_t>& y_true,
                                             const std::vector<int64_t>& y_pred) {
  if (y_true.size() != y_pred.size()) {
    throw std::invalid_argument("classification_metrics: y_true has " +
                                std::to_string(y_true.size()) + " entries but y_pred has " +
                                std::to_string(y_pred.size()));
  }
  ClassificationMetrics m;
  m.count = static_cast<int64_t>(y_true.size());
  if (y_true.empty()) return m;

  // A map (not a dense array) so arbitrary, sparse or negative label ids work, and so the
  // averaged set is exactly the union of labels seen, as in scikit-learn.
  std::map<int64_t, ClassCounts> classes;
  int64_t correct = 0;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    ++classes[y_true[i]].actual;
    ++classes[y_pred[i]].predicted;
    if (y_true[i] == y_pred[i]) {
      ++correct;
      ++classes[y_true[i]].true_positive;
    }
  }
  double sum_p = 0, sum_r = 0, sum_f1 = 0;
  for (const auto& [label, c] : classes) {
    const double p = safe_ratio(c.true_positive, c.predicted);
    const double r = safe_ratio(c.true_positive, c.actual);
    sum_p += p;
    sum_r += r;
    sum_f1 += (p + r) > 0 ? 2.0 * p * r / (p + r) : 0.0;
  }
  const double k = static_cast<double>(classes.size());
  m.accuracy = static_cast<double>(correct) / static_cast<double>(m.count);
  m.macro_precision = sum_p / k;
  m.macro_recall = sum_r / k;
  m.macro_f1 = sum_f1 / k; // mean of per-class F1, not F1 of the macro P and R
  return m;
}

} // namespace fedvlm
