// fl/federation/setup_image.cpp — an image classifier's set-up (MobileNetV3, the FedAvg papers' nets): model, weights file, pretraining cache.
#include "fl/federation/setup_families.hpp"
#include "fl/federation/setup_parts.hpp"
#include "fl/config/model_family.hpp"
#include "fl/config/strategy.hpp"
#include "fl/runtime/thread_plan.hpp"
#include "fl/tasks/lora_target_globs.hpp"
#include "fl/tasks/pretrain.hpp"
#include "model/classic_nets.hpp"
#include "model/mobilenet_v3.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <sstream>

namespace fedvlm::setup_detail {

namespace {

/// Identifies a pretrained checkpoint by everything that shapes it.
std::string pretrain_key(const ExperimentConfig& c, int64_t classes, int64_t channels) {
  std::ostringstream os;
  os << "v1|" << c.model.arch << "|" << c.model.dropout << "|" << classes << "|" << channels << "|"
     << c.data.dataset << "|" << c.pretrain.public_samples << "|" << c.pretrain.epochs << "|"
     << c.pretrain.lr << "|" << c.pretrain.batch_size << "|" << c.seed;
  return os.str();
}

/// Every parameter of `model` from `weights`, same names and shapes, nothing left over:
/// for models without a checkpoint format of their own (cnn_mnist, mlp_2nn).
void load_state_exactly(ImageClassifier& model, const TensorMap& weights) {
  std::string problems;
  TensorMap& state = model.mutable_state();
  for (const auto& [name, t] : state) {
    auto it = weights.find(name);
    if (it == weights.end()) problems += "\n  missing: " + name;
    else if (!it->second.sizes().equals(t.sizes()))
      problems += "\n  " + name + " is " + tensor_shape_string(it->second.sizes()) + ", expected " + tensor_shape_string(t.sizes());
  }
  for (const auto& [name, t] : weights)
    if (!state.count(name)) problems += "\n  unexpected: " + name;
  if (!problems.empty()) throw std::runtime_error("the weights do not fit " + model.name() + ":" + problems);
  for (auto& [name, t] : state) t = weights.at(name).to(t.scalar_type()).clone();
}

/// The image classifier model.arch names, sized for the dataset, at random init (seed).
std::shared_ptr<ImageClassifier> make_classifier(const ExperimentConfig& c, const ImageDataset& full, const ModelArch& arch) {
  if (arch.family == ModelFamily::classic) {
    if (full.images.size(1) != 1 || full.images.size(2) != 28 || full.images.size(3) != 28)
      throw std::invalid_argument("model.arch: " + c.model.arch + " takes 28 x 28 grey images; data.dataset \"" +
                                  c.data.dataset + "\" has " + tensor_shape_string(full.images.sizes().slice(1)));
    return make_classic_net(c.model.arch, full.num_classes(), c.seed);
  }
  MobileNetV3Config mc;
  mc.variant = arch.variant; // "small" | "large"
  mc.num_classes = full.num_classes();
  mc.in_channels = full.images.size(1);
  mc.dropout = c.model.dropout;
  return make_mobilenet_v3(mc, c.seed);
}

/// A classifier's weights from a file: torchvision names for MobileNetV3, exactly its own for the others.
void load_classifier_state(ImageClassifier& model, const ModelArch& arch, const TensorMap& weights) {
  if (arch.family == ModelFamily::mobilenet_v3) return mobilenet_v3_load_state(model, weights);
  load_state_exactly(model, weights);
}

/// model.weights into the classifier (execute), or checked to exist (plan).
void apply_weights_file(RunSetup& setup, const ExperimentConfig& c, ImageClassifier& model, const ModelArch& arch,
                        SetupMode mode) {
  setup.model_origin = "weights " + c.model.weights.string();
  if (mode == SetupMode::execute) {
    try {
      const TensorMap weights = safetensors_load_any(c.model.weights);
      require_finite_weights(weights, c.model.weights.string());
      load_classifier_state(model, arch, weights);
    } catch (const std::exception& e) {
      throw std::runtime_error("model.weights: " + std::string(e.what()));
    }
  } else if (!std::filesystem::exists(c.model.weights)) {
    throw std::runtime_error("model.weights: " + c.model.weights.string() +
                             " does not exist (expected a .safetensors file with torchvision " + c.model.arch +
                             " parameter names)");
  }
}

/// Central pretraining on the public split, or its cached result for the same settings.
void apply_pretraining(RunSetup& setup, const ExperimentConfig& c, const ImagePools& pools, ImageClassifier& model,
                       const ModelArch& arch, SetupMode mode) {
  const std::string key = pretrain_key(c, pools.full->num_classes(), pools.full->images.size(1));
  const std::filesystem::path ckpt = pretrain_cache_file(c, key);
  const int64_t public_n = setup.public_samples;
  if (std::filesystem::exists(ckpt)) {
    setup.model_origin = "pretrained, cached " + ckpt.string();
    if (mode != SetupMode::execute) return;
    const SafetensorsFile f = safetensors_load(ckpt);
    auto it = f.metadata.find("fedvlm.pretrain_key");
    if (it == f.metadata.end() || it->second != key)
      throw std::runtime_error(ckpt.string() + ": cached checkpoint was made for other settings; delete it");
    require_finite_weights(f.tensors, ckpt.string() + " (delete it to pretrain again)");
    load_classifier_state(model, arch, f.tensors);
    return;
  }
  setup.model_origin = "pretrained now on " + std::to_string(public_n) + " public samples, cached to " + ckpt.string();
  if (mode != SetupMode::execute) return;
  check_writable_dir(ckpt.parent_path(), "pretrain.cache_dir"); // before the minutes of pretraining, not after
  spdlog::info("pretraining {} on {} public samples for {} epochs (cached afterwards in {})", c.model.arch, public_n,
               c.pretrain.epochs, ckpt.string());
  const ImageDataset pub = pools.full->subset(pools.public_idx);
  const ScopedIntraOpThreads pretrain_threads(setup.threads.pretrain);
  const PretrainReport rep = pretrain_classifier(model, pub, c.pretrain, c.seed, [](int e, double loss) {
    spdlog::info("pretrain epoch {}: loss {:.4f}", e, loss);
  });
  spdlog::info("pretraining done in {:.1f} s ({} steps, {} intra-op threads)", rep.seconds, rep.steps,
               setup.threads.pretrain);
  setup.pretrain_seconds = rep.seconds;
  // A diverged pretraining must not be cached, or every later run would reload it.
  require_finite_weights(model.state(), "pretraining (lower pretrain.lr)");
  safetensors_save(ckpt, model.state(), {{"fedvlm.pretrain_key", key}});
}

} // namespace

RunSetup prepare_image_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  const ModelArch& arch = model_arch(c.model.arch);
  RunSetup setup;
  setup.threads = thread_plan_for(c);
  ImagePools pools = image_pools(setup, c, datasets, mode);
  const ImageDataset& full = *pools.full;
  std::shared_ptr<ImageClassifier> model = make_classifier(c, full, arch);
  setup.model_origin = "random init (seed " + std::to_string(c.seed) + ")";
  const bool full_fine_tuning = strategy_spec(c.strategy).train_base;

  setup.targets = resolve_lora_targets(*model, c.lora_targets, full_fine_tuning);
  const TensorShapes state_shapes = tensor_shapes(model->state());
  fill_bytes(setup, c, &state_shapes);
  if (strategy_spec(c.strategy).train_head) { // the probe's input: the trunk's features of one image
    at::NoGradGuard no_grad;
    const at::Tensor one = at::zeros({1, full.images.size(1), full.images.size(2), full.images.size(3)});
    fill_probe_bytes(setup, c, {full.num_classes(), model->features(one, ForwardContext{}).size(1)});
  }
  if (!c.model.weights.empty()) apply_weights_file(setup, c, *model, arch, mode);
  if (c.pretrain.enabled) apply_pretraining(setup, c, pools, *model, arch, mode);

  if (mode == SetupMode::execute) {
    const c10::Device device = run_device(c);
    model->mutable_state() = tensor_map_to(model->state(), device); // pretraining ran on the CPU
    setup.task = std::make_shared<const ClassificationTask>(
        std::make_shared<const FrozenBase>(model, std::move(pools.pool), c.lora_targets, 512, full_fine_tuning, device));
  }
  return setup;
}

} // namespace fedvlm::setup_detail
