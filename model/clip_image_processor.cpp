// model/clip_image_processor.cpp — preprocessor_config.json → settings; uint8 image → CLIP pixel tensor.
#include "model/clip_image_processor.hpp"

#include "model/image_processor.hpp"
#include "model/json_error.hpp"
#include "model/tensor_map.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <utility>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void fail(const fs::path& file, const std::string& key, const std::string& expected) {
  throw std::runtime_error(file.string() + ": key '" + key + "': expected " + expected);
}

int64_t read_integer(const fs::path& file, const std::string& key, const json& v) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1) fail(file, key, "an integer >= 1, got " + v.dump());
  return v.get<int64_t>();
}

bool read_flag(const fs::path& file, const json& root, const std::string& key, bool fallback) {
  if (!root.contains(key) || root[key].is_null()) return fallback;
  if (!root[key].is_boolean()) fail(file, key, "true or false, got " + root[key].dump());
  return root[key].get<bool>();
}

std::vector<double> read_triple(const fs::path& file, const json& root, const std::string& key,
                                std::vector<double> fallback, bool positive) {
  if (!root.contains(key) || root[key].is_null()) return fallback;
  const json& v = root[key];
  const std::string what = positive ? "a list of 3 numbers > 0" : "a list of 3 numbers";
  if (!v.is_array() || v.size() != 3) fail(file, key, what + ", got " + v.dump());
  std::vector<double> out;
  for (const json& e : v) {
    if (!e.is_number() || (positive && !(e.get<double>() > 0.0))) fail(file, key, what + ", got " + v.dump());
    out.push_back(e.get<double>());
  }
  return out;
}

// Any supported layout → 8-bit RGB, row-major HWC.
RgbImage to_rgb(const at::Tensor& image) {
  if (image.scalar_type() != at::kByte)
    throw std::invalid_argument("clip_preprocess: expected a uint8 image, got " +
                                std::string(c10::toString(image.scalar_type())));
  at::Tensor hwc;
  if (image.dim() == 2) {
    hwc = image.unsqueeze(2);
  } else if (image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3)) {
    hwc = image.permute({1, 2, 0});
  } else if (image.dim() == 3 && (image.size(2) == 1 || image.size(2) == 3)) {
    hwc = image;
  } else {
    throw std::invalid_argument("clip_preprocess: expected (H, W), (C, H, W) or (H, W, C) with C = 1 or 3, got " +
                                tensor_shape_string(image.sizes()));
  }
  if (hwc.size(0) < 1 || hwc.size(1) < 1)
    throw std::invalid_argument("clip_preprocess: empty image " + tensor_shape_string(image.sizes()));
  if (hwc.size(2) == 1) hwc = hwc.expand({hwc.size(0), hwc.size(1), 3}); // grey → RGB, as PIL convert("RGB")
  hwc = hwc.contiguous();
  RgbImage out;
  out.height = hwc.size(0);
  out.width = hwc.size(1);
  const uint8_t* p = hwc.data_ptr<uint8_t>();
  out.pixels.assign(p, p + hwc.numel());
  return out;
}

// Hugging Face's center_crop: offsets (size - crop) // 2 (floor); where the image is smaller
// than the crop it is first centred on zeros, ceil((crop - size) / 2) before it. Returns HWC.
at::Tensor center_crop(const at::Tensor& hwc, int64_t crop_h, int64_t crop_w) {
  const int64_t h = hwc.size(0), w = hwc.size(1);
  auto floor_div2 = [](int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  int64_t top = floor_div2(h - crop_h), left = floor_div2(w - crop_w);
  if (top >= 0 && left >= 0) return hwc.slice(0, top, top + crop_h).slice(1, left, left + crop_w);
  const int64_t new_h = std::max(crop_h, h), new_w = std::max(crop_w, w);
  const int64_t top_pad = (new_h - h + 1) / 2, left_pad = (new_w - w + 1) / 2;
  at::Tensor padded = at::zeros({new_h, new_w, hwc.size(2)}, hwc.options());
  padded.slice(0, top_pad, top_pad + h).slice(1, left_pad, left_pad + w).copy_(hwc);
  top += top_pad;
  left += left_pad;
  return padded.slice(0, std::max<int64_t>(0, top), std::min(new_h, top + crop_h))
      .slice(1, std::max<int64_t>(0, left), std::min(new_w, left + crop_w));
}

at::Tensor process_rgb(const RgbImage& rgb, const ClipImageProcessorConfig& c) {
  if (c.image_mean.size() != 3 || c.image_std.size() != 3)
    throw std::invalid_argument("clip_preprocess: image_mean and image_std need 3 entries");
  RgbImage img = rgb;
  if (c.do_resize) {
    if (c.resample != 3) throw std::invalid_argument("clip_preprocess: only resample 3 (bicubic) is implemented");
    const auto [h, w] = clip_resize_size(img.height, img.width, c.shortest_edge);
    img = resize_bicubic(img, w, h);
  }
  at::Tensor hwc = at::from_blob(img.pixels.data(), {img.height, img.width, 3}, at::kByte);
  if (c.do_center_crop) hwc = center_crop(hwc, c.crop_height, c.crop_width);
  const at::Tensor chw = hwc.permute({2, 0, 1}).contiguous();
  // HF rescales in float64 and stores float32, then normalises in float32.
  at::Tensor x = c.do_rescale ? (chw.to(at::kDouble) * c.rescale_factor).to(at::kFloat) : chw.to(at::kFloat);
  if (c.do_normalize) {
    const at::Tensor mean = at::tensor(c.image_mean, at::kDouble).to(at::kFloat).view({3, 1, 1});
    const at::Tensor std = at::tensor(c.image_std, at::kDouble).to(at::kFloat).view({3, 1, 1});
    x = (x - mean) / std;
  }
  return x.contiguous();
}

} // namespace

std::pair<int64_t, int64_t> clip_resize_size(int64_t height, int64_t width, int64_t shortest_edge) {
  if (height < 1 || width < 1 || shortest_edge < 1)
    throw std::invalid_argument("clip_resize_size: sizes must be >= 1");
  const int64_t short_side = std::min(height, width), long_side = std::max(height, width);
  const auto new_long =
      static_cast<int64_t>(static_cast<double>(shortest_edge * long_side) / static_cast<double>(short_side));
  return width <= height ? std::pair{new_long, shortest_edge} : std::pair{shortest_edge, new_long};
}

ClipImageProcessorConfig clip_image_processor_config_from_hf(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot be opened");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(file.string() + ": not valid JSON (" + json_error_text(e) + ")");
  }
  if (!root.is_object()) throw std::runtime_error(file.string() + ": expected a JSON object");
  ClipImageProcessorConfig c;
  c.do_convert_rgb = read_flag(file, root, "do_convert_rgb", c.do_convert_rgb);
  c.do_resize = read_flag(file, root, "do_resize", c.do_resize);
  c.do_center_crop = read_flag(file, root, "do_center_crop", c.do_center_crop);
  c.do_rescale = read_flag(file, root, "do_rescale", c.do_rescale);
  c.do_normalize = read_flag(file, root, "do_normalize", c.do_normalize);
  if (root.contains("size") && !root["size"].is_null()) {
    const json& s = root["size"];
    if (s.is_object()) {
      if (!s.contains("shortest_edge"))
        fail(file, "size", "{\"shortest_edge\": n} (CLIP resizes the shortest side), got " + s.dump());
      c.shortest_edge = read_integer(file, "size.shortest_edge", s["shortest_edge"]);
    } else {
      c.shortest_edge = read_integer(file, "size", s);
    }
  }
  if (root.contains("crop_size") && !root["crop_size"].is_null()) {
    const json& s = root["crop_size"];
    if (s.is_object()) {
      if (!s.contains("height") || !s.contains("width"))
        fail(file, "crop_size", "{\"height\": h, \"width\": w}, got " + s.dump());
      c.crop_height = read_integer(file, "crop_size.height", s["height"]);
      c.crop_width = read_integer(file, "crop_size.width", s["width"]);
    } else {
      c.crop_height = c.crop_width = read_integer(file, "crop_size", s);
    }
  }
  if (root.contains("resample") && !root["resample"].is_null()) {
    if (!root["resample"].is_number_integer() || root["resample"].get<int64_t>() != 3)
      fail(file, "resample", "3 (PIL BICUBIC, the only filter implemented), got " + root["resample"].dump());
  }
  if (root.contains("rescale_factor") && !root["rescale_factor"].is_null()) {
    if (!root["rescale_factor"].is_number() || !(root["rescale_factor"].get<double>() > 0.0))
      fail(file, "rescale_factor", "a number > 0, got " + root["rescale_factor"].dump());
    c.rescale_factor = root["rescale_factor"].get<double>();
  }
  c.image_mean = read_triple(file, root, "image_mean", c.image_mean, false);
  c.image_std = read_triple(file, root, "image_std", c.image_std, true);
  return c;
}

at::Tensor clip_preprocess(const at::Tensor& image, const ClipImageProcessorConfig& config) {
  return process_rgb(to_rgb(image), config);
}

at::Tensor clip_preprocess_bytes(const std::vector<uint8_t>& bytes, const ClipImageProcessorConfig& config,
                                 const std::string& name_for_errors) {
  return process_rgb(decode_rgb(bytes, name_for_errors), config);
}

} // namespace fedvlm
