// fl/tasks/classification_metrics.hpp — accuracy and macro precision/recall/F1 from predictions.
#pragma once

#include <cstdint>
#include <vector>

namespace fedvlm {

struct ClassificationMetrics {
  double accuracy = 0;
  double macro_precision = 0;
  double macro_recall = 0;
  double macro_f1 = 0;
  int64_t count = 0;
};

/// Macro averages follow scikit-learn's `average="macro"` with `zero_division=0`: the classes
/// averaged over are those present in y_true or y_pred; a class never predicted has precision 0.
/// Throws std::invalid_argument when the vectors differ in length. Empty input gives all zeros.
[[nodiscard]] ClassificationMetrics classification_metrics(const std::vector<int64_t>& y_true,
                                                           const std::vector<int64_t>& y_pred);

} // namespace fedvlm
