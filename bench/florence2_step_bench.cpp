// bench/florence2_step_bench.cpp — seconds per training step and per answer on Florence-2-base-sized random weights.
//
// The paper's setting: LoRA (rank 8) on the last decoder layer, float32 and bfloat16, with the
// encoder cache on (each step only decodes: the vision tower and the BART encoder ran once per
// sample) and off (each step encodes its images first), one client's batch vs 8 clients' batches
// in one pass (train_adapters_grouped, scheduler.batch_clients = 8). Generation: greedy answers
// of ANSWER_TOKENS tokens from cached encoder states. On the CPU; on CUDA where LibTorch has it.
// Usage: florence2_step_bench [BATCH] [ANSWER_TOKENS] [STEPS]
#include "fl/runtime/compute_device.hpp"
#include "fl/tasks/local_training.hpp"
#include "model/florence2.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>

namespace {

using namespace fedvlm;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// A pool of `n` random images, prompts and answers, encoded on demand or from a cache.
struct Pool {
  at::Tensor pixels, prompts, labels, encoded; // encoded: undefined when the cache is off
};

Pool make_pool(const Florence2& model, int64_t n, bool cache, c10::Device device) {
  const auto& c = model.config();
  Pool p;
  p.pixels = at::randn({n, 3, c.image_size, c.image_size}).to(device);
  p.prompts = at::randint(4, 1000, {n, 13}, at::kLong).to(device);
  p.labels = at::randint(4, 1000, {n, 8}, at::kLong).to(device);
  if (cache) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < n; i += 4)
      parts.push_back(model.encode(p.pixels.slice(0, i, std::min(n, i + 4)), p.prompts.slice(0, i, std::min(n, i + 4)),
                                   ForwardContext{}));
    p.encoded = at::cat(parts, 0);
  }
  return p;
}

GroupedLoss vqa_loss(const Florence2& model, const Pool& pool, c10::Device device) {
  auto encoder = [&model, &pool, device](const at::Tensor& idx) {
    const at::Tensor i = idx.to(device);
    if (pool.encoded.defined()) return pool.encoded.index_select(0, i);
    at::NoGradGuard no_grad;
    return model.encode(pool.pixels.index_select(0, i), pool.prompts.index_select(0, i), ForwardContext{});
  };
  return {[&model, &pool, encoder, device](const at::Tensor& idx, const ForwardContext& ctx) {
            return model.decode_logits(encoder(idx), pool.labels.index_select(0, idx.to(device)), ctx);
          },
          [&model, &pool, device](const at::Tensor& logits, const at::Tensor& idx) {
            return model.loss(logits, pool.labels.index_select(0, idx.to(device)));
          }};
}

LocalTrainJob client_job(const Florence2& model, int client, int64_t batch, int64_t steps) {
  LoraSettings lora;
  lora.rank = 8;
  std::map<std::string, AdaptableLayer> targets;
  const auto all = model.adaptable_layers();
  for (const auto& name : model.last_decoder_layer_targets()) targets.emplace(name, all.at(name));
  LocalTrainJob job;
  job.adapters = lora_init(targets, lora, static_cast<uint64_t>(client));
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.indices.resize(static_cast<std::size_t>(batch * steps));
  std::iota(job.indices.begin(), job.indices.end(), client * batch * steps);
  job.seed = static_cast<uint64_t>(client);
  return job;
}

} // namespace

int main(int argc, char** argv) {
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 2;
  const int64_t tokens = argc > 2 ? std::atoll(argv[2]) : 8;
  const int64_t steps = argc > 3 ? std::atoll(argv[3]) : 2;
  const int clients = 8;
  at::manual_seed(0);
  const DeviceChoice where = resolve_device(at::hasCUDA() ? "cuda" : "cpu");
  std::printf("Florence-2-base sizes, random weights, LoRA r=8 on the last decoder layer, batch %lld per client, "
              "%lld steps, on %s\n",
              static_cast<long long>(batch), static_cast<long long>(steps), where.device.str().c_str());
  std::printf("%-9s %-13s %14s %14s %16s\n", "dtype", "encoder cache", "1 client s/step", "8 clients s/step",
              "ms per answer");
  for (const Precision precision : {Precision::float32, Precision::bfloat16}) {
    Florence2Config cfg = Florence2Config::base();
    cfg.precision = precision;
    Florence2 model(cfg, 1);
    for (auto& [name, t] : model.mutable_state()) t = t.to(where.device);
    for (const bool cache : {true, false}) {
      const Pool pool = make_pool(model, clients * batch * steps, cache, where.device);
      const GroupedLoss loss = vqa_loss(model, pool, where.device);
      TrainSettings ts;
      ts.batch_size = batch;
      ts.lr = 1e-4;
      ts.local_epochs = 1;
      LoraSettings lora;
      lora.rank = 8;
      auto start = Clock::now();
      (void)train_adapters_grouped(loss, {client_job(model, 0, batch, steps)}, ts, lora, where.device);
      const double one = seconds_since(start) / static_cast<double>(steps);
      std::vector<LocalTrainJob> jobs;
      for (int k = 0; k < clients; ++k) jobs.push_back(client_job(model, k, batch, steps));
      start = Clock::now();
      (void)train_adapters_grouped(loss, std::move(jobs), ts, lora, where.device);
      const double many = seconds_since(start) / static_cast<double>(steps);
      double answer_ms = 0;
      if (cache) {
        GenerationSettings g;
        g.max_new_tokens = tokens;
        at::NoGradGuard no_grad;
        start = Clock::now();
        (void)model.generate(pool.encoded.slice(0, 0, batch), ForwardContext{}, g);
        answer_ms = 1000 * seconds_since(start) / static_cast<double>(batch);
      }
      std::printf("%-9s %-13s %14.3f %16.3f %16s\n", precision == Precision::float32 ? "float32" : "bfloat16",
                  cache ? "on" : "off", one, many, cache ? std::to_string(static_cast<int>(answer_ms)).c_str() : "-");
    }
  }
  std::printf("8 clients s/step: one pass over the 8 clients' batches (their union), per step of each client\n");
  return 0;
}
