// fl/federation/setup_clip.cpp — a CLIP run's set-up: tokenizer, weights (checkpoint, pretrained here, or random), the zero-shot task.
#include "fl/federation/setup_families.hpp"
#include "fl/federation/setup_parts.hpp"
#include "fl/config/model_family.hpp"
#include "fl/data/clip_pixel_source.hpp"
#include "fl/runtime/thread_plan.hpp"
#include "fl/tasks/clip_pretrain.hpp"
#include "fl/tasks/clip_task.hpp"
#include "fl/tasks/full_fine_tuning.hpp"
#include "fl/tasks/lora_target_globs.hpp"
#include "model/clip_tiny_tokenizer.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace fedvlm::setup_detail {
namespace {

/// What every CLIP set-up path shares: the run's pools, class names and targets.
struct ClipRun {
  const ExperimentConfig& c;
  SetupMode mode;
  RunSetup setup;
  ImagePools pools;
  std::vector<std::string> class_names;
  bool full = false; ///< full fine-tuning of text-tower modules rather than LoRA

  /// LoRA adapts Linears; full fine-tuning trains every tensor of the modules its globs name
  /// (LayerNorms and embeddings too). Either way only in the text tower: image features are cached.
  void resolve_targets(const ClipConfig& config) {
    const TensorShapes shapes = clip_parameter_shapes(config);
    setup.targets = match_lora_targets(full ? weighted_modules(shapes) : clip_adaptable_layers(config), c.lora_targets);
    clip_check_text_tower(setup.targets, full && !c.strategy_trainable.empty() ? "strategy.trainable" : "lora.targets");
    fill_bytes(setup, c, &shapes);
    fill_probe_bytes(setup, c, {static_cast<int64_t>(class_names.size()), config.projection_dim});
  }

  void make_task(std::shared_ptr<const TensorMap> weights, const ClipConfig& config, const ClipTokenizer& tokenizer) {
    // CLIP's preprocessing starts from [0, 1] intensities, not the loader's normalised values.
    const ClipPixelsFromImages pixels(pools.pool.images01(), config.vision.image_size); // a batch at a time
    const c10::Device device = run_device(c); // the task runs where its weights are
    if (!device.is_cpu()) weights = std::make_shared<const TensorMap>(tensor_map_to(*weights, device));
    setup.task = std::make_shared<const ClipZeroShotTask>(std::move(weights), config, tokenizer, pixels, pools.pool.labels,
                                                          class_names, setup.targets, c.clip.templates,
                                                          /*encode_batch_size=*/256, /*any_weighted_module=*/full);
  }
};

/// A Hugging Face checkpoint: its config decides the sizes; another size than model.arch is refused first.
void from_checkpoint(ClipRun& run) {
  const ExperimentConfig& c = run.c;
  ClipCheckpoint ck;
  try {
    ck = clip_load_hf(c.model.weights, c.model.arch);
  } catch (const std::exception& e) {
    throw std::runtime_error("model.weights: " + std::string(e.what()));
  }
  run.setup.model_origin = "weights " + c.model.weights.string();
  run.resolve_targets(ck.config);
  const std::filesystem::path tok = c.model.tokenizer.empty() ? c.model.weights : c.model.tokenizer;
  const ClipTokenizer tokenizer = ClipTokenizer::load(tok);
  run.make_task(std::make_shared<const TensorMap>(std::move(ck.weights)), ck.config, tokenizer);
}

/// The tokenizer's file: model.tokenizer, or for a self-contained arch the tiny caption
/// tokenizer in the pretraining cache.
std::filesystem::path tokenizer_path(const ExperimentConfig& c, const ModelArch& arch) {
  std::filesystem::path tok_path = c.model.tokenizer;
  if (tok_path.empty() && arch.self_contained)
    tok_path = resolved_cache_dir(c) / (std::string(arch.arch) + "_tokenizer.json");
  if (tok_path.empty())
    throw std::invalid_argument("model.tokenizer: not set; expected CLIP's tokenizer.json (or vocab.json + merges.txt), e.g. "
                                "from openai/clip-vit-base-patch32");
  return tok_path;
}

/// Weights pretrained contrastively here on the public split (cached), or random ones.
TensorMap pretrained_or_random(ClipRun& run, const ClipConfig& cfg, const ClipTokenizer& tokenizer) {
  const ExperimentConfig& c = run.c;
  if (!c.pretrain.enabled) {
    spdlog::warn("{} starts from random weights (no model.weights, pretraining off)", c.model.arch);
    return clip_random_weights(cfg, c.seed);
  }
  ClipPretrainSettings ps;
  ps.epochs = c.pretrain.epochs;
  ps.batch_size = c.pretrain.batch_size;
  ps.lr = c.pretrain.lr;
  const ImageDataset pub = run.pools.full->subset(run.pools.public_idx);
  const ClipPixelsFromImages pub_pixels(pub.images01(), cfg.vision.image_size); // a batch at a time
  const std::vector<std::string>& captions = c.clip.pretrain_templates.empty() ? c.clip.templates : c.clip.pretrain_templates;
  const std::string key = clip_pretrain_key(cfg, pub_pixels, pub.labels, run.class_names, captions, ps, c.seed);
  const std::filesystem::path cache = pretrain_cache_file(c, key);
  check_writable_dir(cache.parent_path(), "pretrain.cache_dir");
  ClipPretrainReport report;
  const ScopedIntraOpThreads pretrain_threads(run.setup.threads.pretrain);
  const auto t0 = std::chrono::steady_clock::now();
  TensorMap weights = clip_pretrain_cached(cache, cfg, tokenizer, pub_pixels, pub.labels, run.class_names, captions, ps,
                                           c.seed, &report, [](int e, double loss) {
                                             spdlog::info("CLIP pretrain epoch {}: loss {:.4f}", e, loss);
                                           });
  run.setup.pretrain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.setup.model_origin = (report.from_cache ? "pretrained, cached " : "pretrained now, cached to ") + cache.string();
  return weights;
}

} // namespace

/// CLIP: the tokenizer (model.tokenizer, beside model.weights, or for clip_tiny the tiny
/// caption tokenizer written to the cache), the weights (a Hugging Face checkpoint, pretrained
/// here on the public split, or random), every pool image encoded once by the frozen vision tower.
RunSetup prepare_clip_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  ClipRun run{c, mode, {}, {}, {}, strategy_spec(c.strategy).train_base};
  run.setup.threads = thread_plan_for(c);
  run.pools = image_pools(run.setup, c, datasets, mode);
  run.class_names = c.data.class_names.empty() ? run.pools.full->class_names : c.data.class_names;
  if (static_cast<int64_t>(run.class_names.size()) != run.pools.full->num_classes())
    throw std::invalid_argument("data.class_names: " + std::to_string(run.class_names.size()) + " names for the " +
                                std::to_string(run.pools.full->num_classes()) + " classes of " + c.data.dataset);
  run.setup.class_names = run.class_names;

  if (!c.model.weights.empty() && mode == SetupMode::execute) {
    from_checkpoint(run);
    return std::move(run.setup);
  }
  if (!c.model.weights.empty() && !std::filesystem::exists(c.model.weights))
    throw std::runtime_error("model.weights: " + c.model.weights.string() +
                             " does not exist (expected a folder with config.json and model.safetensors, as published "
                             "for openai/clip-vit-base-patch32)");
  const ModelArch& arch = model_arch(c.model.arch);
  const std::filesystem::path tok_path = tokenizer_path(c, arch);
  ClipConfig cfg = clip_config_named(c.model.arch);
  run.resolve_targets(cfg);
  run.setup.model_origin = c.pretrain.enabled ? "pretrained here contrastively on " +
                                                    std::to_string(run.setup.public_samples) + " public images (cached)"
                                              : "random init (seed " + std::to_string(c.seed) + ")";
  if (mode == SetupMode::plan) return std::move(run.setup);

  if (c.model.tokenizer.empty() && arch.self_contained && !std::filesystem::exists(tok_path)) {
    check_writable_dir(tok_path.parent_path(), "pretrain.cache_dir");
    write_tiny_clip_tokenizer_json(tok_path);
  }
  const ClipTokenizer tokenizer = ClipTokenizer::load(tok_path);
  if (arch.self_contained) { // its vocabulary is the tiny tokenizer's (or any that fits)
    cfg.text.bos_token_id = tokenizer.bos_id();
    cfg.text.eos_token_id = tokenizer.eos_id();
    cfg.text.pad_token_id = tokenizer.pad_id();
  }
  TensorMap weights = pretrained_or_random(run, cfg, tokenizer);
  run.make_task(std::make_shared<const TensorMap>(std::move(weights)), cfg, tokenizer);
  return std::move(run.setup);
}

} // namespace fedvlm::setup_detail
