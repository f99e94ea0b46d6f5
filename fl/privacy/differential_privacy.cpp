// fl/privacy/differential_privacy.cpp — update clipping in float64 and seeded Gaussian noise over TensorMap.
#include "fl/privacy/differential_privacy.hpp"

#include "model/tensor_map.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fedvlm {
namespace {

std::string number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

void check_multiplier_and_clip(const char* fn, double noise_multiplier, double clip_norm) {
  if (!(noise_multiplier >= 0.0 && std::isfinite(noise_multiplier)))
    throw std::invalid_argument(std::string(fn) + ": noise multiplier must be >= 0 and finite, got " +
                                number(noise_multiplier));
  if (!(clip_norm > 0.0 && std::isfinite(clip_norm)))
    throw std::invalid_argument(std::string(fn) + ": clip_norm must be > 0 and finite, got " + number(clip_norm));
}

} // namespace

double clip_update(TensorMap& update, const TensorMap& reference, double clip_norm) {
  if (!(clip_norm > 0.0 && std::isfinite(clip_norm)))
    throw std::invalid_argument("clip_update: clip_norm must be > 0 and finite, got " + number(clip_norm));
  for (const auto& [name, ref] : reference)
    if (update.count(name) == 0)
      throw std::invalid_argument("clip_update: the update has no '" + name + "' but the reference does");

  // Δ in float64, kept for the write-back; sum of squares in float64, in name order.
  TensorMap deltas;
  double sum_sq = 0.0;
  for (const auto& [name, t] : update) {
    auto it = reference.find(name);
    if (it == reference.end())
      throw std::invalid_argument("clip_update: the reference has no '" + name + "' but the update does");
    if (!t.is_floating_point() || !it->second.is_floating_point())
      throw std::invalid_argument("clip_update: '" + name + "' must be floating point");
    if (!t.sizes().equals(it->second.sizes()))
      throw std::invalid_argument("clip_update: '" + name + "' has shape " + tensor_shape_string(t.sizes()) +
                                  " in the update but " + tensor_shape_string(it->second.sizes()) +
                                  " in the reference");
    at::Tensor d = t.to(at::kDouble) - it->second.to(t.device(), at::kDouble);
    const double sq = d.square().sum().item<double>();
    if (!std::isfinite(sq))
      throw std::invalid_argument("clip_update: the update of '" + name + "' is not finite (nan or inf)");
    sum_sq += sq;
    deltas.emplace(name, std::move(d));
  }
  const double norm = std::sqrt(sum_sq);
  if (norm <= clip_norm) return norm;

  const double scale = clip_norm / norm;
  for (auto& [name, t] : update) {
    const at::Tensor& ref = reference.at(name);
    t = (ref.to(t.device(), at::kDouble) + deltas.at(name) * scale).to(t.scalar_type());
  }
  return norm;
}

void add_gaussian_noise(TensorMap& tensors, double stddev, at::Generator& gen) {
  if (!(stddev >= 0.0 && std::isfinite(stddev)))
    throw std::invalid_argument("add_gaussian_noise: stddev must be >= 0 and finite, got " + number(stddev));
  for (const auto& [name, t] : tensors)
    if (!t.is_floating_point())
      throw std::invalid_argument("add_gaussian_noise: '" + name + "' must be floating point");
  if (stddev == 0.0) return;
  for (auto& [name, t] : tensors) {
    // Drawn on the CPU in float64 whatever the tensor, so the stream depends only on seed and shapes.
    const at::Tensor noise = at::normal(0.0, stddev, t.sizes(), gen, at::TensorOptions().dtype(at::kDouble));
    t = (t.to(at::kDouble) + noise.to(t.device())).to(t.scalar_type());
  }
}

double central_noise_stddev(double noise_multiplier, double clip_norm, int clients_per_round) {
  check_multiplier_and_clip("central_noise_stddev", noise_multiplier, clip_norm);
  if (clients_per_round < 1)
    throw std::invalid_argument("central_noise_stddev: clients_per_round must be >= 1, got " +
                                std::to_string(clients_per_round));
  return noise_multiplier * clip_norm / static_cast<double>(clients_per_round);
}

double local_noise_stddev(double noise_multiplier, double clip_norm) {
  check_multiplier_and_clip("local_noise_stddev", noise_multiplier, clip_norm);
  return noise_multiplier * clip_norm;
}

} // namespace fedvlm
