// fl/federation/setup_parts.hpp — what the model families' set-ups share: client splits, bytes per round, the device, image pools.
//
// Internal to fl/federation: run_setup.cpp (image classifiers), setup_vqa.cpp (Florence-2) and
// setup_clip.cpp (CLIP) build a RunSetup from these.
#pragma once

#include "fl/federation/run_setup.hpp"
#include "fl/tasks/full_fine_tuning.hpp" // TensorShapes

#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm::setup_detail {

/// Per-client local splits and domain/label histograms from a partition of `labels`.
void fill_clients(RunSetup& setup, const ExperimentConfig& c, const std::vector<int64_t>& labels, int64_t classes);

/// Per-round bytes of a client of the largest rank (float32 adapters); for full fine-tuning the
/// float32 copies of the trained modules' tensors in `base` (full_tensor_names; their weights
/// only, from the targets' shapes, when the base's tensors are not known).
void fill_bytes(RunSetup& setup, const ExperimentConfig& c, const TensorShapes* base);

/// The linear probe's bytes ({classes, features}: a float32 weight and bias), known in a
/// dry run too.
void fill_probe_bytes(RunSetup& setup, const ExperimentConfig& c, std::pair<int64_t, int64_t> probe_shape);

/// Where the models run: `device` resolved, with a warning when it falls back to the CPU.
[[nodiscard]] c10::Device run_device(const ExperimentConfig& c);

/// The cached pretrained checkpoint of this run's model for the settings `key` describes.
[[nodiscard]] std::filesystem::path pretrain_cache_file(const ExperimentConfig& c, const std::string& key);

/// An image dataset cut for a run: the public split (pretraining) and the federated pool, the
/// official test split appended to the pool under evaluation.global_test.
struct ImagePools {
  std::shared_ptr<const ImageDataset> full;
  std::vector<int64_t> public_idx;
  ImageDataset pool;
};
[[nodiscard]] ImagePools image_pools(RunSetup& setup, const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode);

} // namespace fedvlm::setup_detail
