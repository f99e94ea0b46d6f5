// fl/aggregation/compression.hpp — compressed updates: float16, int8 (per tensor or per row), top-k with error feedback, and their encoded sizes.
//
// What a client sends up is its update d = sent − received (the change from the shared tensors
// it started the round from). It is encoded, the encoded size counted as the bytes sent, and the
// server sees the decoded update: received + decode(encode(d)). Plain functions over tensors;
// the encodings are simulated (decode ∘ encode is computed directly), the sizes are those of
// the stated wire format:
//
// | kind       | wire format                                       | bytes              | error per entry          |
// | ---------- | ------------------------------------------------- | ------------------ | ------------------------ |
// | `float16`  | IEEE half per entry                               | 2 n                | half's rounding (2^-11 relative) |
// | `int8`     | one float32 scale max|d|/127, an int8 per entry   | n + 4              | <= scale / 2             |
// | `int8_row` | a float32 scale per row (dim 0), an int8 per entry | n + 4 rows        | <= its row's scale / 2   |
// | `topk`     | the k = ceil(fraction n) largest |d|: float32 value + int32 index | 8 k | 0 on the k, d elsewhere |
//
// Top-k with error feedback keeps what was not sent on the client (`residual`) and adds it to
// the next round's update (Stich et al. 2018), so nothing is lost for good.
#pragma once

#include "fl/config/experiment_config.hpp"
#include "model/tensor_map.hpp"

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace fedvlm {

/// A tensor after encoding: what the receiver decodes, and the encoded size in bytes.
struct EncodedTensor {
  at::Tensor decoded; ///< the input's dtype and shape
  int64_t bytes = 0;
};

/// Encodes and decodes `x` with `kind` (`none`: x itself at its own size).
[[nodiscard]] EncodedTensor compress_tensor(const at::Tensor& x, CompressionKind kind, double topk_fraction);

/// The encoded bytes of tensors of `shapes` (float32) under `settings`, by the table above
/// (the dry-run's estimate; the run counts each update's own encoded size).
[[nodiscard]] int64_t encoded_bytes(const std::vector<std::vector<int64_t>>& shapes, const CompressionSettings& settings);

/// Compresses the update in `sent` (relative to `received`; a tensor missing there counts from
/// zero) in place: sent := received + decode(encode(d + residual)); with topk and error feedback
/// `residual` becomes what was not sent, otherwise it is cleared. Returns the encoded bytes.
/// Throws std::invalid_argument when a received tensor's shape differs.
int64_t compress_update(TensorMap& sent, const TensorMap& received, TensorMap& residual, const CompressionSettings& settings);

} // namespace fedvlm
