// model/image_processor.hpp — decode JPEG/PNG, resize like PIL BICUBIC, normalise (Florence-2 input).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

/// Florence-2's CLIPImageProcessor settings: resize to size × size (no aspect keep), /255,
/// (x - mean) / std per channel.
struct ImageProcessorConfig {
  int64_t size = 768;
  std::vector<double> mean{0.485, 0.456, 0.406};
  std::vector<double> std{0.229, 0.224, 0.225};
};

/// 8-bit RGB pixels, row-major, 3 bytes per pixel.
struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;
};

/// The most pixels decode_rgb accepts, checked on the header's claimed width x height before
/// anything is allocated: PIL's DecompressionBombError threshold (2 x Image.MAX_IMAGE_PIXELS,
/// about 179 megapixels, 537 MB as RGB), far above any photo a VLM is fed at 768 x 768.
constexpr int64_t kMaxImagePixels = 2 * 89'478'485;

/// Decodes PNG, JPEG, BMP or GIF (first frame) bytes to RGB: grey is replicated and alpha
/// dropped, as PIL's convert("RGB") does. JPEG goes through libjpeg-turbo like PIL (CMYK via
/// stb_image), the rest through stb_image; PNG and JPEG pixels match PIL's exactly. Throws std::runtime_error naming `name_for_errors`
/// and the reason (empty, not an image / unsupported format, truncated, corrupt, or a claimed
/// size beyond kMaxImagePixels).
[[nodiscard]] RgbImage decode_rgb(const std::vector<uint8_t>& bytes,
                                  const std::string& name_for_errors);

/// Resize with PIL's Image.resize(..., BICUBIC) algorithm, bit for bit: separable a = -0.5
/// cubic widened by the scale when shrinking (antialias), 22-bit fixed-point weights,
/// horizontal pass then vertical, each rounded and clipped to uint8.
[[nodiscard]] RgbImage resize_bicubic(const RgbImage& in, int64_t out_width, int64_t out_height);

/// decode_rgb → resize_bicubic to size × size → /255 → normalise: (3, size, size) float32,
/// matching Hugging Face's CLIPImageProcessor with PIL.
[[nodiscard]] at::Tensor decode_image_tensor(const std::vector<uint8_t>& bytes,
                                             const ImageProcessorConfig& config,
                                             const std::string& name_for_errors);
/// Reads `file` and calls decode_image_tensor; a missing or unreadable file names it.
[[nodiscard]] at::Tensor load_image_tensor(const std::filesystem::path& file,
                                           const ImageProcessorConfig& config);

/// Writes a (H, W, C) uint8 tensor, C = 1 (grey), 3 (RGB) or 4 (RGBA), as PNG / JPEG. For
/// fixtures and synthetic data sets; throws naming the file on a bad tensor or write error.
void write_png(const std::filesystem::path& file, const at::Tensor& rgb_uint8_hwc);
void write_jpeg(const std::filesystem::path& file, const at::Tensor& rgb_uint8_hwc,
                int quality = 95);

} // namespace fedvlm
