// model/mobilenet_v3.cpp — MobileNetV3 as a TensorMap of torchvision-named weights and an ATen forward.
#include "model/mobilenet_v3.hpp"

#include "support/join.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fedvlm {
namespace {

// torchvision's BatchNorm settings for MobileNetV3 (norm_layer = BatchNorm2d(eps=1e-3, momentum=0.01)).
constexpr double kBnMomentum = 0.01;
constexpr double kBnEps = 1e-3;
constexpr int64_t kStemChannels = 16;

// One inverted-residual row of Tables 1/2 of the paper, as torchvision lists it.
struct BlockSpec {
  int64_t in;
  int64_t kernel;
  int64_t expanded;
  int64_t out;
  bool se;
  bool hardswish; // false: ReLU
  int64_t stride;
};

struct VariantSpec {
  std::vector<BlockSpec> blocks;
  int64_t last_conv;  // 6 × the last block's output channels
  int64_t last_linear; // width of classifier.0
};

const VariantSpec& small_spec() {
  static const VariantSpec spec{{
                                    {16, 3, 16, 16, true, false, 2},
                                    {16, 3, 72, 24, false, false, 2},
                                    {24, 3, 88, 24, false, false, 1},
                                    {24, 5, 96, 40, true, true, 2},
                                    {40, 5, 240, 40, true, true, 1},
                                    {40, 5, 240, 40, true, true, 1},
                                    {40, 5, 120, 48, true, true, 1},
                                    {48, 5, 144, 48, true, true, 1},
                                    {48, 5, 288, 96, true, true, 2},
                                    {96, 5, 576, 96, true, true, 1},
                                    {96, 5, 576, 96, true, true, 1},
                                },
                                576,
                                1024};
  return spec;
}

const VariantSpec& large_spec() {
  static const VariantSpec spec{{
                                    {16, 3, 16, 16, false, false, 1},
                                    {16, 3, 64, 24, false, false, 2},
                                    {24, 3, 72, 24, false, false, 1},
                                    {24, 5, 72, 40, true, false, 2},
                                    {40, 5, 120, 40, true, false, 1},
                                    {40, 5, 120, 40, true, false, 1},
                                    {40, 3, 240, 80, false, true, 2},
                                    {80, 3, 200, 80, false, true, 1},
                                    {80, 3, 184, 80, false, true, 1},
                                    {80, 3, 184, 80, false, true, 1},
                                    {80, 3, 480, 112, true, true, 1},
                                    {112, 3, 672, 112, true, true, 1},
                                    {112, 5, 672, 160, true, true, 2},
                                    {160, 5, 960, 160, true, true, 1},
                                    {160, 5, 960, 160, true, true, 1},
                                },
                                960,
                                1280};
  return spec;
}

// torchvision's _make_divisible: round to the nearest multiple of `divisor`, never below it,
// and never more than 10% under `v`.
int64_t make_divisible(double v, int64_t divisor) {
  const auto d = static_cast<double>(divisor);
  auto rounded = static_cast<int64_t>(v + d / 2.0) / divisor * divisor;
  rounded = std::max(divisor, rounded);
  if (static_cast<double>(rounded) < 0.9 * v) rounded += divisor;
  return rounded;
}

enum class Act { None, Relu, Hardswish };

// Keys of one Conv2dNormActivation: conv at "<prefix>.0", BatchNorm at "<prefix>.1".
// Built once so the forward pass does map lookups, not string concatenation.
struct ConvBn {
  std::string layer; // the conv's module name, which is also its LoRA target name
  std::string weight;
  std::string bn_weight, bn_bias, bn_mean, bn_var, bn_count;
  int64_t in = 0, out = 0, kernel = 1, stride = 1, groups = 1;
  Act act = Act::None;

  ConvBn() = default;
  ConvBn(const std::string& prefix, int64_t in_, int64_t out_, int64_t kernel_, int64_t stride_,
         int64_t groups_, Act act_)
      : layer(prefix + ".0"), weight(layer + ".weight"), bn_weight(prefix + ".1.weight"),
        bn_bias(prefix + ".1.bias"), bn_mean(prefix + ".1.running_mean"),
        bn_var(prefix + ".1.running_var"), bn_count(prefix + ".1.num_batches_tracked"), in(in_),
        out(out_), kernel(kernel_), stride(stride_), groups(groups_), act(act_) {}
};

struct SqueezeExcite {
  std::string fc1, fc1_weight, fc1_bias;
  std::string fc2, fc2_weight, fc2_bias;
  int64_t channels = 0, squeeze = 0;
};

struct Block {
  std::optional<ConvBn> expand;
  ConvBn depthwise;
  std::optional<SqueezeExcite> se;
  ConvBn project;
  bool residual = false;
};

struct LinearKeys {
  std::string layer, weight, bias;
  int64_t in = 0, out = 0;
};

LinearKeys linear_keys(const std::string& layer, int64_t in, int64_t out) {
  return {layer, layer + ".weight", layer + ".bias", in, out};
}

bool is_buffer(const std::string& key) {
  for (const char* suffix : {".running_mean", ".running_var", ".num_batches_tracked"}) {
    const std::string s(suffix);
    if (key.size() > s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0) return true;
  }
  return false;
}

bool is_batch_counter(const std::string& key) {
  const std::string s = ".num_batches_tracked";
  return key.size() > s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
}


class MobileNetV3 final : public ImageClassifier {
public:
  MobileNetV3(const MobileNetV3Config& config, uint64_t seed) : config_(config) {
    const VariantSpec& spec = config.variant == "small" ? small_spec() : large_spec();
    build_layout(spec);
    init_weights(seed);
    for (const auto& [key, t] : state_)
      if (!is_buffer(key)) parameter_names_.push_back(key);
  }

  std::string name() const override { return "mobilenet_v3_" + config_.variant; }
  int64_t num_classes() const override { return config_.num_classes; }
  std::map<std::string, AdaptableLayer> adaptable_layers() const override { return adaptable_; }
  bool in_head(const std::string& layer) const override {
    return layer.rfind("classifier.", 0) == 0;
  }
  const TensorMap& state() const override { return state_; }
  TensorMap& mutable_state() override { return state_; }
  std::vector<std::string> parameter_names() const override { return parameter_names_; }

  at::Tensor features(const at::Tensor& images, const ForwardContext& ctx) const override {
    if (images.dim() != 4 || images.size(1) != config_.in_channels)
      throw std::invalid_argument(name() + ": expected images (N, " +
                                  std::to_string(config_.in_channels) + ", H, W), got " +
                                  tensor_shape_string(images.sizes()));
    at::Tensor x = conv_bn(images, stem_, ctx);
    for (const Block& b : blocks_) {
      at::Tensor y = b.expand ? conv_bn(x, *b.expand, ctx) : x;
      y = conv_bn(y, b.depthwise, ctx);
      if (b.se) y = squeeze_excite(y, *b.se, ctx);
      y = conv_bn(y, b.project, ctx);
      x = b.residual ? y + x : y;
    }
    x = conv_bn(x, last_conv_, ctx);
    return at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  }

  at::Tensor head(const at::Tensor& feats, const ForwardContext& ctx) const override {
    if (feats.dim() != 2 || feats.size(1) != hidden_.in)
      throw std::invalid_argument(name() + ": expected features (N, " +
                                  std::to_string(hidden_.in) + "), got " +
                                  tensor_shape_string(feats.sizes()));
    at::Tensor h = lora_linear(feats, get(hidden_.weight), get(hidden_.bias), hidden_.layer, ctx);
    h = dropout_with(at::hardswish(h), config_.dropout, ctx);
    return lora_linear(h, get(output_.weight), get(output_.bias), output_.layer, ctx);
  }

private:
  void build_layout(const VariantSpec& spec) {
    stem_ = ConvBn("features.0", config_.in_channels, kStemChannels, 3, 2, 1, Act::Hardswish);
    int64_t index = 1;
    for (const BlockSpec& s : spec.blocks) {
      const Act act = s.hardswish ? Act::Hardswish : Act::Relu;
      const std::string base = "features." + std::to_string(index++) + ".block.";
      // Sub-module indices inside `block` are positional, so they shift when a block has no
      // expand conv or no SE layer; follow torchvision's order exactly.
      int64_t m = 0;
      Block b;
      if (s.expanded != s.in) {
        b.expand = ConvBn(base + std::to_string(m++), s.in, s.expanded, 1, 1, 1, act);
        add_adaptable(b.expand->layer, s.expanded, s.in);
      }
      b.depthwise = ConvBn(base + std::to_string(m++), s.expanded, s.expanded, s.kernel, s.stride,
                           s.expanded, act);
      if (s.se) {
        const std::string p = base + std::to_string(m++);
        SqueezeExcite se;
        se.channels = s.expanded;
        se.squeeze = make_divisible(static_cast<double>(s.expanded / 4), 8);
        se.fc1 = p + ".fc1";
        se.fc1_weight = se.fc1 + ".weight";
        se.fc1_bias = se.fc1 + ".bias";
        se.fc2 = p + ".fc2";
        se.fc2_weight = se.fc2 + ".weight";
        se.fc2_bias = se.fc2 + ".bias";
        add_adaptable(se.fc1, se.squeeze, se.channels);
        add_adaptable(se.fc2, se.channels, se.squeeze);
        b.se = se;
      }
      b.project = ConvBn(base + std::to_string(m++), s.expanded, s.out, 1, 1, 1, Act::None);
      add_adaptable(b.project.layer, s.out, s.expanded);
      b.residual = s.stride == 1 && s.in == s.out;
      blocks_.push_back(std::move(b));
    }
    const int64_t last_in = spec.blocks.back().out;
    last_conv_ = ConvBn("features." + std::to_string(index), last_in, spec.last_conv, 1, 1, 1,
                        Act::Hardswish);
    add_adaptable(last_conv_.layer, spec.last_conv, last_in);
    hidden_ = linear_keys("classifier.0", spec.last_conv, spec.last_linear);
    output_ = linear_keys("classifier.3", spec.last_linear, config_.num_classes);
    add_adaptable(hidden_.layer, hidden_.out, hidden_.in);
    add_adaptable(output_.layer, output_.out, output_.in);
  }

  void add_adaptable(const std::string& layer, int64_t out, int64_t in) {
    adaptable_[layer] = AdaptableLayer{out, in};
  }

  // Same schemes as torchvision's MobileNetV3.__init__, drawn in module order from one
  // generator so that a seed fixes every weight.
  void init_weights(uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto kaiming_fan_out = [&](const std::string& key, at::IntArrayRef shape) {
      // fan_out = out_channels × kernel area (grouping divides the input side only); gain √2.
      const double fan_out = static_cast<double>(shape[0] * shape[2] * shape[3]);
      at::Tensor w = at::empty(shape, at::kFloat);
      w.normal_(0.0, std::sqrt(2.0 / fan_out), gen);
      state_[key] = w;
    };
    auto conv_bn_init = [&](const ConvBn& c) {
      kaiming_fan_out(c.weight, {c.out, c.in / c.groups, c.kernel, c.kernel});
      state_[c.bn_weight] = at::ones({c.out}, at::kFloat);
      state_[c.bn_bias] = at::zeros({c.out}, at::kFloat);
      state_[c.bn_mean] = at::zeros({c.out}, at::kFloat);
      state_[c.bn_var] = at::ones({c.out}, at::kFloat);
      state_[c.bn_count] = at::zeros({}, at::kLong);
    };
    conv_bn_init(stem_);
    for (const Block& b : blocks_) {
      if (b.expand) conv_bn_init(*b.expand);
      conv_bn_init(b.depthwise);
      if (b.se) {
        kaiming_fan_out(b.se->fc1_weight, {b.se->squeeze, b.se->channels, 1, 1});
        state_[b.se->fc1_bias] = at::zeros({b.se->squeeze}, at::kFloat);
        kaiming_fan_out(b.se->fc2_weight, {b.se->channels, b.se->squeeze, 1, 1});
        state_[b.se->fc2_bias] = at::zeros({b.se->channels}, at::kFloat);
      }
      conv_bn_init(b.project);
    }
    conv_bn_init(last_conv_);
    for (const LinearKeys* l : {&hidden_, &output_}) {
      at::Tensor w = at::empty({l->out, l->in}, at::kFloat);
      w.normal_(0.0, 0.01, gen);
      state_[l->weight] = w;
      state_[l->bias] = at::zeros({l->out}, at::kFloat);
    }
  }

  const at::Tensor& get(const std::string& key) const {
    auto it = state_.find(key);
    if (it == state_.end())
      throw std::runtime_error(name() + ": state has no tensor '" + key + "'");
    return it->second;
  }

  at::Tensor conv_bn(const at::Tensor& x, const ConvBn& c, const ForwardContext& ctx) const {
    at::Tensor y;
    if (c.kernel == 1 && c.groups == 1 && c.stride == 1)
      y = lora_conv1x1(x, get(c.weight), at::Tensor(), c.layer, ctx);
    else
      y = at::conv2d(x, get(c.weight), /*bias=*/{}, {c.stride, c.stride},
                     {(c.kernel - 1) / 2, (c.kernel - 1) / 2}, /*dilation=*/{1, 1}, c.groups);
    // In training mode at::batch_norm updates running_mean/var in place: they are the tensors
    // in state_, i.e. the shared base model. Callers that set batchnorm_update must not run
    // forwards on the same model concurrently.
    y = at::batch_norm(y, get(c.bn_weight), get(c.bn_bias), get(c.bn_mean), get(c.bn_var),
                       ctx.batchnorm_update, ctx.batchnorm_momentum.value_or(kBnMomentum), kBnEps, /*cudnn_enabled=*/false);
    if (ctx.batchnorm_update) {
      // Kept for checkpoint fidelity (torchvision increments it); unused with a fixed momentum.
      auto it = state_.find(c.bn_count);
      if (it != state_.end()) it->second.add_(1);
    }
    switch (c.act) {
    case Act::Relu: return at::relu(y);
    case Act::Hardswish: return at::hardswish(y);
    case Act::None: break;
    }
    return y;
  }

  at::Tensor squeeze_excite(const at::Tensor& x, const SqueezeExcite& se,
                            const ForwardContext& ctx) const {
    at::Tensor s = at::adaptive_avg_pool2d(x, {1, 1});
    s = at::relu(lora_conv1x1(s, get(se.fc1_weight), get(se.fc1_bias), se.fc1, ctx));
    s = at::hardsigmoid(lora_conv1x1(s, get(se.fc2_weight), get(se.fc2_bias), se.fc2, ctx));
    return x * s;
  }

  MobileNetV3Config config_;
  ConvBn stem_;
  std::vector<Block> blocks_;
  ConvBn last_conv_;
  LinearKeys hidden_, output_;
  std::map<std::string, AdaptableLayer> adaptable_;
  std::vector<std::string> parameter_names_;
  TensorMap state_;
};

void validate(const MobileNetV3Config& config) {
  if (config.variant != "small" && config.variant != "large")
    throw std::invalid_argument("mobilenet_v3: variant must be \"small\" or \"large\", got \"" +
                                config.variant + "\"");
  if (config.num_classes < 1)
    throw std::invalid_argument("mobilenet_v3: num_classes must be >= 1, got " +
                                std::to_string(config.num_classes));
  if (config.in_channels < 1)
    throw std::invalid_argument("mobilenet_v3: in_channels must be >= 1, got " +
                                std::to_string(config.in_channels));
  // p = 1 would divide by zero in the inverted-dropout rescale.
  if (!(config.dropout >= 0.0 && config.dropout < 1.0))
    throw std::invalid_argument("mobilenet_v3: dropout must be in [0, 1), got " +
                                std::to_string(config.dropout));
}


} // namespace

std::unique_ptr<ImageClassifier> make_mobilenet_v3(const MobileNetV3Config& config,
                                                   uint64_t seed) {
  validate(config);
  return std::make_unique<MobileNetV3>(config, seed);
}

void mobilenet_v3_load_state(ImageClassifier& model, const TensorMap& state) {
  auto* net = dynamic_cast<MobileNetV3*>(&model);
  if (net == nullptr)
    throw std::invalid_argument("mobilenet_v3_load_state: model '" + model.name() +
                                "' is not a MobileNetV3");
  TensorMap& current = net->mutable_state();

  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [key, t] : current)
    if (state.count(key) == 0 && !is_batch_counter(key)) missing.push_back(key);
  for (const auto& [key, t] : state) {
    auto it = current.find(key);
    if (it == current.end()) {
      unexpected.push_back(key);
    } else if (!t.defined()) {
      misshaped.push_back(key + " (undefined tensor)");
    } else if (is_batch_counter(key) ? t.numel() != 1 : t.sizes() != it->second.sizes()) {
      misshaped.push_back(key + " (expected " + tensor_shape_string(it->second.sizes()) + ", got " +
                          tensor_shape_string(t.sizes()) + ")");
    }
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::ostringstream os;
    os << "mobilenet_v3_load_state: checkpoint does not fit " << model.name();
    os << excerpt_of("missing", missing);
    os << excerpt_of("unexpected", unexpected);
    os << excerpt_of("mis-shaped", misshaped);
    throw std::runtime_error(os.str());
  }

  // Everything is checked before anything changes, so a bad checkpoint leaves the model intact.
  // Fresh tensors, not views of `state`, so the caller's map can be reused or freed.
  TensorMap loaded;
  for (const auto& [key, t] : current) {
    auto it = state.find(key);
    if (is_batch_counter(key)) {
      // As torch's BatchNorm does for checkpoints without the counter: start from zero.
      loaded[key] = it == state.end() ? at::zeros({}, at::kLong)
                                      : it->second.reshape({}).to(at::kLong).clone();
    } else {
      loaded[key] = at::empty(t.sizes(), at::kFloat).copy_(it->second);
    }
  }
  current = std::move(loaded);
}

} // namespace fedvlm
