// model/classic_nets.cpp — cnn_mnist, cnn_fedavg and mlp_2nn as TensorMaps of torch.nn-named weights and ATen forwards.
#include "model/classic_nets.hpp"
#include "model/max_pool_2x2.hpp"
#include "support/join.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {
namespace {

constexpr int64_t kImageSide = 28;
constexpr int64_t kImageChannels = 1;
constexpr double kDropout = 0.5; // nn.Dropout2d() and F.dropout's default, as the example uses

// -- initialisation as torch.nn does it ---------------------------------------------------------

// nn.init.kaiming_uniform_(w, a=math.sqrt(5)) computes its bound in exactly these steps
// (calculate_gain("leaky_relu", a), then gain / √fan, then √3 · std); doing the same double
// arithmetic gives the same bound bit for bit, hence the same weights for the same seed.
double kaiming_uniform_bound(int64_t fan_in) {
  const double a = std::sqrt(5.0);
  const double gain = std::sqrt(2.0 / (1.0 + std::pow(a, 2.0)));
  const double std_dev = gain / std::sqrt(static_cast<double>(fan_in));
  return std::sqrt(3.0) * std_dev;
}

// Weight then bias, as nn.Linear / nn.Conv2d reset_parameters() draw them.
void init_module(TensorMap& state, const std::string& module, at::IntArrayRef weight_shape,
                 at::Generator& gen) {
  int64_t fan_in = 1;
  for (size_t i = 1; i < weight_shape.size(); ++i) fan_in *= weight_shape[i];
  at::Tensor w = at::empty(weight_shape, at::kFloat);
  const double wb = kaiming_uniform_bound(fan_in);
  w.uniform_(-wb, wb, gen);
  at::Tensor b = at::empty({weight_shape[0]}, at::kFloat);
  const double bb = 1.0 / std::sqrt(static_cast<double>(fan_in));
  b.uniform_(-bb, bb, gen);
  state[module + ".weight"] = std::move(w);
  state[module + ".bias"] = std::move(b);
}

// -- shared pieces ------------------------------------------------------------------------------

/// nn.Dropout2d: zeroes whole channels of (N, C, H, W), one draw per (sample, channel), and
/// rescales survivors by 1/(1-p). Draws from ctx.generator when set, like dropout_with.
at::Tensor channel_dropout_with(const at::Tensor& x, double p, const ForwardContext& ctx) {
  if (!ctx.dropout_active || p <= 0.0) return x;
  if (ctx.clients)
    return for_each_client_rows(x, ctx, [p](const at::Tensor& xk, const ForwardContext& ck) { return channel_dropout_with(xk, p, ck); });
  if (!ctx.generator) return at::feature_dropout(x, p, /*train=*/true);
  return x * cpu_drawn_mask({x.size(0), x.size(1), 1, 1}, 1.0 - p, *ctx.generator, x).div_(1.0 - p);
}

struct LinearKeys {
  std::string layer, weight, bias;
  int64_t in = 0, out = 0;
};

LinearKeys linear_keys(const std::string& layer, int64_t in, int64_t out) {
  return {layer, layer + ".weight", layer + ".bias", in, out};
}

/// What both nets share: the state, the (N, 1, 28, 28) check, the head Linear and its lookups.
class ClassicNet : public ImageClassifier {
public:
  ClassicNet(std::string name, int64_t num_classes)
      : name_(std::move(name)), num_classes_(num_classes) {}

  std::string name() const override { return name_; }
  int64_t num_classes() const override { return num_classes_; }
  std::map<std::string, AdaptableLayer> adaptable_layers() const override {
    std::map<std::string, AdaptableLayer> out;
    for (const LinearKeys& l : linears_) out[l.layer] = AdaptableLayer{l.out, l.in};
    return out;
  }
  bool in_head(const std::string& layer) const override { return layer == linears_.back().layer; }
  const TensorMap& state() const override { return state_; }
  TensorMap& mutable_state() override { return state_; }
  std::vector<std::string> parameter_names() const override {
    std::vector<std::string> names; // no buffers: every tensor is a parameter
    names.reserve(state_.size());
    for (const auto& [key, t] : state_) names.push_back(key);
    return names;
  }

  at::Tensor head(const at::Tensor& feats, const ForwardContext& ctx) const override {
    const LinearKeys& last = linears_.back();
    if (feats.dim() != 2 || feats.size(1) != last.in)
      throw std::invalid_argument(name_ + ": expected features (N, " + std::to_string(last.in) +
                                  "), got " + tensor_shape_string(feats.sizes()));
    return linear(dropout_with(feats, head_dropout_, ctx), last, ctx);
  }

protected:
  void check_images(const at::Tensor& images) const {
    const bool shape_ok = images.dim() == 4 && images.size(1) == kImageChannels &&
                          images.size(2) == kImageSide && images.size(3) == kImageSide;
    if (!shape_ok)
      throw std::invalid_argument(name_ + ": expected images (N, 1, 28, 28), got " +
                                  tensor_shape_string(images.sizes()));
    if (!at::isFloatingType(images.scalar_type()))
      throw std::invalid_argument(name_ + ": expected floating-point images, got " +
                                  std::string(c10::toString(images.scalar_type())));
  }

  const at::Tensor& conv(const std::string& key, const ForwardContext& ctx) const {
    return base_or_override(get(key), key, ctx);
  }
  const at::Tensor& get(const std::string& key) const {
    auto it = state_.find(key);
    if (it == state_.end())
      throw std::runtime_error(name_ + ": state has no tensor '" + key + "'");
    return it->second;
  }

  at::Tensor linear(const at::Tensor& x, const LinearKeys& l, const ForwardContext& ctx) const {
    return lora_linear(x, get(l.weight), get(l.bias), l.layer, ctx);
  }

  std::string name_;
  int64_t num_classes_;
  double head_dropout_ = 0.0;
  std::vector<LinearKeys> linears_; // in forward order; the last one is the head
  TensorMap state_;
};

class CnnMnist final : public ClassicNet {
public:
  CnnMnist(int64_t num_classes, uint64_t seed) : ClassicNet("cnn_mnist", num_classes) {
    head_dropout_ = kDropout;
    linears_ = {linear_keys("fc1", 320, 50), linear_keys("fc2", 50, num_classes)};
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    // Module order of the torch.nn definition: conv1, conv2, (conv2_drop), fc1, fc2.
    init_module(state_, "conv1", {10, kImageChannels, 5, 5}, gen);
    init_module(state_, "conv2", {20, 10, 5, 5}, gen);
    for (const LinearKeys& l : linears_) init_module(state_, l.layer, {l.out, l.in}, gen);
  }

  at::Tensor features(const at::Tensor& images, const ForwardContext& ctx) const override {
    check_images(images);
    // base_or_override: full fine-tuning trains the convolutions too, as per-client copies.
    at::Tensor x = at::conv2d(images, conv("conv1.weight", ctx), conv("conv1.bias", ctx)); // (N, 10, 24, 24)
    x = at::relu(max_pool_2x2(x));                                    // (N, 10, 12, 12)
    x = at::conv2d(x, conv("conv2.weight", ctx), conv("conv2.bias", ctx));                  // (N, 20, 8, 8)
    x = at::relu(max_pool_2x2(channel_dropout_with(x, kDropout, ctx))); // (N, 20, 4, 4)
    return at::relu(linear(x.flatten(1), linears_[0], ctx));                    // (N, 50)
  }
};

class CnnFedAvg final : public ClassicNet {
public:
  CnnFedAvg(int64_t num_classes, uint64_t seed) : ClassicNet("cnn_fedavg", num_classes) {
    linears_ = {linear_keys("fc1", 64 * 7 * 7, 512), linear_keys("fc2", 512, num_classes)};
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    init_module(state_, "conv1", {32, kImageChannels, 5, 5}, gen);
    init_module(state_, "conv2", {64, 32, 5, 5}, gen);
    for (const LinearKeys& l : linears_) init_module(state_, l.layer, {l.out, l.in}, gen);
  }

  at::Tensor features(const at::Tensor& images, const ForwardContext& ctx) const override {
    check_images(images);
    // Padding 2 keeps 28 → 28 and 14 → 14: the only reading of the paper that gives its
    // 1,663,370 parameters (unpadded, fc1 would see 64·4·4 and the net hold 582,026).
    at::Tensor x = at::conv2d(images, conv("conv1.weight", ctx), conv("conv1.bias", ctx), {1, 1}, {2, 2}); // (N, 32, 28, 28)
    x = max_pool_2x2(at::relu(x));                                                      // (N, 32, 14, 14)
    x = at::conv2d(x, conv("conv2.weight", ctx), conv("conv2.bias", ctx), {1, 1}, {2, 2}); // (N, 64, 14, 14)
    x = max_pool_2x2(at::relu(x));                                                      // (N, 64, 7, 7)
    return at::relu(linear(x.flatten(1), linears_[0], ctx));                                      // (N, 512)
  }
};

class Mlp2nn final : public ClassicNet {
public:
  Mlp2nn(int64_t num_classes, uint64_t seed) : ClassicNet("mlp_2nn", num_classes) {
    linears_ = {linear_keys("fc1", kImageSide * kImageSide * kImageChannels, 200),
                linear_keys("fc2", 200, 200), linear_keys("fc3", 200, num_classes)};
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (const LinearKeys& l : linears_) init_module(state_, l.layer, {l.out, l.in}, gen);
  }

  at::Tensor features(const at::Tensor& images, const ForwardContext& ctx) const override {
    check_images(images);
    at::Tensor x = at::relu(linear(images.flatten(1), linears_[0], ctx)); // (N, 200)
    return at::relu(linear(x, linears_[1], ctx));                        // (N, 200)
  }
};

void check_classes(const char* arch, int64_t num_classes) {
  if (num_classes < 1)
    throw std::invalid_argument(std::string(arch) + ": num_classes must be >= 1, got " +
                                std::to_string(num_classes));
}

// -- several clients' copies in one pass ----------------------------------------------------------

/// Client k's `key` (its own copy, else the shared one) stacked on a leading dimension K.
at::Tensor stacked_tensor(const ImageClassifier& net, const std::vector<const TensorMap*>& clients,
                          const std::string& key) {
  const auto shared = net.state().find(key);
  if (shared == net.state().end()) throw std::invalid_argument(net.name() + ": state has no tensor '" + key + "'");
  std::vector<at::Tensor> parts;
  parts.reserve(clients.size());
  for (const TensorMap* c : clients) {
    const auto own = c->find(key);
    parts.push_back(own == c->end() ? shared->second : own->second);
  }
  return at::stack(parts, 0);
}

/// x (K, B, in) through each client's Linear: (K, B, out).
at::Tensor stacked_linear(const at::Tensor& x, const ImageClassifier& net, const std::vector<const TensorMap*>& clients,
                          const std::string& layer) {
  const at::Tensor w = stacked_tensor(net, clients, layer + ".weight"); // (K, out, in)
  const at::Tensor b = stacked_tensor(net, clients, layer + ".bias");   // (K, out)
  return at::baddbmm(b.unsqueeze(1), x, w.transpose(1, 2));
}

/// Client k's Bernoulli(1 - p) mask of `sizes` from its generator, stacked: (K, sizes...).
at::Tensor stacked_masks(at::IntArrayRef sizes, double p, const std::vector<at::Generator>& generators,
                         const at::Tensor& like) {
  std::vector<at::Tensor> masks;
  masks.reserve(generators.size());
  for (const at::Generator& g : generators) masks.push_back(cpu_drawn_mask(sizes, 1.0 - p, g, like));
  return at::stack(masks, 0);
}

/// (K, B, C, H, W) → (B, K·C, H, W): the clients' channels side by side, for groups = K.
at::Tensor channels_side_by_side(const at::Tensor& x) {
  return x.transpose(0, 1).reshape({x.size(1), x.size(0) * x.size(2), x.size(3), x.size(4)});
}

/// A grouped convolution with each client's own kernel: x (B, K·Cin, H, W) → (B, K·Cout, H', W').
at::Tensor stacked_conv(const at::Tensor& x, const ImageClassifier& net, const std::vector<const TensorMap*>& clients,
                        const std::string& layer) {
  const at::Tensor w = stacked_tensor(net, clients, layer + ".weight"); // (K, Cout, Cin, kh, kw)
  const at::Tensor b = stacked_tensor(net, clients, layer + ".bias");   // (K, Cout)
  const int64_t k = w.size(0);
  const std::vector<int64_t> ones = {1, 1}, zeros = {0, 0};
  return at::conv2d(x, w.flatten(0, 1), b.flatten(), /*stride=*/ones, /*padding=*/zeros, /*dilation=*/ones, k);
}

} // namespace

at::Tensor classic_net_stacked_logits(const ImageClassifier& net, const std::vector<const TensorMap*>& clients,
                                      const at::Tensor& input, bool dropout_active,
                                      const std::vector<at::Generator>& generators) {
  const std::string& arch = net.name();
  const auto k = static_cast<int64_t>(clients.size());
  if (arch != "cnn_mnist" && arch != "mlp_2nn")
    throw std::invalid_argument("classic_net_stacked_logits: " + arch + " is not a classic net (cnn_mnist, mlp_2nn)");
  if (k < 1 || input.size(0) != k)
    throw std::invalid_argument("classic_net_stacked_logits: " + std::to_string(k) + " clients, input " +
                                tensor_shape_string(input.sizes()));
  const bool cnn = arch == "cnn_mnist";
  const bool drop = cnn && dropout_active;
  if (drop && static_cast<int64_t>(generators.size()) != k)
    throw std::invalid_argument("classic_net_stacked_logits: dropout needs one generator per client");
  at::Tensor feats; // (K, B, F)
  if (input.dim() == 3) {
    feats = input;
  } else {
    if (input.dim() != 5 || input.size(2) != kImageChannels || input.size(3) != kImageSide || input.size(4) != kImageSide)
      throw std::invalid_argument(arch + ": expected stacked images (K, B, 1, 28, 28), got " +
                                  tensor_shape_string(input.sizes()));
    const int64_t b = input.size(1);
    if (cnn) {
      at::Tensor x = stacked_conv(channels_side_by_side(input), net, clients, "conv1"); // (B, K·10, 24, 24)
      x = at::relu(max_pool_2x2(x));
      x = stacked_conv(x, net, clients, "conv2"); // (B, K·20, 8, 8)
      if (drop) { // Dropout2d: one draw per (sample, channel), client by client
        const at::Tensor m = stacked_masks({b, x.size(1) / k, 1, 1}, kDropout, generators, x); // (K, B, 20, 1, 1)
        x = x * channels_side_by_side(m).div_(1.0 - kDropout);
      }
      x = at::relu(max_pool_2x2(x));                          // (B, K·20, 4, 4)
      x = x.reshape({b, k, -1}).transpose(0, 1);                        // (K, B, 320)
      feats = at::relu(stacked_linear(x, net, clients, "fc1"));         // (K, B, 50)
    } else {
      const at::Tensor x = input.reshape({k, b, -1});                   // (K, B, 784)
      feats = at::relu(stacked_linear(at::relu(stacked_linear(x, net, clients, "fc1")), net, clients, "fc2"));
    }
  }
  if (drop) feats = feats * stacked_masks({feats.size(1), feats.size(2)}, kDropout, generators, feats) / (1.0 - kDropout);
  return stacked_linear(feats, net, clients, cnn ? "fc2" : "fc3");
}

const std::vector<std::string>& classic_net_names() {
  static const std::vector<std::string> names{"cnn_mnist", "cnn_fedavg", "mlp_2nn"};
  return names;
}

std::shared_ptr<ImageClassifier> make_cnn_mnist(int64_t num_classes, uint64_t seed) {
  check_classes("cnn_mnist", num_classes);
  return std::make_shared<CnnMnist>(num_classes, seed);
}

std::shared_ptr<ImageClassifier> make_cnn_fedavg(int64_t num_classes, uint64_t seed) {
  check_classes("cnn_fedavg", num_classes);
  return std::make_shared<CnnFedAvg>(num_classes, seed);
}

std::shared_ptr<ImageClassifier> make_mlp_2nn(int64_t num_classes, uint64_t seed) {
  check_classes("mlp_2nn", num_classes);
  return std::make_shared<Mlp2nn>(num_classes, seed);
}

std::shared_ptr<ImageClassifier> make_classic_net(const std::string& arch, int64_t num_classes,
                                                  uint64_t seed) {
  if (arch == "cnn_mnist") return make_cnn_mnist(num_classes, seed);
  if (arch == "cnn_fedavg") return make_cnn_fedavg(num_classes, seed);
  if (arch == "mlp_2nn") return make_mlp_2nn(num_classes, seed);
  throw std::invalid_argument("unknown classic net '" + arch + "'; valid: " + join(classic_net_names()));
}

} // namespace fedvlm
