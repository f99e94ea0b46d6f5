// fl/federation/holdout.cpp — a new client's adapters (global shared tensors, fresh private ones), its adaptation and scores.
#include "fl/federation/holdout.hpp"

#include "fl/federation/starting_state.hpp"
#include "fl/results/client_checkpoint.hpp" // checkpoint_due

#include <cmath>
#include <stdexcept>

namespace fedvlm {

std::vector<HoldoutClient> holdout_clients(const ExperimentConfig& c, const RunSetup& setup) {
  if (static_cast<int>(setup.holdout_splits.size()) != c.evaluation.holdout_clients)
    throw std::logic_error("holdout_clients: the set-up holds " + std::to_string(setup.holdout_splits.size()) +
                           " holdout splits, evaluation.holdout_clients is " +
                           std::to_string(c.evaluation.holdout_clients));
  // client_settings reads splits by id: the holdout splits follow the training ones.
  std::vector<LocalSplit> all = setup.splits;
  all.insert(all.end(), setup.holdout_splits.begin(), setup.holdout_splits.end());
  std::vector<HoldoutClient> out;
  for (int k = 0; k < c.evaluation.holdout_clients; ++k) {
    const int id = training_clients(c) + k;
    HoldoutClient h;
    h.settings = client_settings(c, all, id, false);
    h.fresh = initial_adapters(c, setup, id);
    out.push_back(std::move(h));
  }
  return out;
}

bool holdout_due(int round, int every, int total_rounds) {
  return round == 0 || (every > 0 && checkpoint_due(round, every, total_rounds));
}

TensorMap newcomer_adapters(const TensorMap& fresh, const TensorMap& global) {
  TensorMap out = fresh;
  for (const auto& [name, t] : global) {
    auto it = out.find(name);
    if (it != out.end() && !it->second.sizes().equals(t.sizes()))
      throw std::invalid_argument("newcomer_adapters: global tensor " + name + " has shape " +
                                  tensor_shape_string(t.sizes()) + ", a new client's has " +
                                  tensor_shape_string(it->second.sizes()));
    out[name] = t;
  }
  return out;
}

NewcomerJob newcomer_job(const HoldoutClient& client, const TensorMap& global, int adapt_steps, int round) {
  NewcomerJob job;
  // What a client trains under the strategy (RoLoRA: both factors, as over its two kinds of rounds).
  job.start = training_job(client.settings, strategy_spec(client.settings.strategy), newcomer_adapters(client.fresh, global),
                           TensorMap{}, round); // a fresh optimizer
  job.adapt_steps = adapt_steps;
  job.test = client.settings.split.test;
  return job;
}

TensorMap adapt_newcomer(const FederatedTask& task, const NewcomerJob& job, const TrainSettings& train,
                         const LoraSettings& lora) {
  if (job.adapt_steps <= 0) return job.start.adapters;
  LocalTrainJob adapt = job.start;
  adapt.max_steps = job.adapt_steps;
  return task.train(std::move(adapt), train, lora).adapters;
}

NewcomerScore evaluate_newcomer(const FederatedTask& task, const NewcomerJob& job, const TrainSettings& train,
                                const LoraSettings& lora) {
  NewcomerScore score;
  score.client = job.start.client;
  score.round = job.start.round;
  score.before = task.evaluate(job.start.adapters, job.test, lora, train.eval_batch_size);
  if (job.adapt_steps <= 0) {
    score.after = score.before;
    return score;
  }
  score.after = task.evaluate(adapt_newcomer(task, job, train, lora), job.test, lora, train.eval_batch_size);
  return score;
}

void summarize_holdout(const std::vector<NewcomerScore>& scores, RoundSummary& summary) {
  if (scores.empty()) return;
  double before = 0, after = 0;
  for (const NewcomerScore& s : scores) {
    before += s.before.metrics.accuracy;
    after += s.after.metrics.accuracy;
  }
  summary.holdout_accuracy = before / static_cast<double>(scores.size());
  summary.holdout_adapted_accuracy = after / static_cast<double>(scores.size());
}

} // namespace fedvlm
