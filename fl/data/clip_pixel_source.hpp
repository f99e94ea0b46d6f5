// fl/data/clip_pixel_source.hpp — CLIP pixels made on demand, one batch at a time, from a pool's images.
//
// CLIP's preprocessing turns a 32 × 32 CIFAR-10 image into 3 × 224 × 224 floats, 49 times its
// size: the whole pool preprocessed at once is ~36 GB for CIFAR-10 at 224 px. A pixel source
// keeps the raw images and preprocesses only the images a caller asks for, so the vision tower's
// batch is the only preprocessed data alive at a time (ClipZeroShotTask encodes in ranges,
// clip_pretrain in random batches).
#pragma once

#include "model/clip_image_processor.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace fedvlm {

/// N images as CLIP pixels, produced on request.
class ClipPixelSource {
public:
  virtual ~ClipPixelSource() = default;

  /// N: the images this source holds.
  [[nodiscard]] virtual int64_t size() const = 0;
  /// Float pixels (K, 3, S, S) of the images at `indices` (K int64, each in [0, size()), any
  /// order, repeats allowed), in that order. Deterministic: the same image gives the same pixels.
  [[nodiscard]] virtual at::Tensor pixels(const at::Tensor& indices) const = 0;
  /// The images begin, ..., end - 1 (0 <= begin <= end <= size()), through pixels().
  [[nodiscard]] at::Tensor range(int64_t begin, int64_t end) const;
};

/// Pixels preprocessed beforehand (N, 3, S, S), handed out by index: for callers that already
/// hold them (tests, small pools). Holds a reference to `pixels`, not a copy. Throws
/// std::invalid_argument unless `pixels` is a floating (N, 3, H, W) tensor.
class ClipPixelTensor : public ClipPixelSource {
public:
  explicit ClipPixelTensor(at::Tensor pixels);
  [[nodiscard]] int64_t size() const override;
  [[nodiscard]] at::Tensor pixels(const at::Tensor& indices) const override;

private:
  at::Tensor pixels_;
};

/// Images (N, C, H, W), C = 1 (grey) or 3 (RGB), holding values in [0, 1], preprocessed on
/// request with CLIP's recipe at `image_size`: each image rounded to uint8 (×255, rounded,
/// clamped to [0, 255]), then clip_preprocess (grey → RGB, bicubic resize of the short side to
/// image_size, centre crop to image_size², CLIP's mean/std). Holds a reference to `images01`.
/// Throws std::invalid_argument for another shape or an image_size < 1.
class ClipPixelsFromImages : public ClipPixelSource {
public:
  ClipPixelsFromImages(at::Tensor images01, int64_t image_size);
  [[nodiscard]] int64_t size() const override;
  [[nodiscard]] at::Tensor pixels(const at::Tensor& indices) const override;

private:
  at::Tensor images01_;
  ClipImageProcessorConfig processor_;
};

/// Every image of `images01` at once, as ClipPixelsFromImages makes them: for small pools only
/// (the result is N × 3 × image_size² floats).
[[nodiscard]] at::Tensor clip_pixels_from_images(const at::Tensor& images01, int64_t image_size);

/// The same for grey images (N, 1, H, W) only (Fashion-MNIST-style). Throws
/// std::invalid_argument for another shape.
[[nodiscard]] at::Tensor clip_pixels_from_grey(const at::Tensor& images01, int64_t image_size);

} // namespace fedvlm
