// fl/tasks/adapter_optimizer.cpp — the update rules of torch.optim.SGD, torch.optim.Adam and torch.optim.AdamW.
#include "fl/tasks/adapter_optimizer.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace fedvlm {

namespace {

at::Tensor& state_tensor(TensorMap& state, const std::string& key, const at::Tensor& like) {
  auto it = state.find(key);
  if (it == state.end()) it = state.emplace(key, at::zeros_like(like)).first;
  return it->second;
}

} // namespace

void optimizer_step(TensorMap& params, const std::set<std::string>& trainable, TensorMap& state,
                    const OptimizerSettings& s) {
  at::NoGradGuard no_grad;
  for (auto& [name, p] : params) {
    if (trainable.count(name) == 0 || !p.grad().defined()) continue;
    at::Tensor g = p.grad();
    if (s.kind == OptimizerKind::sgd) {
      if (s.weight_decay != 0) g = g.add(p, s.weight_decay);
      if (s.momentum != 0) {
        auto it = state.find(name + ".momentum");
        if (it == state.end()) {
          it = state.emplace(name + ".momentum", g.clone()).first; // torch: first buffer = grad
        } else {
          it->second.mul_(s.momentum).add_(g);
        }
        g = it->second;
      }
      p.add_(g, -s.lr);
    } else {
      at::Tensor& m = state_tensor(state, name + ".exp_avg", p);
      at::Tensor& v = state_tensor(state, name + ".exp_avg_sq", p);
      auto it = state.find(name + ".step");
      if (it == state.end()) it = state.emplace(name + ".step", at::zeros({}, at::kDouble)).first;
      it->second.add_(1);
      const double step = it->second.item<double>();
      if (s.kind == OptimizerKind::adamw) p.mul_(1 - s.lr * s.weight_decay);
      else if (s.weight_decay != 0) g = g.add(p, s.weight_decay); // Adam: L2 in the gradient
      m.mul_(s.beta1).add_(g, 1 - s.beta1);
      v.mul_(s.beta2).addcmul_(g, g, 1 - s.beta2);
      const double bc1 = 1 - std::pow(s.beta1, step);
      const double bc2 = 1 - std::pow(s.beta2, step);
      const at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(s.eps);
      p.addcdiv_(m, denom, -s.lr / bc1);
    }
  }
}

} // namespace fedvlm
