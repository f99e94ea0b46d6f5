// model/clip_image_processor.hpp — CLIP's image preprocessing (HF CLIPImageProcessor) from preprocessor_config.json.
//
// The steps and their order are those of Hugging Face's CLIPImageProcessor on a PIL-backed
// uint8 image: convert to RGB → resize so the shortest side is `shortest_edge` (PIL BICUBIC,
// which antialiases when shrinking; model/image_processor's resize_bicubic reproduces it bit for
// bit) → centre crop (zero padding where the image is smaller than the crop) → rescale (×1/255,
// in float64, then float32) → normalise with CLIP's mean/std in float32.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

struct ClipImageProcessorConfig {
  bool do_convert_rgb = true; ///< grey (1 channel) always becomes RGB: the model needs 3 channels
  bool do_resize = true;
  int64_t shortest_edge = 224;
  int64_t resample = 3; ///< PIL's BICUBIC, the only filter implemented
  bool do_center_crop = true;
  int64_t crop_height = 224;
  int64_t crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::vector<double> image_mean{0.48145466, 0.4578275, 0.40821073}; ///< OpenAI's CLIP mean
  std::vector<double> image_std{0.26862954, 0.26130258, 0.27577711};
};

/// Reads a Hugging Face `preprocessor_config.json` of a CLIPImageProcessor (or the older
/// CLIPFeatureExtractor): `size` as {"shortest_edge": n} or a bare integer, `crop_size` as
/// {"height": h, "width": w} or a bare integer, the do_* flags, rescale_factor, image_mean,
/// image_std, resample. Absent keys keep the defaults above (openai/clip-vit-base-patch32's).
/// Throws std::runtime_error naming the file, the key and what was expected; also for a
/// resample other than 3 and for {"height", "width"} resize sizes (not CLIP's rule).
[[nodiscard]] ClipImageProcessorConfig clip_image_processor_config_from_hf(const std::filesystem::path& file);

/// One uint8 image → float32 (3, H, W): (crop_height, crop_width) when cropping, else the
/// resized size. Layouts: (H, W) grey; (C, H, W) when the first dimension is 1 or 3, else
/// (H, W, C) with C = 1 or 3 (Hugging Face's inference of the channel axis, channels-first
/// preferred). Throws std::invalid_argument on another dtype, rank or channel count.
[[nodiscard]] at::Tensor clip_preprocess(const at::Tensor& image, const ClipImageProcessorConfig& config);

/// The same for encoded PNG / JPEG / BMP / GIF bytes (decode_rgb); errors name `name_for_errors`.
[[nodiscard]] at::Tensor clip_preprocess_bytes(const std::vector<uint8_t>& bytes,
                                               const ClipImageProcessorConfig& config,
                                               const std::string& name_for_errors);

/// Hugging Face's resize target for `shortest_edge` = s: the short side becomes s, the long one
/// int(s · long / short) (truncated). Returns {height, width}.
[[nodiscard]] std::pair<int64_t, int64_t> clip_resize_size(int64_t height, int64_t width, int64_t shortest_edge);

} // namespace fedvlm
