// fl/federation/run_setup.cpp — dataset split (public / federated pool), partitions, model, pretraining cache.
#include "fl/federation/run_setup.hpp"
#include "fl/aggregation/compression.hpp"
#include "support/usable_cores.hpp"
#include "model/florence2_tokens.hpp"
#include "model/clip_tiny_tokenizer.hpp"

#include "fl/config/model_family.hpp"
#include "fl/config/output_paths.hpp"
#include "fl/tasks/pretrain.hpp"
#include "fl/data/vqa_dataset.hpp"
#include "fl/tasks/vqa_task.hpp"
#include "model/bart_tokenizer.hpp"
#include "model/florence2.hpp"
#include "fl/data/clip_pixel_source.hpp"
#include "fl/tasks/clip_pretrain.hpp"
#include "fl/tasks/clip_task.hpp"
#include "fl/runtime/compute_device.hpp"
#include "fl/runtime/thread_plan.hpp"
#include "fl/tasks/full_fine_tuning.hpp"
#include "fl/tasks/lora_target_globs.hpp"
#include "model/classic_nets.hpp"
#include "model/florence2_hf_config.hpp"
#include "fl/config/strategy.hpp"
#include "model/mobilenet_v3.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <iomanip>
#include <sstream>

#include <stdlib.h>

namespace fedvlm {

std::shared_ptr<const ImageDataset> DatasetCache::train_split(const DataSettings& data) { return load(data, DataSplit::train); }

std::shared_ptr<const ImageDataset> DatasetCache::test_split(const DataSettings& data) { return load(data, DataSplit::test); }

std::shared_ptr<const ImageDataset> DatasetCache::load(const DataSettings& data, DataSplit split) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string key = data.dataset + "|" + data.path.string() + (split == DataSplit::train ? "|train" : "|test");
  if (auto it = loaded_.find(key); it != loaded_.end()) return it->second;
  ImageDataset ds;
  try {
    ds = data.dataset == "cifar10" ? load_cifar10(data.path, split)
         : data.dataset == "mnist" ? load_mnist(data.path, split)
                                   : load_fashion_mnist(data.path, split);
  } catch (const std::exception& e) {
    throw std::runtime_error("data.path: " + std::string(e.what()));
  }
  auto shared = std::make_shared<const ImageDataset>(std::move(ds));
  loaded_.emplace(key, shared);
  return shared;
}

namespace {

std::string hex16(uint64_t v) {
  std::ostringstream os;
  os << std::hex << std::setw(16) << std::setfill('0') << v;
  return os.str();
}

/// Identifies a pretrained checkpoint by everything that shapes it.
std::string pretrain_key(const ExperimentConfig& c, int64_t classes, int64_t channels) {
  std::ostringstream os;
  os << "v1|" << c.model.arch << "|" << c.model.dropout << "|" << classes << "|" << channels << "|"
     << c.data.dataset << "|" << c.pretrain.public_samples << "|" << c.pretrain.epochs << "|"
     << c.pretrain.lr << "|" << c.pretrain.batch_size << "|" << c.seed;
  return os.str();
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

} // namespace

namespace {

/// Per-client local splits and domain/label histograms from a partition of `labels`.
void fill_clients(RunSetup& setup, const ExperimentConfig& c, const std::vector<int64_t>& labels, int64_t classes) {
  PartitionSpec spec = c.partition;
  spec.clients = c.federation.clients;
  spec.seed = c.seed;
  const auto parts = partition_indices(labels, classes, spec);
  // A split whose share of a client's samples is under half a sample rounds to nothing: the
  // split code keeps one sample there so that nothing is empty, but that one sample is not the
  // fraction asked for (test_fraction = 0.0001 would score each client on one image, 0.999
  // would train it on one). With test_fraction = 0 the global test alone scores the model.
  if (c.data.test_fraction > 0) {
    for (const bool test_side : {true, false}) {
      const double share = test_side ? c.data.test_fraction : 1 - c.data.test_fraction;
      std::vector<std::size_t> tiny;
      for (std::size_t k = 0; k < parts.size(); ++k)
        if (share * static_cast<double>(parts[k].size()) < 0.5) tiny.push_back(k);
      if (tiny.empty()) continue;
      std::ostringstream os;
      os << "data.test_fraction = " << c.data.test_fraction << " leaves " << (test_side ? "the test" : "the training")
         << " split of " << tiny.size() << " of " << parts.size() << " clients with no sample of its own (under half a "
         << "sample each): ";
      for (std::size_t i = 0; i < tiny.size() && i < 8; ++i)
        os << (i ? ", " : "") << "client " << tiny[i] << " has " << parts[tiny[i]].size() << " samples -> "
           << share * static_cast<double>(parts[tiny[i]].size());
      if (tiny.size() > 8) os << ", ...";
      os << (test_side ? "; raise data.test_fraction (or data.max_samples), or set data.test_fraction = 0 with "
                         "evaluation.global_test = true to score on the global test only"
                       : "; lower data.test_fraction, or give the clients more data (data.max_samples, fewer "
                         "federation.clients)");
      throw std::invalid_argument(os.str());
    }
  }
  for (std::size_t k = 0; k < parts.size(); ++k) {
    LocalSplit split = split_train_test(parts[k], c.data.test_fraction, c.seed + 7919 * (k + 1));
    if (split.train.empty() || (split.test.empty() && c.data.test_fraction > 0))
      throw std::invalid_argument("client " + std::to_string(k) + " has " + std::to_string(parts[k].size()) +
                                  " samples: too few for a train and a test split (see data.max_samples, "
                                  "federation.clients, data.test_fraction)");
    std::vector<int64_t> counts(static_cast<std::size_t>(classes), 0);
    for (int64_t i : parts[k]) ++counts[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
    setup.label_counts.push_back(std::move(counts));
    setup.splits.push_back(std::move(split));
  }
}

std::string fmt_ranks(const std::vector<int>& ranks) {
  std::string out = "[";
  for (std::size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out + "]";
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

/// Per-round bytes of a client of the largest rank (float32 adapters); for full fine-tuning the
/// float32 copies of the trained modules' tensors in `base` (full_tensor_names; their weights
/// only, from the targets' shapes, when the base's tensors are not known).
void fill_bytes(RunSetup& setup, const ExperimentConfig& c, const TensorShapes* base) {
  if (strategy_spec(c.strategy).train_base) {
    int64_t bytes = 0;
    if (base == nullptr) {
      for (const auto& [module, shape] : setup.targets) bytes += shape.out_features * shape.in_features * 4;
    } else {
      setup.full_tensors = full_tensor_names(setup.targets, *base);
      for (const auto& name : setup.full_tensors) {
        int64_t numel = 1;
        for (int64_t d : base->at(name)) numel *= d;
        bytes += numel * 4;
      }
    }
    setup.adapter_bytes = setup.bytes_up_per_client = setup.bytes_down_per_client = bytes;
    return;
  }
  LoraSettings largest = c.lora;
  largest.rank = max_lora_rank(c);
  const TensorMap probe = lora_init(setup.targets, largest, c.seed); // rank vs dims is checked here
  setup.adapter_bytes = static_cast<int64_t>(tensor_map_bytes(probe));
  // An alternating strategy sends B in round 1; its A rounds send the A bytes instead.
  const StrategySpec sspec = spec_in_round(strategy_spec(c.strategy), 1);
  const int64_t shared = static_cast<int64_t>(tensor_map_bytes(shared_part(sspec, probe)));
  setup.bytes_up_per_client = sspec.centralized ? 0 : shared;
  setup.bytes_down_per_client = shared;
  constexpr int64_t kFloat = 4;
  if (sspec.rule == AggregationRule::fedex) // plus the dense residual of every adapted layer
    for (const auto& [name, shape] : setup.targets) setup.bytes_down_per_client += shape.out_features * shape.in_features * kFloat;
  if (sspec.rule == AggregationRule::stack) {
    // The stacked factors of every client of the round: at most the largest ranks of a full round.
    std::vector<int> ranks;
    for (int k = 0; k < c.federation.clients; ++k) ranks.push_back(client_lora_rank(c, k));
    std::sort(ranks.rbegin(), ranks.rend());
    const int per_round = c.federation.clients_per_round > 0 ? c.federation.clients_per_round : c.federation.clients;
    int64_t stacked = 0;
    for (int i = 0; i < per_round; ++i) stacked += ranks[static_cast<std::size_t>(i)];
    setup.bytes_down_per_client = 0;
    for (const auto& [name, shape] : setup.targets)
      setup.bytes_down_per_client += stacked * (shape.out_features + shape.in_features) * kFloat;
  }
}

/// Where the models run: `device` resolved, with a warning when it falls back to the CPU.
c10::Device run_device(const ExperimentConfig& c) {
  const DeviceChoice where = resolve_device(c.device);
  if (!where.fallback.empty()) spdlog::warn("device = \"{}\": {}; running on the CPU", c.device, where.fallback);
  return where.device;
}

/// The linear probe's bytes, once the task knows its feature size (execute mode).
/// The linear probe's bytes ({classes, features}: a float32 weight and bias), known in a
/// dry run too.
void fill_probe_bytes(RunSetup& setup, const ExperimentConfig& c, std::pair<int64_t, int64_t> probe_shape) {
  if (!strategy_spec(c.strategy).train_head) return;
  const auto [classes, features] = probe_shape;
  setup.adapter_bytes = setup.bytes_up_per_client = setup.bytes_down_per_client = (classes * features + classes) * 4;
}

/// A directory removed with everything in it when this goes out of scope (empty: none).
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() = default;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

/// A generated folder under output_dir/.cache, made once (in a temp dir renamed into place).
/// A dry run writes nothing anywhere: it reads the cached folder if there is one, and otherwise
/// generates into `scratch`, a temporary directory removed when the plan is made.
std::filesystem::path synthetic_vqa_dir(const ExperimentConfig& c, SetupMode mode, ScratchDir& scratch) {
  const std::filesystem::path dir = c.output_dir / ".cache" /
                                    ("synthetic_vqa-d" + std::to_string(c.data.synthetic_domains) + "-n" +
                                     std::to_string(c.data.synthetic_per_domain) + "-s" + std::to_string(c.seed));
  if (std::filesystem::exists(dir / "metadata.jsonl")) return dir;
  if (mode == SetupMode::plan) {
    std::string templ = (std::filesystem::temp_directory_path() / "fedvlm-dry-run-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory for the dry run");
    scratch.path = templ;
    std::vector<std::string> domains;
    for (int d = 0; d < c.data.synthetic_domains; ++d) domains.push_back("domain_" + std::to_string(d));
    write_synthetic_vqa_folder(scratch.path / "data", c.data.synthetic_per_domain, domains, c.seed);
    write_tiny_tokenizer_json(scratch.path / "data" / "tokenizer.json");
    return scratch.path / "data";
  }
  std::filesystem::path tmp = dir;
  tmp += ".tmp." + std::to_string(std::hash<std::string>{}(dir.string() + std::to_string(std::rand())));
  std::vector<std::string> domains;
  for (int d = 0; d < c.data.synthetic_domains; ++d) domains.push_back("domain_" + std::to_string(d));
  write_synthetic_vqa_folder(tmp, c.data.synthetic_per_domain, domains, c.seed);
  write_tiny_tokenizer_json(tmp / "tokenizer.json");
  std::error_code ec;
  std::filesystem::rename(tmp, dir, ec);
  if (ec) std::filesystem::remove_all(tmp); // another process made it first
  return dir;
}

// The checkpoint's own config.json, when it has one, is the authority on dropout and image
// preprocessing; its architecture must be the one model.arch names, else the run would fail
// later on shapes with a less helpful message.
Florence2Config checkpoint_config(const Florence2Config& named, const ExperimentConfig& c) {
  if (c.model.weights.empty()) return named;
  const std::filesystem::path file = florence2_hf_config_path(c.model.weights);
  if (!std::filesystem::exists(file)) return named;
  Florence2Config own;
  try {
    own = florence2_config_from_hf(file);
  } catch (const std::exception& e) {
    throw std::runtime_error("model.weights: " + std::string(e.what()));
  }
  const std::string diff = florence2_architecture_difference(own, named);
  if (!diff.empty())
    throw std::runtime_error("model.weights: " + file.string() + " describes another model than model.arch = " +
                             c.model.arch + " (" + diff + ", the checkpoint's value first); set model.arch "
                             "to the checkpoint's size");
  own.name = named.name;
  own.precision = named.precision;
  return own;
}

RunSetup prepare_vqa_run(const ExperimentConfig& c, SetupMode mode) {
  RunSetup setup;
  setup.threads = thread_plan_for(c);
  ScratchDir scratch;
  const std::filesystem::path data_dir = c.data.dataset == "synthetic_vqa" ? synthetic_vqa_dir(c, mode, scratch) : c.data.path;
  VqaDataset data;
  try {
    data = load_vqa_folder(data_dir, c.data.domain_field);
  } catch (const std::exception& e) {
    throw std::runtime_error("data.path: " + std::string(e.what()));
  }
  if (c.data.max_samples > 0 && static_cast<int64_t>(data.samples.size()) > c.data.max_samples)
    data.samples.resize(static_cast<std::size_t>(c.data.max_samples));
  setup.class_names = data.domains;
  setup.pool_samples = static_cast<int64_t>(data.size());
  fill_clients(setup, c, data.domain_ids(), static_cast<int64_t>(data.domains.size()));

  const ModelArch& arch = model_arch(c.model.arch);
  Florence2Config fc = Florence2Config::named(arch.variant);
  fc.precision = c.model.precision == "bfloat16" ? Precision::bfloat16 : Precision::float32;
  fc = checkpoint_config(fc, c);
  setup.targets = resolve_vqa_targets(fc, c.lora_targets);
  fill_bytes(setup, c, nullptr);

  std::filesystem::path tok_path = c.model.tokenizer;
  if (tok_path.empty() && c.data.dataset == "synthetic_vqa" && arch.self_contained)
    tok_path = data_dir / "tokenizer.json";
  if (tok_path.empty() && !c.model.weights.empty())
    tok_path = std::filesystem::is_directory(c.model.weights) ? c.model.weights : c.model.weights.parent_path();
  if (tok_path.empty())
    throw std::invalid_argument("model.tokenizer: not set; expected the checkpoint's tokenizer.json (or vocab.json + "
                                "merges.txt), e.g. from microsoft/Florence-2-base");
  setup.model_origin = c.model.weights.empty() ? "random init (seed " + std::to_string(c.seed) + ")"
                                               : "weights " + c.model.weights.string();
  if (mode == SetupMode::plan) {
    if (!c.model.weights.empty() && !std::filesystem::exists(c.model.weights))
      throw std::runtime_error("model.weights: " + c.model.weights.string() +
                               " does not exist (expected model.safetensors, its sharded index, or the folder "
                               "holding them, as published for microsoft/Florence-2-" + fc.name + ")");
    return setup;
  }

  auto tokenizer = std::make_shared<BartTokenizer>(BartTokenizer::load(tok_path));
  if (!arch.self_contained && !tokenizer->has_token("<loc_0>"))
    tokenizer->add_special_tokens(florence2_added_tokens()); // as Florence-2's processor does
  auto model = std::make_shared<Florence2>(fc, c.seed);
  if (!c.model.weights.empty()) {
    try {
      model->load(c.model.weights);
    } catch (const std::exception& e) {
      throw std::runtime_error("model.weights: " + std::string(e.what()));
    }
  } else if (!arch.self_contained) {
    spdlog::warn("model.weights is not set: {} starts from random weights", c.model.arch);
  }
  VqaTaskSettings vs;
  vs.prompt_prefix = c.data.prompt_prefix;
  vs.max_answer_tokens = c.data.max_answer_tokens;
  vs.generation.max_new_tokens = c.data.max_new_tokens;
  vs.generation.num_beams = c.data.num_beams;
  vs.generation.no_repeat_ngram_size = c.data.no_repeat_ngram_size;
  vs.device = run_device(c);
  model->mutable_state() = tensor_map_to(model->state(), vs.device);
  setup.task = std::make_shared<const VqaTask>(model, tokenizer, data, c.lora_targets, vs);
  return setup;
}

/// An image dataset cut for a run: the public split (pretraining) and the federated pool, the
/// official test split appended to the pool for evaluation.global_test; clients partitioned.
struct ImagePools {
  std::shared_ptr<const ImageDataset> full;
  std::vector<int64_t> public_idx;
  ImageDataset pool;
};

ImagePools image_pools(RunSetup& setup, const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  ImagePools out;
  out.full = datasets.train_split(c.data);
  const auto& full = out.full;
  setup.class_names = full->class_names;

  // The public split and the federated pool are disjoint: one seeded permutation, cut in two.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  const std::vector<int64_t> order = to_vector(at::randperm(full->size(), gen, at::kLong));
  const int64_t public_n = c.pretrain.enabled ? c.pretrain.public_samples : 0;
  if (public_n >= full->size())
    throw std::invalid_argument("pretrain.public_samples (" + std::to_string(public_n) +
                                ") must be smaller than the dataset (" + std::to_string(full->size()) + ")");
  int64_t pool_n = full->size() - public_n;
  if (c.data.max_samples > 0) pool_n = std::min(pool_n, c.data.max_samples);
  out.public_idx.assign(order.begin(), order.begin() + public_n);
  std::vector<int64_t> pool_idx(order.begin() + public_n, order.begin() + public_n + pool_n);
  setup.public_samples = public_n;
  setup.pool_samples = pool_n;

  out.pool = full->subset(pool_idx);
  fill_clients(setup, c, out.pool.label_vector(), out.pool.num_classes());
  if (c.evaluation.global_test) {
    // The official test images join the pool after the clients' samples: the task (and its
    // feature cache) serves them like any others, and no client's split holds them.
    const auto test = datasets.test_split(c.data);
    for (int64_t i = 0; i < test->size(); ++i) setup.global_test.push_back(out.pool.size() + i);
    if (mode == SetupMode::execute) {
      out.pool.images = at::cat({out.pool.images, test->images}, 0);
      out.pool.labels = at::cat({out.pool.labels, test->labels}, 0);
    }
  }
  return out;
}

/// CLIP: the tokenizer (model.tokenizer, beside model.weights, or for clip_tiny the tiny
/// caption tokenizer written to the cache), the weights (a Hugging Face checkpoint, pretrained
/// here on the public split, or random), every pool image encoded once by the frozen vision tower.
RunSetup prepare_clip_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  RunSetup setup;
  setup.threads = thread_plan_for(c);
  ImagePools pools = image_pools(setup, c, datasets, mode);
  std::vector<std::string> class_names = c.data.class_names.empty() ? pools.full->class_names : c.data.class_names;
  if (static_cast<int64_t>(class_names.size()) != pools.full->num_classes())
    throw std::invalid_argument("data.class_names: " + std::to_string(class_names.size()) + " names for the " +
                                std::to_string(pools.full->num_classes()) + " classes of " + c.data.dataset);
  setup.class_names = class_names;

  // LoRA adapts Linears; full fine-tuning trains every tensor of the modules its globs name
  // (LayerNorms and embeddings too). Either way only in the text tower: image features are cached.
  const bool full = strategy_spec(c.strategy).train_base;
  auto resolve_targets = [&](const ClipConfig& config) {
    const TensorShapes shapes = clip_parameter_shapes(config);
    setup.targets = match_lora_targets(full ? weighted_modules(shapes) : clip_adaptable_layers(config), c.lora_targets);
    clip_check_text_tower(setup.targets, full && !c.strategy_trainable.empty() ? "strategy.trainable" : "lora.targets");
    fill_bytes(setup, c, &shapes);
    fill_probe_bytes(setup, c, {static_cast<int64_t>(class_names.size()), config.projection_dim});
  };
  auto make_task = [&](std::shared_ptr<const TensorMap> weights, const ClipConfig& config, const ClipTokenizer& tokenizer) {
    // CLIP's preprocessing starts from [0, 1] intensities, not the loader's normalised values.
    const ClipPixelsFromImages pixels(pools.pool.images01(), config.vision.image_size); // a batch at a time
    const c10::Device device = run_device(c); // the task runs where its weights are
    if (!device.is_cpu()) weights = std::make_shared<const TensorMap>(tensor_map_to(*weights, device));
    setup.task = std::make_shared<const ClipZeroShotTask>(std::move(weights), config, tokenizer, pixels, pools.pool.labels,
                                                          class_names, setup.targets, c.clip.templates,
                                                          /*encode_batch_size=*/256, /*any_weighted_module=*/full);
  };

  ClipConfig cfg = clip_config_named(c.model.arch);
  if (!c.model.weights.empty() && mode == SetupMode::execute) {
    // The checkpoint's config decides the sizes; another size than model.arch is refused first.
    ClipCheckpoint ck;
    try {
      ck = clip_load_hf(c.model.weights, c.model.arch);
    } catch (const std::exception& e) {
      throw std::runtime_error("model.weights: " + std::string(e.what()));
    }
    cfg = ck.config;
    setup.model_origin = "weights " + c.model.weights.string();
    resolve_targets(cfg);
    std::filesystem::path tok = c.model.tokenizer.empty() ? c.model.weights : c.model.tokenizer;
    const ClipTokenizer tokenizer = ClipTokenizer::load(tok);
    make_task(std::make_shared<const TensorMap>(std::move(ck.weights)), cfg, tokenizer);
    return setup;
  }
  if (!c.model.weights.empty() && !std::filesystem::exists(c.model.weights))
    throw std::runtime_error("model.weights: " + c.model.weights.string() +
                             " does not exist (expected a folder with config.json and model.safetensors, as published "
                             "for openai/clip-vit-base-patch32)");

  std::filesystem::path tok_path = c.model.tokenizer;
  const ModelArch& arch = model_arch(c.model.arch);
  if (tok_path.empty() && arch.self_contained)
    tok_path = resolved_cache_dir(c) / (std::string(arch.arch) + "_tokenizer.json");
  if (tok_path.empty())
    throw std::invalid_argument("model.tokenizer: not set; expected CLIP's tokenizer.json (or vocab.json + merges.txt), e.g. "
                                "from openai/clip-vit-base-patch32");
  resolve_targets(cfg);
  setup.model_origin = c.pretrain.enabled ? "pretrained here contrastively on " + std::to_string(setup.public_samples) +
                                                " public images (cached)"
                                          : "random init (seed " + std::to_string(c.seed) + ")";
  if (mode == SetupMode::plan) return setup;

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
  TensorMap weights;
  if (c.pretrain.enabled) {
    ClipPretrainSettings ps;
    ps.epochs = c.pretrain.epochs;
    ps.batch_size = c.pretrain.batch_size;
    ps.lr = c.pretrain.lr;
    const ImageDataset pub = pools.full->subset(pools.public_idx);
    const ClipPixelsFromImages pub_pixels(pub.images01(), cfg.vision.image_size); // a batch at a time
    const std::vector<std::string>& captions = c.clip.pretrain_templates.empty() ? c.clip.templates : c.clip.pretrain_templates;
    const std::string key = clip_pretrain_key(cfg, pub_pixels, pub.labels, class_names, captions, ps, c.seed);
    const std::filesystem::path cache = resolved_cache_dir(c) / ("pretrain-" + c.model.arch + "-" + hex16(std::hash<std::string>{}(key)) + ".safetensors");
    check_writable_dir(cache.parent_path(), "pretrain.cache_dir");
    ClipPretrainReport report;
    const ScopedIntraOpThreads pretrain_threads(setup.threads.pretrain);
    const auto t0 = std::chrono::steady_clock::now();
    weights = clip_pretrain_cached(cache, cfg, tokenizer, pub_pixels, pub.labels, class_names, captions, ps, c.seed,
                                   &report, [](int e, double loss) { spdlog::info("CLIP pretrain epoch {}: loss {:.4f}", e, loss); });
    setup.pretrain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    setup.model_origin = (report.from_cache ? "pretrained, cached " : "pretrained now, cached to ") + cache.string();
  } else {
    spdlog::warn("{} starts from random weights (no model.weights, pretraining off)", c.model.arch);
    weights = clip_random_weights(cfg, c.seed);
  }
  make_task(std::make_shared<const TensorMap>(std::move(weights)), cfg, tokenizer);
  return setup;
}

} // namespace

ThreadPlan thread_plan_for(const ExperimentConfig& c) {
  return plan_threads(c.threads, c.scheduler.concurrency, usable_cores());
}

RunSetup prepare_run(const ExperimentConfig& c, DatasetCache& datasets, SetupMode mode) {
  const ModelFamily family = model_arch(c.model.arch).family;
  if (family == ModelFamily::florence2) return prepare_vqa_run(c, mode);
  if (family == ModelFamily::clip) return prepare_clip_run(c, datasets, mode);
  RunSetup setup;
  setup.threads = thread_plan_for(c);
  ImagePools pools = image_pools(setup, c, datasets, mode);
  const auto& full = pools.full;
  const std::vector<int64_t>& public_idx = pools.public_idx;
  const int64_t public_n = setup.public_samples;
  ImageDataset& pool = pools.pool;

  const ModelArch& arch = model_arch(c.model.arch);
  MobileNetV3Config mc;
  mc.variant = arch.variant; // "small" | "large" (unused by the classic nets)
  mc.num_classes = full->num_classes();
  mc.in_channels = full->images.size(1);
  mc.dropout = c.model.dropout;
  std::shared_ptr<ImageClassifier> model;
  if (arch.family == ModelFamily::classic) {
    if (full->images.size(1) != 1 || full->images.size(2) != 28 || full->images.size(3) != 28)
      throw std::invalid_argument("model.arch: " + c.model.arch + " takes 28 x 28 grey images; data.dataset \"" +
                                  c.data.dataset + "\" has " + tensor_shape_string(full->images.sizes().slice(1)));
    model = make_classic_net(c.model.arch, mc.num_classes, c.seed);
  } else {
    model = make_mobilenet_v3(mc, c.seed);
  }
  setup.model_origin = "random init (seed " + std::to_string(c.seed) + ")";
  const bool full_fine_tuning = strategy_spec(c.strategy).train_base;
  auto load_state = [&](const TensorMap& weights) {
    if (arch.family == ModelFamily::mobilenet_v3) return mobilenet_v3_load_state(*model, weights);
    load_state_exactly(*model, weights);
  };

  setup.targets = resolve_lora_targets(*model, c.lora_targets, full_fine_tuning);
  const TensorShapes state_shapes = tensor_shapes(model->state());
  fill_bytes(setup, c, &state_shapes);
  if (strategy_spec(c.strategy).train_head) { // the probe's input: the trunk's features of one image
    at::NoGradGuard no_grad;
    const at::Tensor one = at::zeros({1, full->images.size(1), full->images.size(2), full->images.size(3)});
    fill_probe_bytes(setup, c, {mc.num_classes, model->features(one, ForwardContext{}).size(1)});
  }

  if (!c.model.weights.empty()) {
    setup.model_origin = "weights " + c.model.weights.string();
    if (mode == SetupMode::execute) {
      try {
        const TensorMap weights = safetensors_load_any(c.model.weights);
        require_finite_weights(weights, c.model.weights.string());
        load_state(weights);
      } catch (const std::exception& e) {
        throw std::runtime_error("model.weights: " + std::string(e.what()));
      }
    } else if (!std::filesystem::exists(c.model.weights)) {
      throw std::runtime_error("model.weights: " + c.model.weights.string() +
                               " does not exist (expected a .safetensors file with torchvision " +
                               c.model.arch + " parameter names)");
    }
  }

  if (c.pretrain.enabled) {
    const std::filesystem::path cache_dir = resolved_cache_dir(c);
    const std::string key = pretrain_key(c, mc.num_classes, mc.in_channels);
    const std::filesystem::path ckpt =
        cache_dir / ("pretrain-" + c.model.arch + "-" + hex16(std::hash<std::string>{}(key)) + ".safetensors");
    if (std::filesystem::exists(ckpt)) {
      setup.model_origin = "pretrained, cached " + ckpt.string();
      if (mode == SetupMode::execute) {
        const SafetensorsFile f = safetensors_load(ckpt);
        auto it = f.metadata.find("fedvlm.pretrain_key");
        if (it == f.metadata.end() || it->second != key)
          throw std::runtime_error(ckpt.string() + ": cached checkpoint was made for other settings; delete it");
        require_finite_weights(f.tensors, ckpt.string() + " (delete it to pretrain again)");
        load_state(f.tensors);
      }
    } else {
      setup.model_origin = "pretrained now on " + std::to_string(public_n) + " public samples, cached to " + ckpt.string();
      if (mode == SetupMode::execute) {
        check_writable_dir(cache_dir, "pretrain.cache_dir"); // before the minutes of pretraining, not after
        spdlog::info("pretraining {} on {} public samples for {} epochs (cached afterwards in {})",
                     c.model.arch, public_n, c.pretrain.epochs, ckpt.string());
        const ImageDataset pub = full->subset(public_idx);
        const ScopedIntraOpThreads pretrain_threads(setup.threads.pretrain);
        const PretrainReport rep = pretrain_classifier(*model, pub, c.pretrain, c.seed, [](int e, double loss) {
          spdlog::info("pretrain epoch {}: loss {:.4f}", e, loss);
        });
        spdlog::info("pretraining done in {:.1f} s ({} steps, {} intra-op threads)", rep.seconds, rep.steps,
                     setup.threads.pretrain);
        setup.pretrain_seconds = rep.seconds;
        // A diverged pretraining must not be cached, or every later run would reload it.
        require_finite_weights(model->state(), "pretraining (lower pretrain.lr)");
        safetensors_save(ckpt, model->state(), {{"fedvlm.pretrain_key", key}});
      }
    }
  }

  if (mode == SetupMode::execute) {
    const c10::Device device = run_device(c);
    model->mutable_state() = tensor_map_to(model->state(), device); // pretraining ran on the CPU
    setup.task = std::make_shared<const ClassificationTask>(
        std::make_shared<const FrozenBase>(model, std::move(pool), c.lora_targets, 512, full_fine_tuning, device));
  }
  return setup;
}

std::string describe_plan(const ExperimentConfig& c, const RunSetup& s) {
  const StrategySpec& spec = strategy_spec(c.strategy);
  std::ostringstream os;
  os << "run " << c.name << "/" << c.run_label << "\n"
     << "  strategy     " << spec.name << " — " << spec.summary
     << (c.train.prox_mu > 0 ? " + FedProx mu=" + std::to_string(c.train.prox_mu) : "") << "\n"
     << "  model        " << c.model.arch << ", " << s.model_origin << "\n"
     << "  data         " << c.data.dataset << (c.data.dataset == "synthetic_vqa" ? std::string(" (generated)") : " at " + c.data.path.string()) << ": " << s.pool_samples
     << " federated samples" << (s.public_samples ? ", " + std::to_string(s.public_samples) + " public (pretraining)" : "")
     << "\n"
     << "  partition    " << to_string(c.partition.scheme) << " over " << c.federation.clients << " clients, "
     << c.data.test_fraction * 100 << "% local test\n"
     << "  rounds       " << c.federation.rounds << " x " << c.train.local_epochs << " local epochs, "
     << (c.federation.clients_per_round ? std::to_string(c.federation.clients_per_round) : std::string("all"))
     << " clients per round, " << to_string(c.federation.weighting) << " weighting\n"
     << "  threads      " << s.threads.describe() << "\n";
  if (s.threads.oversubscribed()) os << "  warning      " << s.threads.warning() << "\n";
  if (spec.train_base) os << "  trained      every tensor of";
  else if (spec.train_head) os << "  trained      a linear probe on the frozen features";
  else
    os << "  LoRA         r="
       << (c.lora_client_ranks.empty() ? std::to_string(c.lora.rank) : "per client " + fmt_ranks(c.lora_client_ranks))
       << " alpha=" << c.lora.alpha << " dropout=" << c.lora.dropout << " on";
  if (!spec.train_head)
    for (const auto& [name, shape] : s.targets) os << " " << name << " (" << shape.out_features << "x" << shape.in_features << ")";
  const StrategySpec first = spec_in_round(spec, 1);
  os << "\n  travels      " << s.bytes_up_per_client << " B up per client, " << s.bytes_down_per_client
     << " B down per client, per " << (spec.alternating ? "odd round; even rounds send the A factors instead" : "round")
     << " (adapter " << s.adapter_bytes << " B):";
  for (const auto& [name, shape] : s.targets) {
    if (first.share_a) os << " " << name << ".lora_A";
    if (first.share_b) os << " " << name << ".lora_B";
  }
  if (spec.rule == AggregationRule::fedex) os << "; down also each layer's dense residual (out x in)";
  if (spec.rule == AggregationRule::stack) os << "; down the stacked factors of every client of the round, at most";
  if (spec.rule == AggregationRule::flexlora || spec.rule == AggregationRule::hetlora)
    os << "; down each client's own factors at its rank (largest shown)";
  if (first.share_base && !s.full_tensors.empty())
    for (const auto& name : s.full_tensors) os << " " << name;
  else
    for (const auto& [name, shape] : s.targets)
      if (first.share_base) os << " " << name << ".weight/.bias";
  if (first.share_head) os << " probe.weight probe.bias (a linear classifier on the frozen features)";
  if (!shares_anything(spec)) os << " nothing";
  if (c.compression.up != CompressionKind::none && shares_anything(spec)) {
    std::vector<std::vector<int64_t>> shapes; // what one client sends up, float32
    for (const auto& [name, shape] : s.targets) {
      if (first.share_a) shapes.push_back({max_lora_rank(c), shape.in_features});
      if (first.share_b) shapes.push_back({shape.out_features, max_lora_rank(c)});
    }
    if (shapes.empty()) shapes.push_back({s.bytes_up_per_client / 4}); // base copies or a probe: as one tensor
    os << "\n  compressed   " << to_string(c.compression.up) << " up: " << encoded_bytes(shapes, c.compression)
       << " B per client instead of " << s.bytes_up_per_client << " B";
  }
  os << "\n  clients      id  train  test  " << (c.data.is_vqa() ? "domains" : "labels") << " (count per " << (c.data.is_vqa() ? "domain" : "class") << ")\n";
  for (std::size_t k = 0; k < s.splits.size(); ++k) {
    os << "               " << std::setw(2) << k << " " << std::setw(6) << s.splits[k].train.size() << " "
       << std::setw(5) << s.splits[k].test.size() << "  ";
    for (std::size_t cl = 0; cl < s.label_counts[k].size(); ++cl)
      if (s.label_counts[k][cl] > 0) os << cl << ":" << s.label_counts[k][cl] << " ";
    os << "\n";
  }
  return os.str();
}

} // namespace fedvlm
