// fl/tasks/clip_pretrain.hpp — central contrastive pretraining of a small CLIP on public captioned images.
//
// The FLoRA experiment needs a CLIP whose zero-shot accuracy is well above chance before the
// federation starts; with no internet, the tiny CLIP is pretrained here from random weights on
// the public split, each image captioned by a prompt template ("a photo of a {class}.").
//
// Objective: CLIP's symmetric InfoNCE over a batch — cross-entropy of the image→text logits
// and of the text→image logits, averaged — with logits exp(logit_scale) · cos(img_i, txt_j)
// and logit_scale a trained parameter, clamped to [0, ln 100] after every step as CLIP does.
//
// False negatives: with only C · T distinct captions, a batch holds many pairs of images of the
// same class whose captions are the same text. Standard InfoNCE would push an image away from
// its own caption carried by another sample. The targets are therefore label-aware: for image
// i the target distribution is uniform over the batch's texts of i's class (1/|same class|
// each), and likewise for text j over the images of its class. This keeps every batch
// (unlike sampling batches of distinct classes, which would cap the batch at C).
//
// Every weight is trained (this is not LoRA): AdamW, decoupled weight decay on matrices only
// (not on biases, LayerNorm gains, the vision class token or logit_scale — CLIP's exclusion
// rule: tensors of fewer than two dimensions), constant learning rate after a linear warm-up.
// Deterministic in the seed for a given number of intra-op threads.
#pragma once

#include "fl/data/clip_pixel_source.hpp"
#include "model/clip.hpp"
#include "model/clip_tokenizer.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fedvlm {

struct ClipPretrainSettings {
  int epochs = 5;
  int64_t batch_size = 64;
  double lr = 1e-3;
  double weight_decay = 0.1;
  int64_t warmup_steps = 20;
};

struct ClipPretrainReport {
  double first_epoch_loss = 0;
  double last_epoch_loss = 0;
  int64_t steps = 0;
  double seconds = 0;
  bool from_cache = false;
};

/// Trains every weight of a CLIP started from clip_random_weights(config, seed) on the N images
/// of `pixels` with captions: sample i of epoch e gets template (i + e) mod T filled with
/// class_names[labels[i]]. Batches in seeded random order; a last batch of one is dropped. Each
/// batch's pixels are asked of `pixels` when it runs, so only one batch is preprocessed at a time.
/// `on_epoch(epoch, mean_loss)` follows each epoch. Returns the float32 weights (no autograd).
/// Throws std::invalid_argument for fewer than 2 samples, labels outside the class names, a bad
/// template (clip_fill_template) or a caption that does not fit the text context; a
/// std::runtime_error when the loss becomes non-finite (lower lr).
[[nodiscard]] TensorMap clip_pretrain(const ClipConfig& config, const ClipTokenizer& tokenizer,
                                      const ClipPixelSource& pixels, const at::Tensor& labels,
                                      const std::vector<std::string>& class_names,
                                      const std::vector<std::string>& templates, const ClipPretrainSettings& settings,
                                      uint64_t seed, ClipPretrainReport* report = nullptr,
                                      const std::function<void(int, double)>& on_epoch = {});

/// A string naming everything clip_pretrain's result depends on (config sizes, settings, seed,
/// class names, templates, sample count and a checksum of pixels and labels). The pixels are
/// read in ranges of 256 images.
[[nodiscard]] std::string clip_pretrain_key(const ClipConfig& config, const ClipPixelSource& pixels,
                                            const at::Tensor& labels, const std::vector<std::string>& class_names,
                                            const std::vector<std::string>& templates,
                                            const ClipPretrainSettings& settings, uint64_t seed);

/// clip_pretrain, cached in `cache_file` (safetensors, metadata "fedvlm.clip_pretrain_key" =
/// clip_pretrain_key): an existing file with the same key is loaded (and validated) instead of
/// training; a file with another key throws std::runtime_error naming it (delete it or choose
/// another path); otherwise the weights are trained, checked finite and saved atomically.
[[nodiscard]] TensorMap clip_pretrain_cached(const std::filesystem::path& cache_file, const ClipConfig& config,
                                             const ClipTokenizer& tokenizer, const ClipPixelSource& pixels,
                                             const at::Tensor& labels, const std::vector<std::string>& class_names,
                                             const std::vector<std::string>& templates,
                                             const ClipPretrainSettings& settings, uint64_t seed,
                                             ClipPretrainReport* report = nullptr,
                                             const std::function<void(int, double)>& on_epoch = {});

} // namespace fedvlm
