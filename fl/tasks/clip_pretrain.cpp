// fl/tasks/clip_pretrain.cpp — label-aware symmetric InfoNCE with AdamW over every CLIP weight, and its cache.
#include "fl/tasks/clip_pretrain.hpp"

#include "fl/tasks/adapter_optimizer.hpp"
#include "fl/tasks/clip_task.hpp"
#include "fl/runtime/interrupt.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>

namespace fedvlm {
namespace {

const std::string kKeyMetadata = "fedvlm.clip_pretrain_key";

// Soft-target cross-entropy: mean over rows of -Σ_j target_ij · log softmax(logits)_ij.
at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& target) {
  return -(target * at::log_softmax(logits, 1)).sum(1).mean();
}

/// Refuses inputs pretraining cannot use, naming what is wrong.
void check_pretrain_inputs(const ClipConfig& config, const ClipPixelSource& pixels, const at::Tensor& labels,
                           const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                           const ClipPretrainSettings& settings) {
  clip_config_check(config);
  const int64_t n = labels.dim() == 1 ? labels.size(0) : 0;
  if (n < 2 || pixels.size() != n)
    throw std::invalid_argument("clip_pretrain: expected at least 2 images with one label each, got " +
                                std::to_string(pixels.size()) + " images and labels " +
                                tensor_shape_string(labels.sizes()));
  if (class_names.empty() || templates.empty())
    throw std::invalid_argument("clip_pretrain: need at least one class name and one template");
  if (settings.epochs < 1 || settings.batch_size < 2 || !(settings.lr > 0))
    throw std::invalid_argument("clip_pretrain: expected epochs >= 1, batch_size >= 2 and lr > 0");
  const int64_t classes = static_cast<int64_t>(class_names.size());
  const at::Tensor lab_all = labels.to(at::kLong);
  if (lab_all.min().item<int64_t>() < 0 || lab_all.max().item<int64_t>() >= classes)
    throw std::invalid_argument("clip_pretrain: labels must lie in [0, " + std::to_string(classes) +
                                ") (one per class name), got [" + std::to_string(lab_all.min().item<int64_t>()) +
                                ", " + std::to_string(lab_all.max().item<int64_t>()) + "]");
}

/// The symmetric contrastive loss of one batch: every image against its batch's captions, a
/// caption of the same class counting as a match.
at::Tensor batch_loss(const TensorMap& w, const ClipConfig& config, const ClipPixelSource& pixels, const at::Tensor& ids,
                      const at::Tensor& idx, const at::Tensor& lab, const at::Tensor& rows) {
  const ForwardContext ctx; // CLIP has no dropout; nothing else to switch
  // Encode each distinct caption once, then spread it over the batch.
  const auto unique = at::_unique(rows, /*sorted=*/true, /*return_inverse=*/true);
  const at::Tensor txt =
      clip_encode_text(w, config, ids.index_select(0, std::get<0>(unique)), ctx).index_select(0, std::get<1>(unique));
  const at::Tensor img = clip_encode_image(w, config, pixels.pixels(idx), ctx); // preprocessed now
  const at::Tensor logits = clip_logits(img, txt, w.at("logit_scale"));
  const at::Tensor same = lab.unsqueeze(1).eq(lab.unsqueeze(0)).to(logits.scalar_type());
  const at::Tensor target = same / same.sum(1, /*keepdim=*/true); // symmetric relation: one matrix
  return 0.5 * (soft_cross_entropy(logits, target) + soft_cross_entropy(logits.t(), target));
}

} // namespace

TensorMap clip_pretrain(const ClipConfig& config, const ClipTokenizer& tokenizer, const ClipPixelSource& pixels,
                        const at::Tensor& labels, const std::vector<std::string>& class_names,
                        const std::vector<std::string>& templates, const ClipPretrainSettings& settings,
                        uint64_t seed, ClipPretrainReport* report, const std::function<void(int, double)>& on_epoch) {
  const auto t0 = std::chrono::steady_clock::now();
  check_pretrain_inputs(config, pixels, labels, class_names, templates, settings);
  const int64_t n = labels.size(0);
  const int64_t T = static_cast<int64_t>(templates.size());
  const at::Tensor lab_all = labels.to(at::kLong);
  std::vector<std::string> prompts; // class-major: row c·T + t
  for (const auto& c : class_names)
    for (const auto& t : templates) prompts.push_back(clip_fill_template(t, c));
  const at::Tensor ids = clip_tokenize_prompts(tokenizer, config, prompts);

  TensorMap w = clip_random_weights(config, seed);
  std::set<std::string> decay, no_decay;
  for (auto& [name, t] : w) {
    t.requires_grad_(true);
    (t.dim() >= 2 ? decay : no_decay).insert(name);
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0xc11bULL);
  OptimizerSettings with_decay;
  with_decay.kind = OptimizerKind::adamw;
  with_decay.beta2 = 0.98; // CLIP's
  with_decay.eps = 1e-6;
  with_decay.weight_decay = settings.weight_decay;
  OptimizerSettings without_decay = with_decay;
  without_decay.weight_decay = 0;
  TensorMap opt_state;
  const double max_scale = std::log(100.0);

  ClipPretrainReport rep;
  for (int epoch = 0; epoch < settings.epochs; ++epoch) {
    const at::Tensor order = at::randperm(n, gen, at::kLong);
    double loss_sum = 0;
    int64_t batches = 0;
    for (int64_t begin = 0; begin + 1 < n; begin += settings.batch_size) {
      throw_if_interrupted();
      const at::Tensor idx = order.slice(0, begin, std::min(n, begin + settings.batch_size));
      const at::Tensor lab = lab_all.index_select(0, idx);
      const at::Tensor rows = lab * T + (idx + epoch).remainder(T); // each sample's caption
      const at::Tensor loss = batch_loss(w, config, pixels, ids, idx, lab, rows);
      const double value = loss.item<double>();
      if (!std::isfinite(value))
        throw std::runtime_error("clip_pretrain: loss became " + std::to_string(value) + " at epoch " +
                                 std::to_string(epoch + 1) + ", step " + std::to_string(rep.steps + 1) +
                                 " (lower the learning rate)");
      for (auto& [name, t] : w)
        if (t.grad().defined()) t.mutable_grad().zero_();
      loss.backward();
      const double warm = settings.warmup_steps > 0
                              ? std::min(1.0, static_cast<double>(rep.steps + 1) / static_cast<double>(settings.warmup_steps))
                              : 1.0;
      with_decay.lr = without_decay.lr = settings.lr * warm;
      optimizer_step(w, decay, opt_state, with_decay);
      optimizer_step(w, no_decay, opt_state, without_decay);
      {
        at::NoGradGuard no_grad;
        w.at("logit_scale").clamp_(0.0, max_scale);
      }
      loss_sum += value;
      ++batches;
      ++rep.steps;
    }
    const double mean = loss_sum / static_cast<double>(std::max<int64_t>(1, batches));
    if (epoch == 0) rep.first_epoch_loss = mean;
    rep.last_epoch_loss = mean;
    if (on_epoch) on_epoch(epoch + 1, mean);
  }
  for (auto& [name, t] : w) t = t.detach().contiguous();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report) *report = rep;
  return w;
}

std::string clip_pretrain_key(const ClipConfig& config, const ClipPixelSource& pixels, const at::Tensor& labels,
                              const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                              const ClipPretrainSettings& settings, uint64_t seed) {
  std::ostringstream os;
  os.precision(17);
  os << "clip_pretrain v1; arch " << config.name << "; vision " << config.vision.hidden_size << 'x' << config.vision.num_layers << 'x' << config.vision.num_heads
     << 'x' << config.vision.intermediate_size << " img " << config.vision.image_size << '/'
     << config.vision.patch_size << "; text " << config.text.vocab_size << 'x' << config.text.hidden_size << 'x'
     << config.text.num_layers << 'x' << config.text.num_heads << 'x' << config.text.intermediate_size << " pos "
     << config.text.max_positions << " eos " << config.text.eos_token_id << "; proj " << config.projection_dim
     << " scale0 " << config.logit_scale_init << "; epochs " << settings.epochs << " batch " << settings.batch_size
     << " lr " << settings.lr << " wd " << settings.weight_decay << " warmup " << settings.warmup_steps << "; seed "
     << seed << "; classes";
  for (const auto& c : class_names) os << " \"" << c << '"';
  os << "; templates";
  for (const auto& t : templates) os << " \"" << t << '"';
  // A cheap fingerprint of the data: count, sums and a position-weighted sum (position in the
  // flattened (N, 3, S, S) pixels), read a range at a time so the pixels are never all in memory.
  constexpr int64_t kChunk = 256;
  double sum = 0, weighted = 0;
  int64_t offset = 0;
  for (int64_t b = 0; b < pixels.size(); b += kChunk) {
    const at::Tensor p = pixels.range(b, std::min(pixels.size(), b + kChunk)).to(at::kDouble).flatten();
    const at::Tensor weights = at::arange(offset, offset + p.numel(), p.options()).remainder(9973).add(1);
    sum += p.sum().item<double>();
    weighted += (p * weights).sum().item<double>();
    offset += p.numel();
  }
  os << "; samples " << labels.numel() << " pixels " << sum << ' ' << weighted << " labels "
     << (labels.to(at::kDouble) * at::arange(labels.numel(), at::kDouble).add(1)).sum().item<double>();
  return os.str();
}

TensorMap clip_pretrain_cached(const std::filesystem::path& cache_file, const ClipConfig& config,
                               const ClipTokenizer& tokenizer, const ClipPixelSource& pixels, const at::Tensor& labels,
                               const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                               const ClipPretrainSettings& settings, uint64_t seed, ClipPretrainReport* report,
                               const std::function<void(int, double)>& on_epoch) {
  const std::string key = clip_pretrain_key(config, pixels, labels, class_names, templates, settings, seed);
  if (std::filesystem::exists(cache_file)) {
    SafetensorsFile f = safetensors_load(cache_file);
    auto it = f.metadata.find(kKeyMetadata);
    if (it == f.metadata.end() || it->second != key)
      throw std::runtime_error(cache_file.string() +
                               ": cached CLIP pretraining was made for other settings or data; delete it to "
                               "pretrain again");
    require_finite_weights(f.tensors, cache_file.string());
    clip_validate_weights(f.tensors, config);
    TensorMap out;
    for (auto& [name, t] : f.tensors) out.emplace(name, t.to(at::kFloat).contiguous());
    if (report) {
      *report = ClipPretrainReport{};
      report->from_cache = true;
    }
    return out;
  }
  TensorMap w = clip_pretrain(config, tokenizer, pixels, labels, class_names, templates, settings, seed, report,
                              on_epoch);
  require_finite_weights(w, "clip_pretrain (lower the learning rate)"); // never cache a diverged model
  safetensors_save(cache_file, w, {{kKeyMetadata, key}});
  return w;
}

} // namespace fedvlm
