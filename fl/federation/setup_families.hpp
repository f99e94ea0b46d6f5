// fl/federation/setup_families.hpp — one set-up per model family, each in its own file; prepare_run picks by the model table.
//
// Internal to fl/federation. Declared over forward declarations so that run_setup.cpp, which
// dispatches to them, and the families' files, which build a RunSetup, include no circle.
#pragma once

namespace fedvlm {

struct ExperimentConfig;
struct RunSetup;
class DatasetCache;
enum class SetupMode;

namespace setup_detail {

/// MobileNetV3 and the FedAvg papers' nets: fl/federation/setup_image.cpp.
[[nodiscard]] RunSetup prepare_image_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode);
/// Florence-2 on a VQA folder (or the synthetic one): fl/federation/setup_vqa.cpp.
[[nodiscard]] RunSetup prepare_vqa_run(const ExperimentConfig& c, SetupMode mode);
/// CLIP zero-shot classification with LoRA on the text tower: fl/federation/setup_clip.cpp.
[[nodiscard]] RunSetup prepare_clip_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode);

} // namespace setup_detail
} // namespace fedvlm
