// tests/fl/tasks/local_training_test.cpp — FrozenBase feature cache, train_local, evaluate_local and job_seed.
#include "fl/tasks/frozen_base.hpp"
#include "fl/tasks/local_training.hpp"
#include "fl/runtime/random_streams.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int64_t kIn = 8;
constexpr int64_t kClasses = 3;

// The smallest ImageClassifier: trunk = flatten, head = one LoRA-adaptable Linear "fc" (8 → 3)
// with fixed random weights. Counts trunk calls so the feature cache can be observed.
class TinyClassifier : public fedvlm::ImageClassifier {
public:
  explicit TinyClassifier(bool fc_in_head = true, uint64_t seed = 1234) : fc_in_head_(fc_in_head) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    state_.emplace("fc.weight", at::randn({kClasses, kIn}, gen, at::kFloat) * 0.3);
    state_.emplace("fc.bias", at::randn({kClasses}, gen, at::kFloat) * 0.1);
  }
  std::string name() const override { return "tiny"; }
  int64_t num_classes() const override { return kClasses; }
  std::map<std::string, fedvlm::AdaptableLayer> adaptable_layers() const override {
    return {{"fc", {kClasses, kIn}}};
  }
  bool in_head(const std::string& layer) const override { return fc_in_head_ && layer == "fc"; }
  const fedvlm::TensorMap& state() const override { return state_; }
  fedvlm::TensorMap& mutable_state() override { return state_; }
  std::vector<std::string> parameter_names() const override { return {"fc.bias", "fc.weight"}; }
  at::Tensor features(const at::Tensor& images, const fedvlm::ForwardContext&) const override {
    ++feature_calls;
    return images.flatten(1);
  }
  at::Tensor head(const at::Tensor& features, const fedvlm::ForwardContext& ctx) const override {
    return fedvlm::lora_linear(features, state_.at("fc.weight"), state_.at("fc.bias"), "fc", ctx);
  }

  mutable std::atomic<int> feature_calls{0};

private:
  bool fc_in_head_;
  fedvlm::TensorMap state_;
};

// Linearly separable: class c sits around its own random centroid, with small noise.
fedvlm::ImageDataset make_dataset(int64_t n, uint64_t seed = 99) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor centroids = at::randn({kClasses, kIn}, gen, at::kFloat) * 2.0;
  const at::Tensor labels = at::arange(n, at::kLong).remainder(kClasses);
  const at::Tensor x = centroids.index_select(0, labels) + 0.3 * at::randn({n, kIn}, gen, at::kFloat);
  fedvlm::ImageDataset ds;
  ds.images = x.reshape({n, kIn, 1, 1}).contiguous();
  ds.labels = labels;
  ds.class_names = {"a", "b", "c"};
  return ds;
}

fedvlm::LoraSettings lora_settings() {
  fedvlm::LoraSettings s;
  s.rank = 2;
  s.alpha = 4.0;
  return s;
}

fedvlm::TrainSettings train_settings() {
  fedvlm::TrainSettings t;
  t.local_epochs = 4;
  t.batch_size = 8;
  t.lr = 0.1;
  t.optimizer = fedvlm::OptimizerKind::sgd;
  t.momentum = 0.9;
  return t;
}

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(static_cast<size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

struct Fixture {
  std::shared_ptr<TinyClassifier> model = std::make_shared<TinyClassifier>();
  fedvlm::FrozenBase base{model, make_dataset(60), {"fc"}};
  fedvlm::TensorMap adapters = fedvlm::lora_init(base.targets(), lora_settings(), 5);

  fedvlm::LocalTrainJob job(uint64_t seed = 11) const {
    fedvlm::LocalTrainJob j;
    j.adapters = fedvlm::tensor_map_clone(adapters);
    j.trainable = {"fc.lora_A", "fc.lora_B"};
    j.indices = range(0, 40); // 40 training samples, 20 held out
    j.seed = seed;
    return j;
  }
};

bool maps_equal(const fedvlm::TensorMap& a, const fedvlm::TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || !at::equal(t, it->second)) return false;
  }
  return true;
}

TEST(FrozenBase, CachesFeaturesWhenTargetsInHead) {
  auto model = std::make_shared<TinyClassifier>(/*fc_in_head=*/true);
  const fedvlm::FrozenBase base(model, make_dataset(30), {"fc"}, /*cache_batch_size=*/8);
  EXPECT_TRUE(base.caches_features());
  EXPECT_EQ(model->feature_calls.load(), 4); // ceil(30 / 8) trunk passes, once, at construction
  EXPECT_EQ(base.size(), 30);
  EXPECT_EQ(base.num_classes(), kClasses);
  ASSERT_EQ(base.targets().count("fc"), 1u);
  EXPECT_EQ(base.targets().at("fc").in_features, kIn);
  EXPECT_EQ(base.targets().at("fc").out_features, kClasses);

  // Same targets, but "fc" reported as part of the trunk: no cache, every call runs the trunk.
  auto trunk_model = std::make_shared<TinyClassifier>(/*fc_in_head=*/false);
  const fedvlm::FrozenBase uncached(trunk_model, make_dataset(30), {"fc"}, 8);
  EXPECT_FALSE(uncached.caches_features());
  EXPECT_EQ(trunk_model->feature_calls.load(), 0);
  EXPECT_GT(base.resident_bytes(), uncached.resident_bytes());

  // Both paths give the same logits under non-trivial adapters, and the cached one skips the trunk.
  fedvlm::TensorMap ad = fedvlm::lora_init(base.targets(), lora_settings(), 3);
  ad.at("fc.lora_B").normal_();
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = lora_settings();
  const at::Tensor idx = at::tensor(std::vector<int64_t>{29, 0, 7, 7, 15}, at::kLong);
  const at::Tensor cached = base.logits(idx, ctx);
  EXPECT_EQ(model->feature_calls.load(), 4);
  const at::Tensor direct = uncached.logits(idx, ctx);
  EXPECT_EQ(trunk_model->feature_calls.load(), 1);
  EXPECT_TRUE(at::allclose(cached, direct, 0.0, 1e-6));
  const fedvlm::ImageDataset ds = make_dataset(30);
  EXPECT_TRUE(at::allclose(cached, model->forward(ds.images.index_select(0, idx), ctx), 0.0, 1e-6));
  EXPECT_TRUE(at::equal(base.labels(idx), ds.labels.index_select(0, idx)));
}

TEST(FrozenBase, UnknownTargetThrowsNamingIt) {
  auto model = std::make_shared<TinyClassifier>();
  try {
    const fedvlm::FrozenBase base(model, make_dataset(6), {"fc", "features.99"});
    FAIL() << "unknown target must throw";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("features.99"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fc"), std::string::npos) << "should list adaptable layers: " << msg;
  }
  EXPECT_THROW((void)fedvlm::resolve_lora_targets(*model, {"FC"}), std::invalid_argument);
}

TEST(LocalTraining, ReducesLossAndLeavesBaseUnchanged) {
  Fixture f;
  const fedvlm::TensorMap base_before = fedvlm::tensor_map_clone(f.model->state());
  const fedvlm::TensorMap adapters_before = fedvlm::tensor_map_clone(f.adapters);
  const auto train_idx = range(0, 40);
  const fedvlm::EvalResult before = fedvlm::evaluate_local(f.base, f.adapters, train_idx, lora_settings(), 16);

  const fedvlm::LocalTrainJob job = f.job();
  const fedvlm::TrainSettings ts = train_settings();
  const fedvlm::LocalTrainResult r = fedvlm::train_local(f.base, job, ts, lora_settings());
  const fedvlm::EvalResult after = fedvlm::evaluate_local(f.base, r.adapters, train_idx, lora_settings(), 16);

  EXPECT_LT(after.loss, 0.5 * before.loss) << "before " << before.loss << " after " << after.loss;
  EXPECT_GT(after.metrics.accuracy, before.metrics.accuracy);
  EXPECT_GE(after.metrics.accuracy, 0.9);
  EXPECT_EQ(r.samples, 40);
  EXPECT_EQ(r.steps, ts.local_epochs * 5); // 40 samples / batch 8 = 5 steps per epoch
  EXPECT_TRUE(std::isfinite(r.mean_loss));
  EXPECT_GT(r.mean_loss, after.loss); // the mean over training includes the early, worse steps
  // The base is frozen: weights bitwise unchanged and never given an autograd history.
  EXPECT_TRUE(maps_equal(f.model->state(), base_before));
  for (const auto& [name, t] : f.model->state()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_FALSE(t.grad().defined()) << name;
  }
  // The caller's tensors are not written (the job shares them with a message).
  EXPECT_TRUE(maps_equal(f.adapters, adapters_before));
  // Results are plain tensors, safe to send: no graph attached.
  for (const auto& [name, t] : r.adapters) EXPECT_FALSE(t.requires_grad()) << name;
}

// train.batch_size = 0 is FedSGD's B = ∞: one step over the whole local set per epoch, the same
// as a batch exactly the size of the set (or larger).
TEST(LocalTraining, BatchSizeZeroIsOneFullBatchStepPerEpoch) {
  Fixture f;
  fedvlm::TrainSettings ts = train_settings();
  ts.local_epochs = 3;
  ts.batch_size = 0;
  const auto full = fedvlm::train_local(f.base, f.job(), ts, lora_settings());
  EXPECT_EQ(full.steps, 3);
  EXPECT_EQ(full.samples, 40);
  ts.batch_size = 40;
  const auto forty = fedvlm::train_local(f.base, f.job(), ts, lora_settings());
  EXPECT_EQ(forty.steps, 3);
  EXPECT_TRUE(maps_equal(full.adapters, forty.adapters));
  ts.batch_size = 1000;
  EXPECT_TRUE(maps_equal(full.adapters, fedvlm::train_local(f.base, f.job(), ts, lora_settings()).adapters));
  ts.batch_size = 20; // two steps an epoch: another result
  const auto halves = fedvlm::train_local(f.base, f.job(), ts, lora_settings());
  EXPECT_EQ(halves.steps, 6);
  EXPECT_FALSE(maps_equal(full.adapters, halves.adapters));
}

TEST(LocalTraining, OnlyTrainableTensorsChange) {
  Fixture f;
  fedvlm::LocalTrainJob job = f.job();
  job.trainable = {"fc.lora_B"}; // FFA-LoRA: A frozen
  const auto r = fedvlm::train_local(f.base, job, train_settings(), lora_settings());
  EXPECT_TRUE(at::equal(r.adapters.at("fc.lora_A"), f.adapters.at("fc.lora_A")));
  EXPECT_FALSE(at::equal(r.adapters.at("fc.lora_B"), f.adapters.at("fc.lora_B")));
  for (const auto& [k, v] : r.optimizer_state)
    EXPECT_EQ(k.rfind("fc.lora_B.", 0), 0u) << "state for an untrained tensor: " << k;
  EXPECT_EQ(r.optimizer_state.count("fc.lora_B.momentum"), 1u);
}

TEST(LocalTraining, SameSeedIdenticalDifferentSeedDiffers) {
  Fixture f;
  fedvlm::TrainSettings ts = train_settings();
  fedvlm::LoraSettings ls = lora_settings();
  ls.dropout = 0.2; // the seed drives dropout masks as well as the shuffling
  const auto r1 = fedvlm::train_local(f.base, f.job(11), ts, ls);
  const auto r2 = fedvlm::train_local(f.base, f.job(11), ts, ls);
  const auto r3 = fedvlm::train_local(f.base, f.job(12), ts, ls);
  EXPECT_TRUE(maps_equal(r1.adapters, r2.adapters));
  EXPECT_TRUE(maps_equal(r1.optimizer_state, r2.optimizer_state));
  EXPECT_EQ(r1.mean_loss, r2.mean_loss);
  EXPECT_FALSE(at::equal(r1.adapters.at("fc.lora_B"), r3.adapters.at("fc.lora_B")));
  EXPECT_NE(r1.mean_loss, r3.mean_loss);
}

TEST(LocalTraining, OptimizerStateCarriesIntoNextJob) {
  Fixture f;
  const auto r1 = fedvlm::train_local(f.base, f.job(1), train_settings(), lora_settings());
  fedvlm::LocalTrainJob next = f.job(2);
  next.adapters = r1.adapters;
  next.optimizer_state = r1.optimizer_state;
  const auto with_state = fedvlm::train_local(f.base, next, train_settings(), lora_settings());
  next.optimizer_state.clear();
  const auto fresh = fedvlm::train_local(f.base, next, train_settings(), lora_settings());
  // Momentum from the previous round changes the first steps of this one.
  EXPECT_FALSE(at::equal(with_state.adapters.at("fc.lora_B"), fresh.adapters.at("fc.lora_B")));
}

TEST(LocalTraining, FreshOptimizerIgnoresTheCarriedState) {
  Fixture f;
  const auto r1 = fedvlm::train_local(f.base, f.job(1), train_settings(), lora_settings());
  fedvlm::LocalTrainJob next = f.job(2);
  next.adapters = r1.adapters;
  next.optimizer_state = r1.optimizer_state;
  auto settings = train_settings();
  settings.fresh_optimizer = true; // FedAvg's setting: momentum starts again every round
  const auto fresh_by_setting = fedvlm::train_local(f.base, next, settings, lora_settings());
  next.optimizer_state.clear();
  const auto fresh_by_hand = fedvlm::train_local(f.base, next, train_settings(), lora_settings());
  EXPECT_TRUE(at::equal(fresh_by_setting.adapters.at("fc.lora_B"), fresh_by_hand.adapters.at("fc.lora_B")));
}

TEST(LocalTraining, FedProxKeepsTensorsNearReference) {
  Fixture f;
  fedvlm::TrainSettings ts = train_settings();
  ts.momentum = 0.0; // plain SGD: lr·mu = 0.1·10 = 1 < 2 keeps the proximal pull stable
  fedvlm::LocalTrainJob job = f.job();
  job.prox_reference = fedvlm::tensor_map_clone(f.adapters);

  auto distance = [&](const fedvlm::TensorMap& m) {
    double d = 0;
    for (const auto& [name, ref] : job.prox_reference) d += (m.at(name) - ref).pow(2).sum().item<double>();
    return std::sqrt(d);
  };
  ts.prox_mu = 0.0;
  const auto free_run = fedvlm::train_local(f.base, job, ts, lora_settings());
  ts.prox_mu = 10.0;
  const auto prox_run = fedvlm::train_local(f.base, job, ts, lora_settings());
  const double d_free = distance(free_run.adapters);
  const double d_prox = distance(prox_run.adapters);
  EXPECT_GT(d_free, 0.1);
  EXPECT_LT(d_prox, 0.25 * d_free) << "free " << d_free << " prox " << d_prox;
  // mean_loss reports the cross-entropy only, so it stays a cross-entropy (≤ log(3)·few).
  EXPECT_LT(prox_run.mean_loss, 5.0);
}

TEST(LocalTraining, EmptyIndicesReturnTheJobUnchanged) {
  Fixture f;
  fedvlm::LocalTrainJob job = f.job();
  job.indices.clear();
  const auto r = fedvlm::train_local(f.base, job, train_settings(), lora_settings());
  EXPECT_EQ(r.samples, 0);
  EXPECT_EQ(r.steps, 0);
  EXPECT_TRUE(maps_equal(r.adapters, f.adapters));
}

// Poisoned or diverged adapters give a nan loss; training must stop there and say who and
// where, instead of stepping nan into the adapters and on into aggregation.
TEST(LocalTraining, NonFiniteLossThrowsNamingClientRoundStepAndValue) {
  Fixture f;
  fedvlm::LocalTrainJob job = f.job();
  job.client = 3;
  job.round = 2;
  job.adapters.at("fc.lora_A").fill_(std::numeric_limits<float>::quiet_NaN());
  try {
    (void)fedvlm::train_local(f.base, job, train_settings(), lora_settings());
    ADD_FAILURE() << "no NonFiniteLossError for nan adapters";
  } catch (const fedvlm::NonFiniteLossError& e) {
    const std::string msg = e.what();
    // 40 samples, batches of 8, 4 epochs: 20 steps; the first already fails.
    EXPECT_NE(msg.find("client 3, round 2, step 1 of 20: training loss is nan"), std::string::npos) << msg;
    EXPECT_EQ(e.client(), 3);
    EXPECT_EQ(e.round(), 2);
    EXPECT_EQ(e.step(), 1);
    EXPECT_TRUE(std::isnan(e.loss()));
  }

  // The same through train_adapters with a loss that turns infinite at the third step.
  fedvlm::LocalTrainJob plain = f.job();
  int calls = 0;
  const fedvlm::BatchLoss loss = [&](const at::Tensor& batch, const fedvlm::ForwardContext& ctx) {
    const at::Tensor ce = at::cross_entropy_loss(f.base.logits(batch, ctx), f.base.labels(batch));
    return ++calls == 3 ? ce * std::numeric_limits<float>::infinity() : ce;
  };
  try {
    (void)fedvlm::train_adapters(loss, plain, train_settings(), lora_settings());
    ADD_FAILURE() << "no NonFiniteLossError for an infinite loss";
  } catch (const fedvlm::NonFiniteLossError& e) {
    EXPECT_NE(std::string(e.what()).find("local training, step 3 of 20: training loss is inf"), std::string::npos)
        << e.what();
  }
}

TEST(EvaluateLocal, MetricsEqualManualArgmax) {
  Fixture f;
  // Non-trivial adapters, so evaluation must really apply them.
  fedvlm::TensorMap ad = fedvlm::tensor_map_clone(f.adapters);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  ad.at("fc.lora_B") = at::randn({kClasses, 2}, gen, at::kFloat);
  const std::vector<int64_t> idx = {59, 3, 41, 41, 17, 0, 22, 50, 33, 8, 12};
  const fedvlm::LoraSettings ls = lora_settings();

  at::NoGradGuard no_grad;
  fedvlm::ForwardContext ctx;
  ctx.adapters = &ad;
  ctx.lora = ls;
  const fedvlm::ImageDataset ds = make_dataset(60);
  const at::Tensor it = at::tensor(idx, at::kLong);
  const at::Tensor logits = f.model->forward(ds.images.index_select(0, it), ctx);
  const at::Tensor labels = ds.labels.index_select(0, it);
  const at::Tensor pred = logits.argmax(1);
  std::vector<int64_t> y_true, y_pred;
  for (int64_t i = 0; i < it.size(0); ++i) {
    y_true.push_back(labels[i].item<int64_t>());
    y_pred.push_back(pred[i].item<int64_t>());
  }
  const fedvlm::ClassificationMetrics m = fedvlm::classification_metrics(y_true, y_pred);
  const double loss = at::cross_entropy_loss(logits, labels).item<double>();

  for (int64_t batch : {int64_t{4}, int64_t{256}}) { // 11 = 4 + 4 + 3: the ragged last batch counts
    const fedvlm::EvalResult r = fedvlm::evaluate_local(f.base, ad, idx, ls, batch);
    EXPECT_EQ(r.metrics.count, static_cast<int64_t>(idx.size()));
    EXPECT_DOUBLE_EQ(r.metrics.accuracy, m.accuracy) << batch;
    EXPECT_DOUBLE_EQ(r.metrics.macro_precision, m.macro_precision) << batch;
    EXPECT_DOUBLE_EQ(r.metrics.macro_recall, m.macro_recall) << batch;
    EXPECT_DOUBLE_EQ(r.metrics.macro_f1, m.macro_f1) << batch;
    EXPECT_NEAR(r.loss, loss, 1e-5) << batch;
  }
  // Evaluation ignores LoRA dropout (eval mode): repeated calls agree exactly.
  fedvlm::LoraSettings with_dropout = ls;
  with_dropout.dropout = 0.5;
  const auto e1 = fedvlm::evaluate_local(f.base, ad, idx, with_dropout, 4);
  EXPECT_NEAR(e1.loss, loss, 1e-5);
  EXPECT_EQ(fedvlm::evaluate_local(f.base, ad, {}, ls, 4).metrics.count, 0);
}

TEST(JobSeed, StableAndDistinctAcrossClientRoundPurpose) {
  using fedvlm::Stream;
  EXPECT_EQ(fedvlm::job_seed(42, 3, 7, Stream::training), fedvlm::job_seed(42, 3, 7, Stream::training));
  std::set<uint64_t> seen;
  int count = 0;
  const Stream purposes[] = {Stream::training, Stream::selection, Stream::adapter_init, Stream::faults,
                             Stream::privacy_noise, Stream::client_speed};
  for (uint64_t run : {uint64_t{0}, uint64_t{42}})
    for (int client = -1; client < 20; ++client)
      for (int round = 0; round < 20; ++round)
        for (Stream purpose : purposes) {
          seen.insert(fedvlm::job_seed(run, client, round, purpose));
          ++count;
        }
  EXPECT_EQ(seen.size(), static_cast<size_t>(count)); // no two jobs share a random stream
  // Neighbouring arguments must not map to neighbouring seeds (the mix is a real hash).
  const uint64_t a = fedvlm::job_seed(1, 0, 0, Stream::training);
  const uint64_t b = fedvlm::job_seed(1, 1, 0, Stream::training);
  EXPECT_GT(__builtin_popcountll(a ^ b), 10);
  // The values are part of every run's results: a renumbering would change every run.
  EXPECT_EQ(static_cast<uint64_t>(Stream::training), 1u);
  EXPECT_EQ(static_cast<uint64_t>(Stream::privacy_noise), 6u);
}

} // namespace
