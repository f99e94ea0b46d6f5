// fl/data/clip_pixel_source.cpp — pixel sources: preprocessed tensors handed out by index, raw images preprocessed on request.
#include "fl/data/clip_pixel_source.hpp"

#include "model/tensor_map.hpp"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {

at::Tensor ClipPixelSource::range(int64_t begin, int64_t end) const {
  if (begin < 0 || begin > end || end > size())
    throw std::invalid_argument("ClipPixelSource::range: expected 0 <= begin <= end <= " + std::to_string(size()) +
                                ", got [" + std::to_string(begin) + ", " + std::to_string(end) + ")");
  return pixels(at::arange(begin, end, at::kLong));
}

ClipPixelTensor::ClipPixelTensor(at::Tensor pixels) : pixels_(std::move(pixels)) {
  if (!pixels_.defined() || pixels_.dim() != 4 || pixels_.size(1) != 3 || !pixels_.is_floating_point())
    throw std::invalid_argument("ClipPixelTensor: expected preprocessed float pixels (N, 3, S, S), got " +
                                (pixels_.defined() ? tensor_shape_string(pixels_.sizes()) : std::string("nothing")));
}

int64_t ClipPixelTensor::size() const { return pixels_.size(0); }

at::Tensor ClipPixelTensor::pixels(const at::Tensor& indices) const { return pixels_.index_select(0, indices); }

ClipPixelsFromImages::ClipPixelsFromImages(at::Tensor images01, int64_t image_size) : images01_(std::move(images01)) {
  if (!images01_.defined() || images01_.dim() != 4 || (images01_.size(1) != 1 && images01_.size(1) != 3) ||
      image_size < 1)
    throw std::invalid_argument("ClipPixelsFromImages: expected images (N, 1 or 3, H, W) holding values in [0, 1] "
                                "and an image size >= 1, got " +
                                (images01_.defined() ? tensor_shape_string(images01_.sizes()) : std::string("nothing")) +
                                " and " + std::to_string(image_size));
  processor_.shortest_edge = image_size;
  processor_.crop_height = processor_.crop_width = image_size;
}

int64_t ClipPixelsFromImages::size() const { return images01_.size(0); }

at::Tensor ClipPixelsFromImages::pixels(const at::Tensor& indices) const {
  // uint8 first, as the images CLIP's processor was written for: its resize and rescale steps
  // assume PIL's byte images.
  const at::Tensor bytes = images01_.index_select(0, indices).mul(255.0).round().clamp(0, 255).to(at::kByte);
  if (bytes.size(0) == 0) return at::empty({0, 3, processor_.crop_height, processor_.crop_width}, at::kFloat);
  std::vector<at::Tensor> out;
  out.reserve(static_cast<std::size_t>(bytes.size(0)));
  for (int64_t i = 0; i < bytes.size(0); ++i) out.push_back(clip_preprocess(bytes[i], processor_));
  return at::stack(out);
}

at::Tensor clip_pixels_from_images(const at::Tensor& images01, int64_t image_size) {
  const ClipPixelsFromImages source(images01, image_size);
  return source.range(0, source.size());
}

at::Tensor clip_pixels_from_grey(const at::Tensor& images01, int64_t image_size) {
  if (images01.dim() != 4 || images01.size(1) != 1 || image_size < 1)
    throw std::invalid_argument("clip_pixels_from_grey: expected grey images (N, 1, H, W) in [0, 1] and an image "
                                "size >= 1, got " + tensor_shape_string(images01.sizes()) + " and " +
                                std::to_string(image_size));
  return clip_pixels_from_images(images01, image_size);
}

} // namespace fedvlm
