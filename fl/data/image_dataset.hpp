// fl/data/image_dataset.hpp — labelled image datasets held in memory as tensors, and their loaders.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

/// N images (N, C, H, W) float32, already normalised, and their labels (N) int64.
struct ImageDataset {
  at::Tensor images;
  at::Tensor labels;
  std::vector<std::string> class_names;
  /// How `images` were normalised, per channel: images = (pixel / 255 − mean) / stdev. Empty:
  /// they are plain [0, 1] intensities. Models with their own preprocessing (CLIP) undo it.
  std::vector<float> mean, stdev;

  /// The images as [0, 1] intensities (a new tensor unless they already are).
  [[nodiscard]] at::Tensor images01() const;

  [[nodiscard]] int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  [[nodiscard]] int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  /// Labels as a plain vector, for partitioning.
  [[nodiscard]] std::vector<int64_t> label_vector() const;
  /// The samples at `indices`, in that order.
  [[nodiscard]] ImageDataset subset(const std::vector<int64_t>& indices) const;
};

enum class DataSplit { train, test };

/// Fashion-MNIST from IDX files (gzip-compressed `*-ubyte.gz` or plain `*-ubyte`) in `dir`:
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Images 1×28×28, scaled to [0,1] then
/// normalised with mean 0.2860, std 0.3530. Throws std::runtime_error naming the file and the
/// problem (missing, truncated, bad magic, count mismatch, label out of range).
[[nodiscard]] ImageDataset load_fashion_mnist(const std::filesystem::path& dir, DataSplit split);

/// MNIST (LeCun et al.) from the same IDX files and with the same checks as load_fashion_mnist;
/// normalised with MNIST's mean 0.1307, std 0.3081; class names "0" … "9". Missing files name
/// /usr/share/datasets/mnist and data.path (MNIST is not packaged in Debian).
[[nodiscard]] ImageDataset load_mnist(const std::filesystem::path& dir, DataSplit split);

/// CIFAR-10 binary version from `dir`: data_batch_1..5.bin (train) or test_batch.bin (test),
/// each 10,000 records of 3073 bytes. Images 3×32×32 normalised with the usual CIFAR-10
/// mean/std. Class names from batches.meta.txt when present. Errors as above.
[[nodiscard]] ImageDataset load_cifar10(const std::filesystem::path& dir, DataSplit split);

} // namespace fedvlm
