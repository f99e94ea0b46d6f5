// model/max_pool_2x2.hpp — at::max_pool2d(x, {2, 2}) with the same outputs and gradients, bit for bit, without its branches.
//
// LibTorch 1.13's CPU max-pool compares element by element with a data-dependent branch; on the
// classic nets' small float maps those branches mispredict about half the time, and the pooling
// took a quarter of a Fashion-MNIST FedAvg run's CPU time (perf, 2026-12-07). This one picks each
// 2×2 window's winner with selects instead. It keeps ATen's rule exactly: the window is scanned
// row by row, a later value wins when it is greater or NaN (so the first of equal maxima wins and
// the last NaN), the output drops an odd last row or column (floor mode), and the gradient is
// 0 + the output's gradient at the winner, 0 elsewhere (as ATen adds into zeros: -0 becomes +0).
// Anything else — another dtype, a non-CPU tensor, other than 4 dimensions — goes to
// at::max_pool2d itself.
#pragma once

#include <ATen/core/Tensor.h>

namespace fedvlm {

/// x (N, C, H, W) → (N, C, H / 2, W / 2): the maximum of each 2×2 window, stride 2, no padding.
[[nodiscard]] at::Tensor max_pool_2x2(const at::Tensor& x);

} // namespace fedvlm
