// fl/tasks/vqa_task.cpp — tokenised VQA pool, encoder cache, teacher-forced training, token metrics.
#include "fl/tasks/vqa_task.hpp"

#include "fl/tasks/evaluation_pass.hpp"

#include "fl/runtime/interrupt.hpp"

#include "model/image_processor.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace fedvlm {

std::string normalize_answer(const std::string& text) {
  std::size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  std::string out = text.substr(b, e - b);
  if (!out.empty() && out.back() == '.') out.pop_back();
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace {

/// Rows of unequal length → (N, width) int64, filled with `fill`.
at::Tensor pad_rows(const std::vector<std::vector<int64_t>>& rows, int64_t fill) {
  int64_t width = 1;
  for (const auto& r : rows) width = std::max<int64_t>(width, static_cast<int64_t>(r.size()));
  at::Tensor out = at::full({static_cast<int64_t>(rows.size()), width}, fill, at::kLong);
  auto acc = out.accessor<int64_t, 2>();
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < rows[i].size(); ++j) acc[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = rows[i][j];
  return out;
}


} // namespace

std::map<std::string, AdaptableLayer> resolve_vqa_targets(const Florence2Config& config,
                                                          const std::vector<std::string>& lora_targets) {
  const auto adaptable = florence2_adaptable_layers(config);
  const auto last = florence2_last_decoder_layer_targets(config);
  std::map<std::string, AdaptableLayer> out;
  for (const auto& name : lora_targets) {
    if (name == "last_decoder_layer") {
      for (const auto& t : last) out.emplace(t, adaptable.at(t));
      continue;
    }
    auto it = adaptable.find(name);
    if (it == adaptable.end())
      throw std::invalid_argument("lora.targets: '" + name + "' is not an adaptable layer of Florence-2 " +
                                  config.name + " (decoder Linears such as " + last.front() +
                                  ", or \"last_decoder_layer\")");
    out.emplace(name, it->second);
  }
  return out;
}

VqaTask::VqaTask(std::shared_ptr<const Florence2> model, std::shared_ptr<const BartTokenizer> tokenizer,
                 const VqaDataset& data, const std::vector<std::string>& lora_targets, VqaTaskSettings settings)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), settings_(std::move(settings)) {
  targets_ = resolve_vqa_targets(model_->config(), lora_targets);
  const int64_t vocab = model_->config().text.vocab_size;
  if (tokenizer_->vocab_size() > vocab)
    throw std::invalid_argument("model.tokenizer: " + std::to_string(tokenizer_->vocab_size()) +
                                " tokens, but the model's vocabulary has " + std::to_string(vocab));

  std::vector<std::vector<int64_t>> prompts, answers;
  for (const auto& s : data.samples) {
    prompts.push_back(tokenizer_->encode(settings_.prompt_prefix + s.question));
    std::vector<int64_t> a = tokenizer_->encode(s.answer);
    if (static_cast<int64_t>(a.size()) > settings_.max_answer_tokens) {
      a.resize(static_cast<std::size_t>(settings_.max_answer_tokens));
      a.back() = tokenizer_->eos_id();
    }
    answers.push_back(std::move(a));
    answers_.push_back(s.answer);
  }
  require_on_device(model_->state(), settings_.device, "VqaTask");
  prompt_ids_ = pad_rows(prompts, tokenizer_->pad_id()).to(settings_.device);
  labels_ = pad_rows(answers, -100).to(settings_.device);

  ImageProcessorConfig ip;
  ip.size = model_->config().image_size;
  ip.mean = model_->config().image_mean;
  ip.std = model_->config().image_std;
  std::vector<at::Tensor> images;
  for (std::size_t i = 0; i < data.size(); ++i) {
    throw_if_interrupted(); // thousands of images take minutes to decode: Ctrl-C must not wait for them
    images.push_back(load_image_tensor(data.image_path(i), ip));
  }
  pixels_ = (images.empty() ? at::empty({0, 3, ip.size, ip.size}) : at::stack(images)).to(settings_.device);

  // Encoder output size: (1 + grid tokens + prompt) × d per sample.
  const int64_t grid = (ip.size / 32) * (ip.size / 32);
  const int64_t element = model_->config().precision == Precision::bfloat16 ? 2 : 4;
  const int64_t per_sample = (1 + grid + prompt_ids_.size(1)) * model_->config().text.d_model * element;
  if (per_sample * static_cast<int64_t>(data.size()) <= settings_.encoder_cache_bytes && data.size() > 0) {
    ForwardContext eval_ctx;
    std::vector<at::Tensor> parts;
    const int64_t n = static_cast<int64_t>(data.size());
    for (int64_t b = 0; b < n; b += 16)
      parts.push_back(model_->encode(pixels_.slice(0, b, std::min(n, b + 16)),
                                     prompt_ids_.slice(0, b, std::min(n, b + 16)), eval_ctx));
    encoded_ = at::cat(parts, 0);
    pixels_ = at::Tensor(); // the images are no longer needed
  }
}

int64_t VqaTask::shared_bytes() const {
  int64_t bytes = static_cast<int64_t>(tensor_map_bytes(model_->state()));
  for (const at::Tensor* t : {&pixels_, &prompt_ids_, &labels_, &encoded_})
    if (t->defined()) bytes += t->numel() * static_cast<int64_t>(t->element_size());
  return bytes;
}

const TensorMap& VqaTask::base_weights() const { return model_->state(); }

std::string VqaTask::cache_summary() const {
  const std::string adapted = "LoRA on " + std::to_string(targets_.size()) + " decoder Linears; ";
  if (encoded_.defined())
    return adapted + "vision tower and encoder run once for " + std::to_string(size()) +
           " samples (cached encoder output, " +
           std::to_string(encoded_.numel() * static_cast<int64_t>(encoded_.element_size()) >> 20) + " MiB)";
  return adapted + "encoder output over the cache budget: encoded per batch, without autograd";
}

at::Tensor VqaTask::encoder_hidden(const at::Tensor& any_indices) const {
  const at::Tensor indices = any_indices.to(settings_.device);
  if (encoded_.defined()) return encoded_.index_select(0, indices);
  return model_->encode(pixels_.index_select(0, indices), prompt_ids_.index_select(0, indices), ForwardContext{});
}

LocalTrainResult VqaTask::train(LocalTrainJob job, const TrainSettings& settings, const LoraSettings& lora) const {
  return train_adapters(
      [this](const at::Tensor& batch, const ForwardContext& ctx) {
        const at::Tensor lab = labels(batch);
        return model_->loss(model_->decode_logits(encoder_hidden(batch), lab, ctx), lab);
      },
      std::move(job), settings, lora, settings_.device);
}

std::vector<LocalTrainResult> VqaTask::train_group(std::vector<LocalTrainJob> jobs, const TrainSettings& settings,
                                                   const LoraSettings& lora) const {
  for (const auto& job : jobs)
    if (!groupable(job)) return FederatedTask::train_group(std::move(jobs), settings, lora);
  // Labels are padded to the pool's longest answer, so the union's rows line up; the decoder
  // is causal, so a client's tokens see only its own rows and positions.
  GroupedLoss grouped{[this](const at::Tensor& batch, const ForwardContext& ctx) {
                        return model_->decode_logits(encoder_hidden(batch), labels(batch), ctx);
                      },
                      [this](const at::Tensor& logits, const at::Tensor& batch) { return model_->loss(logits, labels(batch)); }};
  return train_adapters_grouped(grouped, std::move(jobs), settings, lora, settings_.device);
}

EvalResult VqaTask::evaluate(const TensorMap& adapters, const std::vector<int64_t>& indices,
                             const LoraSettings& lora, int64_t batch_size) const {
  EvalResult result;
  if (indices.empty()) return result;
  const EvaluationPass pass(adapters, lora, settings_.device);
  const ForwardContext& ctx = pass.context();
  std::vector<int64_t> y_true, y_pred;
  double loss_sum = 0;
  int64_t tokens = 0, exact = 0;
  pass.for_each_batch(indices, batch_size, at::kCPU, [&](const at::Tensor& batch) {
    const at::Tensor enc = encoder_hidden(batch);
    const at::Tensor lab = labels(batch);
    const at::Tensor logits = model_->decode_logits(enc, lab, ctx);
    const at::Tensor mask = lab.ne(-100);
    const int64_t count = mask.sum().item<int64_t>();
    loss_sum += model_->loss(logits, lab).item<double>() * static_cast<double>(count);
    tokens += count;
    append_ids(y_true, lab.masked_select(mask));
    append_ids(y_pred, logits.argmax(-1).masked_select(mask));

    const at::Tensor generated = model_->generate(enc, ctx, settings_.generation);
    const std::vector<int64_t> rows = tensor_to_ids(batch);
    for (int64_t r = 0; r < generated.size(0); ++r) {
      const std::string text = tokenizer_->decode(tensor_to_ids(generated[r]), /*skip_special_tokens=*/true);
      exact += normalize_answer(text) == normalize_answer(answers_[static_cast<std::size_t>(rows[static_cast<std::size_t>(r)])]);
    }
  });
  result.metrics = classification_metrics(y_true, y_pred);
  result.loss = tokens > 0 ? loss_sum / static_cast<double>(tokens) : 0.0;
  result.task_metrics[kExactMatch] = static_cast<double>(exact) / static_cast<double>(indices.size());
  return result;
}

} // namespace fedvlm
