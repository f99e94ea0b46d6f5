// fl/aggregation/compression.cpp — float16 / int8 / top-k encodings of an update, error feedback, encoded sizes.
#include "fl/aggregation/compression.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fedvlm {

namespace {

/// Symmetric int8 quantisation of `x` with one scale per row of `rows` (a [rows, n/rows] view).
at::Tensor int8_round_trip(const at::Tensor& x, int64_t rows) {
  const at::Tensor v = x.to(at::kFloat).reshape({rows, -1});
  at::Tensor scale = v.abs().amax(1, /*keepdim=*/true) / 127.0;
  scale = at::where(scale > 0, scale, at::ones_like(scale));
  const at::Tensor q = at::clamp(at::round(v / scale), -127, 127);
  return (q * scale).reshape(x.sizes()).to(x.scalar_type());
}

} // namespace

EncodedTensor compress_tensor(const at::Tensor& x, CompressionKind kind, double topk_fraction) {
  EncodedTensor out;
  const int64_t n = x.numel();
  switch (kind) {
  case CompressionKind::none:
    out.decoded = x;
    out.bytes = n * static_cast<int64_t>(x.element_size());
    return out;
  case CompressionKind::float16:
    out.decoded = x.to(at::kHalf).to(x.scalar_type());
    out.bytes = 2 * n;
    return out;
  case CompressionKind::int8:
    out.decoded = n == 0 ? x.clone() : int8_round_trip(x, 1);
    out.bytes = n + 4;
    return out;
  case CompressionKind::int8_row: {
    const int64_t rows = x.dim() == 0 || n == 0 ? 1 : x.size(0);
    out.decoded = n == 0 ? x.clone() : int8_round_trip(x, rows);
    out.bytes = n + 4 * rows;
    return out;
  }
  case CompressionKind::topk: {
    const int64_t k = n == 0 ? 0 : std::min<int64_t>(n, std::max<int64_t>(1, static_cast<int64_t>(std::ceil(topk_fraction * n - 1e-9))));
    const at::Tensor flat = x.reshape({-1});
    at::Tensor kept = at::zeros_like(flat);
    if (k > 0) {
      const at::Tensor idx = std::get<1>(at::topk(flat.abs(), k, /*dim=*/0, /*largest=*/true, /*sorted=*/true));
      kept.index_copy_(0, idx, flat.index_select(0, idx));
    }
    out.decoded = kept.reshape(x.sizes());
    out.bytes = 8 * k;
    return out;
  }
  }
  throw std::invalid_argument("compress_tensor: unknown compression");
}

int64_t encoded_bytes(const std::vector<std::vector<int64_t>>& shapes, const CompressionSettings& c) {
  int64_t total = 0;
  for (const auto& shape : shapes) {
    std::vector<int64_t> dims = shape.empty() ? std::vector<int64_t>{1} : shape;
    total += compress_tensor(at::zeros(dims), c.up, c.topk_fraction).bytes;
  }
  return total;
}

int64_t compress_update(TensorMap& sent, const TensorMap& received, TensorMap& residual, const CompressionSettings& c) {
  const bool feedback = c.up == CompressionKind::topk && c.error_feedback;
  int64_t bytes = 0;
  TensorMap next_residual;
  for (auto& [name, t] : sent) {
    at::Tensor base = at::zeros_like(t);
    if (auto r = received.find(name); r != received.end()) {
      if (!r->second.sizes().equals(t.sizes()))
        throw std::invalid_argument("compress_update: '" + name + "' was received as " + tensor_shape_string(r->second.sizes()) +
                                    " and is sent as " + tensor_shape_string(t.sizes()));
      base = r->second.to(t.scalar_type());
    }
    at::Tensor delta = t - base;
    if (feedback)
      if (auto e = residual.find(name); e != residual.end() && e->second.sizes().equals(t.sizes())) delta = delta + e->second;
    EncodedTensor enc = compress_tensor(delta, c.up, c.topk_fraction);
    bytes += enc.bytes;
    if (feedback) next_residual[name] = (delta - enc.decoded).contiguous();
    t = (base + enc.decoded).contiguous();
  }
  residual = std::move(next_residual);
  return bytes;
}

} // namespace fedvlm
