// bench/flora_speed_memory_bench.cpp — FLoRA's claim measured: LoRA on CLIP's text encoder vs full fine-tuning, time per round and peak memory.
//
// FLoRA reports 34.72x faster training and 2.47x less memory than full fine-tuning (FedFFT).
// Here one client trains one round on a ViT-B/32-sized CLIP with random weights (its sizes are
// what matter for time and memory), the same images and steps both ways:
//   - LoRA: rank 2, alpha 32 on the text encoder's attention projections (FLoRA's placement);
//   - full: the same model with every Linear of the text encoder trained (per-client copies of
//     their weights and biases, Adam state for each), as FedFFT fine-tunes the text encoder.
// Both run the frozen vision tower once (the task caches image embeddings), so the round is the
// text tower's work over the class prompts plus the optimizer's. Peak memory is the process's
// peak resident size during the round (VmHWM, reset before each), above what it held before.
// Usage: flora_speed_memory_bench [IMAGES] [STEPS_PER_ROUND]  (default 64 8)
#include "fl/tasks/clip_task.hpp"
#include "fl/tasks/lora_target_globs.hpp"
#include "model/clip.hpp"
#include "model/clip_tiny_tokenizer.hpp"
#include "model/clip_tokenizer.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using namespace fedvlm;
using clock_type = std::chrono::steady_clock;

int64_t status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(std::string(field).size()));
  return -1;
}

/// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS.
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

struct Measure {
  double seconds = 0;
  double peak_mib = 0;  ///< peak RSS during the round, above the RSS before it
  double state_mib = 0; ///< what the client holds: trained tensors and optimizer state
};

Measure one_round(const ClipZeroShotTask& task, LocalTrainJob job, const TrainSettings& settings, const LoraSettings& lora) {
  const int64_t before = status_kib("VmRSS:");
  reset_peak();
  const auto start = clock_type::now();
  const LocalTrainResult r = task.train(std::move(job), settings, lora);
  Measure m;
  m.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  m.peak_mib = static_cast<double>(status_kib("VmHWM:") - before) / 1024.0;
  m.state_mib = static_cast<double>(tensor_map_bytes(r.adapters) + tensor_map_bytes(r.optimizer_state)) / (1024.0 * 1024.0);
  return m;
}

} // namespace

int main(int argc, char** argv) {
  const int64_t images = argc > 1 ? std::stoll(argv[1]) : 64;
  const int64_t steps = argc > 2 ? std::stoll(argv[2]) : 8;
  ClipConfig cfg = clip_vit_b32();
  const auto tok_file = std::filesystem::temp_directory_path() / "flora_bench_tokenizer.json";
  write_tiny_clip_tokenizer_json(tok_file); // its end-of-text is its largest id: B/32's pooling finds it
  const ClipTokenizer tokenizer = ClipTokenizer::load(tok_file);
  auto weights = std::make_shared<const TensorMap>(clip_random_weights(cfg, 0));
  at::manual_seed(0);
  const at::Tensor pixels = at::randn({images, 3, cfg.vision.image_size, cfg.vision.image_size});
  const at::Tensor labels = at::arange(images, at::kLong).remainder(10);
  const auto lora_targets = match_lora_targets(clip_adaptable_layers(cfg), kClipFloraTargets);
  const auto all_text = match_lora_targets(clip_adaptable_layers(cfg), {"text_model.encoder.layers.**"});
  std::printf("encoding %lld images with the frozen ViT-B/32 vision tower (once) ...\n", static_cast<long long>(images));
  const ClipZeroShotTask lora_task(weights, cfg, tokenizer, pixels, labels, fashion_mnist_class_names(), lora_targets);
  const ClipZeroShotTask full_task(weights, cfg, tokenizer, pixels, labels, fashion_mnist_class_names(), all_text);

  TrainSettings settings;
  settings.optimizer = OptimizerKind::adam;
  settings.lr = 5e-5;
  settings.adam_eps = 1e-6;
  settings.batch_size = std::max<int64_t>(1, images / steps);
  settings.local_epochs = 1;
  std::vector<int64_t> indices(static_cast<std::size_t>(images));
  for (int64_t i = 0; i < images; ++i) indices[static_cast<std::size_t>(i)] = i;

  LoraSettings lora;
  lora.rank = 2;
  lora.alpha = 32;
  LocalTrainJob lora_job;
  lora_job.adapters = lora_init(lora_targets, lora, 1);
  for (const auto& [name, t] : lora_job.adapters) lora_job.trainable.insert(name);
  lora_job.indices = indices;

  LocalTrainJob full_job;
  for (const auto& [module, shape] : all_text)
    for (const char* suffix : {".weight", ".bias"})
      if (auto it = weights->find(module + suffix); it != weights->end()) {
        full_job.adapters.emplace(it->first, it->second.clone());
        full_job.trainable.insert(it->first);
      }
  full_job.indices = indices;

  (void)one_round(lora_task, lora_job, settings, lora); // warm-up: allocator, thread pool
  const Measure l = one_round(lora_task, lora_job, settings, lora);
  const Measure f = one_round(full_task, full_job, settings, lora);
  std::printf("one client, one round: %lld steps of batch %lld over the 10 class prompts\n", static_cast<long long>(steps),
              static_cast<long long>(settings.batch_size));
  std::printf("  %-34s %10s %16s %18s\n", "", "s/round", "peak +MiB", "trained+optim MiB");
  std::printf("  %-34s %10.3f %16.1f %18.2f\n", "LoRA r=2 on q,k,v,out (FLoRA)", l.seconds, l.peak_mib, l.state_mib);
  std::printf("  %-34s %10.3f %16.1f %18.2f\n", "full: every text-encoder Linear", f.seconds, f.peak_mib, f.state_mib);
  std::printf("  speed-up %.2fx (paper: 34.72x), memory %.2fx by peak, %.1fx by client state (paper: 2.47x)\n",
              f.seconds / l.seconds, l.peak_mib > 0 ? f.peak_mib / l.peak_mib : 0.0, f.state_mib / l.state_mib);
  return 0;
}
