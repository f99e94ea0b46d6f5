// fl/tasks/pretrain.hpp — central training of a whole backbone on the public split (the quickstart's start).
#pragma once

#include "fl/config/experiment_config.hpp"
#include "fl/data/image_dataset.hpp"
#include "model/image_classifier.hpp"

#include <functional>

namespace fedvlm {

struct PretrainReport {
  double last_epoch_loss = 0;
  double seconds = 0;
  int64_t steps = 0;
};

/// Trains every parameter of `model` (SGD, momentum 0.9, BatchNorm in training mode, dropout
/// active), seeded, then recalibrates BatchNorm. `on_epoch(epoch, mean_loss)` follows each epoch.
PretrainReport pretrain_classifier(ImageClassifier& model, const ImageDataset& data,
                                   const PretrainSettings& settings, uint64_t seed,
                                   const std::function<void(int, double)>& on_epoch = {});

/// Replaces BatchNorm running statistics by their exact average over up to `max_batches` batches
/// of `data` under the current weights. torchvision's MobileNetV3 momentum (0.01) makes the
/// running statistics lag far behind a short training run, and eval-mode accuracy collapses.
void recalibrate_batchnorm(ImageClassifier& model, const ImageDataset& data, int64_t batch_size,
                           int64_t max_batches, uint64_t seed);

} // namespace fedvlm
