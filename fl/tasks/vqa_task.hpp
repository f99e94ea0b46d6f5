// fl/tasks/vqa_task.hpp — federated VQA fine-tuning of Florence-2: teacher-forced answers, token metrics.
//
// The paper adapts only the language decoder, so the vision tower and the encoder never see an
// adapter: their output is computed once per sample (no autograd graph) and shared by all
// clients, and decoder layers below the first adapted one run without autograd too.
#pragma once

#include "fl/tasks/federated_task.hpp"
#include "fl/data/vqa_dataset.hpp"
#include "model/bart_tokenizer.hpp"
#include "model/florence2.hpp"

#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

namespace fedvlm {

struct VqaTaskSettings {
  std::string prompt_prefix = "<VQA>"; ///< prepended to every question (Florence-2 task prompt)
  int64_t max_answer_tokens = 32;      ///< labels are cut here (`</s>` kept last)
  GenerationSettings generation;       ///< answers generated for exact match
  int64_t encoder_cache_bytes = int64_t{4} << 30; ///< cache encoder outputs up to this size
  /// Where the model's state already is (the caller moves it): the pool and the encoder cache
  /// go there too; jobs' tensors move in and results come back on the CPU.
  c10::Device device = c10::kCPU;
};

class VqaTask : public FederatedTask {
public:
  /// Tokenizes every question and answer and, within the cache budget, encodes every image
  /// and prompt once. `lora_targets` may name "last_decoder_layer" for the paper's placement.
  /// Throws std::invalid_argument naming lora.targets for a module the model lacks.
  VqaTask(std::shared_ptr<const Florence2> model, std::shared_ptr<const BartTokenizer> tokenizer,
          const VqaDataset& data, const std::vector<std::string>& lora_targets, VqaTaskSettings settings);

  [[nodiscard]] const std::map<std::string, AdaptableLayer>& targets() const override { return targets_; }
  [[nodiscard]] int64_t size() const override { return labels_.size(0); }
  [[nodiscard]] int64_t shared_bytes() const override;
  [[nodiscard]] std::string cache_summary() const override;
  [[nodiscard]] const TensorMap& base_weights() const override;
  [[nodiscard]] c10::Device device() const override { return settings_.device; }

  [[nodiscard]] LocalTrainResult train(LocalTrainJob job, const TrainSettings& settings,
                                       const LoraSettings& lora) const override;
  /// One decoder pass over the union of the clients' batches (train_adapters_grouped).
  [[nodiscard]] std::vector<LocalTrainResult> train_group(std::vector<LocalTrainJob> jobs, const TrainSettings& settings,
                                                          const LoraSettings& lora) const override;
  /// Loss and token accuracy / macro P/R/F1 over answer tokens (teacher-forced, as the paper),
  /// and the task metric kExactMatch of generated answers (case-insensitive, trimmed, final '.' ignored).
  [[nodiscard]] EvalResult evaluate(const TensorMap& adapters, const std::vector<int64_t>& indices,
                                    const LoraSettings& lora, int64_t batch_size) const override;

  /// The (B, S, d) encoder output of `indices`, from the cache or computed now.
  [[nodiscard]] at::Tensor encoder_hidden(const at::Tensor& indices) const;
  [[nodiscard]] at::Tensor labels(const at::Tensor& indices) const { return labels_.index_select(0, indices); }

private:
  std::shared_ptr<const Florence2> model_;
  std::shared_ptr<const BartTokenizer> tokenizer_;
  VqaTaskSettings settings_;
  std::map<std::string, AdaptableLayer> targets_;
  at::Tensor pixels_;     ///< (N, 3, S, S) when the encoder output is not cached
  at::Tensor prompt_ids_; ///< (N, P), padded with <pad>
  at::Tensor labels_;     ///< (N, T), <s> answer </s>, padded with -100
  at::Tensor encoded_;    ///< (N, S_enc, d) cached encoder output, or undefined
  std::vector<std::string> answers_;
};

/// `lora_targets` resolved against Florence-2's adaptable layers; "last_decoder_layer" expands to
/// the paper's placement. Throws std::invalid_argument naming lora.targets for an unknown module.
[[nodiscard]] std::map<std::string, AdaptableLayer> resolve_vqa_targets(const Florence2Config& config,
                                                                        const std::vector<std::string>& lora_targets);

/// The task metric evaluate() reports: the share of generated answers equal to the reference.
inline const std::string kExactMatch = "exact_match";

/// The normalised form exact match compares: trimmed, lower case, without a final '.'.
[[nodiscard]] std::string normalize_answer(const std::string& text);

} // namespace fedvlm
