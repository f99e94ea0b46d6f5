// model/max_pool_2x2.cpp — the branch-free 2×2 max-pool and its gradient, as an autograd function.
#include "model/max_pool_2x2.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <cstring>

namespace fedvlm {
namespace {

// Four lanes of floats and of their 32-bit masks (GCC/Clang vector extensions: SSE2 on x86-64,
// NEON on ARM, no intrinsics). Written as lanes because GCC 12 compiles the scalar selects below
// back into data-dependent branches, which is what made ATen's pooling slow.
using f4 = float __attribute__((vector_size(16)));
using i4 = int32_t __attribute__((vector_size(16)));

f4 load4(const float* p) {
  f4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store4(float* p, f4 v) { std::memcpy(p, &v, sizeof v); }

/// ATen's scan of one window, one value at a time: v (window position `pos`) wins when greater
/// than the maximum so far, or NaN (nothing compares greater than a NaN so far, so the last NaN
/// wins and the first of equal maxima stays).
template <typename F, typename I>
void scan_step(F v, int32_t pos, F& m, I& at) {
  const auto wins = (v > m) | (v != v);
  m = wins ? v : m;
  at = wins ? I{} + pos : at;
}

// One output row: r0 and r1 are the two input rows of its windows, each window read a (r0, 2j),
// b (r0, 2j+1), c (r1, 2j), d (r1, 2j+1) as ATen scans it, starting from a (ATen starts from -inf
// with a's index: the same winner).
void pool_row(const float* r0, const float* r1, int64_t ow, float* out, uint8_t* which) {
  int64_t j = 0;
  for (; j + 4 <= ow; j += 4) {
    const f4 x0 = load4(r0 + 2 * j), x1 = load4(r0 + 2 * j + 4);
    const f4 y0 = load4(r1 + 2 * j), y1 = load4(r1 + 2 * j + 4);
    f4 m = __builtin_shufflevector(x0, x1, 0, 2, 4, 6);
    i4 at = {0, 0, 0, 0};
    scan_step<f4, i4>(__builtin_shufflevector(x0, x1, 1, 3, 5, 7), 1, m, at);
    scan_step<f4, i4>(__builtin_shufflevector(y0, y1, 0, 2, 4, 6), 2, m, at);
    scan_step<f4, i4>(__builtin_shufflevector(y0, y1, 1, 3, 5, 7), 3, m, at);
    store4(out + j, m);
    for (int l = 0; l < 4; ++l) which[j + l] = static_cast<uint8_t>(at[l]);
  }
  for (; j < ow; ++j) {
    float m = r0[2 * j];
    int32_t at = 0;
    scan_step<float, int32_t>(r0[2 * j + 1], 1, m, at);
    scan_step<float, int32_t>(r1[2 * j], 2, m, at);
    scan_step<float, int32_t>(r1[2 * j + 1], 3, m, at);
    out[j] = m;
    which[j] = static_cast<uint8_t>(at);
  }
}

// One (H, W) plane: out (H/2, W/2) and which (the winner's position in its window, 0..3).
void pool_plane(const float* in, int64_t w, int64_t oh, int64_t ow, float* out, uint8_t* which) {
  for (int64_t i = 0; i < oh; ++i) pool_row(in + (2 * i) * w, in + (2 * i + 1) * w, ow, out + i * ow, which + i * ow);
}

/// The gradient of one output row into its two input rows: 0 + g at each window's winner (ATen
/// adds into zeros, so a -0 gradient arrives as +0), 0 elsewhere.
void unpool_row(const float* grad, const uint8_t* which, int64_t ow, float* r0, float* r1) {
  int64_t j = 0;
  const f4 zero = {0, 0, 0, 0};
  for (; j + 4 <= ow; j += 4) {
    const f4 g = zero + load4(grad + j);
    const i4 at = {which[j], which[j + 1], which[j + 2], which[j + 3]};
    const f4 a = at == 0 ? g : zero, b = at == 1 ? g : zero, c = at == 2 ? g : zero, d = at == 3 ? g : zero;
    store4(r0 + 2 * j, __builtin_shufflevector(a, b, 0, 4, 1, 5));
    store4(r0 + 2 * j + 4, __builtin_shufflevector(a, b, 2, 6, 3, 7));
    store4(r1 + 2 * j, __builtin_shufflevector(c, d, 0, 4, 1, 5));
    store4(r1 + 2 * j + 4, __builtin_shufflevector(c, d, 2, 6, 3, 7));
  }
  for (; j < ow; ++j) {
    const float g = 0.0f + grad[j];
    const uint8_t at = which[j];
    r0[2 * j] = at == 0 ? g : 0.0f;
    r0[2 * j + 1] = at == 1 ? g : 0.0f;
    r1[2 * j] = at == 2 ? g : 0.0f;
    r1[2 * j + 1] = at == 3 ? g : 0.0f;
  }
}

void unpool_plane(const float* grad, const uint8_t* which, int64_t w, int64_t oh, int64_t ow, float* gin) {
  for (int64_t i = 0; i < oh; ++i)
    unpool_row(grad + i * ow, which + i * ow, ow, gin + (2 * i) * w, gin + (2 * i + 1) * w);
}

// Grain for at::parallel_for over planes: split only when the planes hold real work.
constexpr int64_t kPlaneGrain = 16;

class MaxPool2x2 : public torch::autograd::Function<MaxPool2x2> {
public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    const at::Tensor in = x.contiguous();
    const int64_t n = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3);
    const int64_t oh = h / 2, ow = w / 2;
    at::Tensor out = at::empty({n, c, oh, ow}, in.options());
    at::Tensor which = at::empty({n, c, oh, ow}, in.options().dtype(at::kByte));
    const float* src = in.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    uint8_t* k = which.data_ptr<uint8_t>();
    at::parallel_for(0, n * c, kPlaneGrain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) pool_plane(src + p * h * w, w, oh, ow, dst + p * oh * ow, k + p * oh * ow);
    });
    ctx->save_for_backward({which});
    ctx->saved_data["h"] = h;
    ctx->saved_data["w"] = w;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor which = ctx->get_saved_variables()[0];
    const int64_t h = ctx->saved_data["h"].toInt(), w = ctx->saved_data["w"].toInt();
    const at::Tensor grad = grads[0].contiguous();
    const int64_t n = which.size(0), c = which.size(1), oh = which.size(2), ow = which.size(3);
    // An odd last row or column took no part: its gradient is 0, as ATen's.
    at::Tensor gin = (h % 2 != 0 || w % 2 != 0) ? at::zeros({n, c, h, w}, grad.options())
                                                : at::empty({n, c, h, w}, grad.options());
    const float* g = grad.data_ptr<float>();
    const uint8_t* k = which.data_ptr<uint8_t>();
    float* dst = gin.data_ptr<float>();
    at::parallel_for(0, n * c, kPlaneGrain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) unpool_plane(g + p * oh * ow, k + p * oh * ow, w, oh, ow, dst + p * h * w);
    });
    return {gin};
  }
};

} // namespace

at::Tensor max_pool_2x2(const at::Tensor& x) {
  const bool ours = x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == at::kFloat && x.size(2) >= 2 &&
                    x.size(3) >= 2 && x.layout() == at::kStrided;
  if (!ours) return at::max_pool2d(x, {2, 2});
  return MaxPool2x2::apply(x);
}

} // namespace fedvlm
