// tests/fl/tasks/clip_task_test.cpp — LoRA target globs, the zero-shot CLIP task and contrastive CLIP pretraining.
#include "fl/tasks/clip_pretrain.hpp"
#include "model/clip_tiny_tokenizer.hpp"
#include "fl/tasks/clip_task.hpp"
#include "fl/tasks/full_fine_tuning.hpp"
#include "fl/data/image_dataset.hpp"
#include "fl/tasks/lora_target_globs.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

using fedvlm::testing::TempDir;

// `text` contains `part`; the failure message shows both.
::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

const std::filesystem::path kFashionDir = "/usr/share/datasets/fashion-mnist";

// -- globs ----------------------------------------------------------------------------------------

std::map<std::string, AdaptableLayer> tiny_adaptable() { return clip_adaptable_layers(clip_tiny()); }

std::set<std::string> keys(const std::map<std::string, AdaptableLayer>& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : m) out.insert(k);
  return out;
}

TEST(LoraTargetGlob, DefaultFloraTargetsAreTheTextAttentionProjections) {
  const auto adaptable = tiny_adaptable();
  std::set<std::string> expected; // written out by hand: 2 text layers × 4 projections
  for (const char* layer : {"0", "1"})
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"})
      expected.insert(std::string("text_model.encoder.layers.") + layer + ".self_attn." + proj);
  const auto got = match_lora_targets(adaptable, kClipFloraTargets);
  EXPECT_EQ(keys(got), expected);
  for (const auto& [name, layer] : got) {
    EXPECT_EQ(layer.in_features, clip_tiny().text.hidden_size) << name;
    EXPECT_EQ(layer.out_features, clip_tiny().text.hidden_size) << name;
  }
}

TEST(LoraTargetGlob, StarStaysInOneComponentDoubleStarCrossesDots) {
  EXPECT_TRUE(lora_target_glob_match("a.*.c", "a.b.c"));
  EXPECT_FALSE(lora_target_glob_match("a.*.c", "a.b.x.c"));
  EXPECT_TRUE(lora_target_glob_match("a.**.c", "a.b.x.c"));
  EXPECT_TRUE(lora_target_glob_match("a*", "a"));     // empty run
  EXPECT_FALSE(lora_target_glob_match("a*", "a.b")); // not across the dot
  EXPECT_TRUE(lora_target_glob_match("**", "a.b.c"));
  EXPECT_TRUE(lora_target_glob_match("x.*_proj", "x.out_proj"));
  EXPECT_FALSE(lora_target_glob_match("x.q_proj", "x.q_proj.extra")); // the whole name
  const auto adaptable = tiny_adaptable();
  EXPECT_EQ(match_lora_targets(adaptable, {"**.q_proj"}).size(), 4u); // both towers, 2 layers each
  EXPECT_EQ(keys(match_lora_targets(adaptable, {"text_model.**.mlp.fc{1,2}"})),
            (std::set<std::string>{"text_model.encoder.layers.0.mlp.fc1", "text_model.encoder.layers.0.mlp.fc2",
                                   "text_model.encoder.layers.1.mlp.fc1", "text_model.encoder.layers.1.mlp.fc2"}));
}

TEST(LoraTargetGlob, BracesExpandInOrderAndNest) {
  EXPECT_EQ(expand_braces("x.{a,b}_{c,d}"), (std::vector<std::string>{"x.a_c", "x.a_d", "x.b_c", "x.b_d"}));
  EXPECT_EQ(expand_braces("{a,b{1,2}}"), (std::vector<std::string>{"a", "b1", "b2"}));
  EXPECT_EQ(expand_braces("plain"), (std::vector<std::string>{"plain"}));
  EXPECT_EQ(expand_braces("{,x}y"), (std::vector<std::string>{"y", "xy"}));
}

TEST(LoraTargetGlob, ExactNamesAndUnionsWithoutDuplicates) {
  const auto adaptable = tiny_adaptable();
  const auto got = match_lora_targets(
      adaptable, {"visual_projection", "text_model.encoder.layers.1.self_attn.q_proj", "text_model.encoder.layers.1.*.q_proj"});
  EXPECT_EQ(keys(got), (std::set<std::string>{"visual_projection", "text_model.encoder.layers.1.self_attn.q_proj"}));
  EXPECT_TRUE(match_lora_targets(adaptable, {}).empty());
}

TEST(LoraTargetGlob, PatternMatchingNothingNamesItAndOffersExamples) {
  const auto adaptable = tiny_adaptable();
  try {
    (void)match_lora_targets(adaptable, {"text_model.*.self_attn.q_proj"}); // '*' does not cross dots
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "'text_model.*.self_attn.q_proj'"));
    EXPECT_TRUE(contains(e.what(), "text_model.encoder.layers.0.")); // an example sharing the prefix
    EXPECT_TRUE(contains(e.what(), std::to_string(adaptable.size()) + " offered"));
  }
  // One good pattern does not excuse a bad one.
  EXPECT_THROW((void)match_lora_targets(adaptable, {"**.q_proj", "nothing.here"}), std::invalid_argument);
  try {
    (void)match_lora_targets(adaptable, {"text_model.{q,k"});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "without its '}'"));
  }
  EXPECT_THROW((void)expand_braces("a}b"), std::invalid_argument);
}

TEST(FullFineTuningModules, EveryWeightOrBiasNamesAModuleOthersStayFrozen) {
  const TensorShapes shapes = clip_parameter_shapes(clip_tiny());
  const auto modules = weighted_modules(shapes);
  EXPECT_EQ(modules.at("text_model.final_layer_norm").out_features, 32);
  EXPECT_EQ(modules.at("text_model.final_layer_norm").in_features, 1);
  EXPECT_EQ(modules.at("text_model.embeddings.token_embedding").out_features, 600);
  EXPECT_EQ(modules.at("text_model.embeddings.token_embedding").in_features, 32);
  EXPECT_EQ(modules.at("vision_model.embeddings.patch_embedding").in_features, 3 * 8 * 8);
  EXPECT_EQ(modules.count("logit_scale"), 0u);                          // not a module's tensor
  EXPECT_EQ(modules.count("vision_model.embeddings.class_embedding"), 0u); // likewise
  for (const auto& [name, layer] : clip_adaptable_layers(clip_tiny())) EXPECT_EQ(modules.count(name), 1u) << name;
  // The whole text encoder: every text_model.* tensor, nothing else.
  const auto text = match_lora_targets(modules, {"text_model.**"});
  std::size_t want = 0;
  for (const auto& [name, shape] : shapes) want += name.rfind("text_model.", 0) == 0 ? 1 : 0;
  EXPECT_EQ(full_tensor_names(text, shapes).size(), want);
  EXPECT_EQ(full_tensor_names({{"text_projection", AdaptableLayer{24, 32}}}, shapes),
            (std::vector<std::string>{"text_projection.weight"})); // no bias
}

// -- Fashion-MNIST as CLIP input ---------------------------------------------------------------------

// The tiny CLIP with the tiny tokenizer's special ids (first-eos pooling at its <|endoftext|>).
ClipConfig tiny_config(const ClipTokenizer& tok) {
  ClipConfig c = clip_tiny();
  c.text.bos_token_id = tok.bos_id();
  c.text.eos_token_id = tok.eos_id();
  c.text.pad_token_id = tok.pad_id();
  return c;
}

struct FashionClip {
  at::Tensor pixels; // (N, 3, 32, 32)
  at::Tensor labels;
};

// The first `n` images of a split as tiny-CLIP pixels (undoing the loader's normalisation).
FashionClip fashion_clip(DataSplit split, int64_t offset, int64_t n) {
  const ImageDataset ds = load_fashion_mnist(kFashionDir, split);
  const at::Tensor grey = ds.images.slice(0, offset, offset + n) * 0.3530 + 0.2860;
  return {clip_pixels_from_grey(grey, clip_tiny().vision.image_size), ds.labels.slice(0, offset, offset + n).clone()};
}

class ClipTaskTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!std::filesystem::exists(kFashionDir / "t10k-labels-idx1-ubyte.gz"))
      GTEST_SKIP() << kFashionDir << " is missing";
    write_tiny_clip_tokenizer_json(dir_ / "tokenizer.json");
    tok_ = std::make_unique<ClipTokenizer>(ClipTokenizer::load(dir_ / "tokenizer.json"));
    config_ = tiny_config(*tok_);
  }

  std::unique_ptr<ClipZeroShotTask> make_task(std::shared_ptr<const TensorMap> w, const FashionClip& data,
                                              std::vector<std::string> templates = kClipDefaultTemplates) const {
    return std::make_unique<ClipZeroShotTask>(std::move(w), config_, *tok_, data.pixels, data.labels,
                                              fashion_mnist_class_names(),
                                              match_lora_targets(clip_adaptable_layers(config_), kClipFloraTargets),
                                              std::move(templates));
  }

  TempDir dir_{"fedvlm-clip-task"};
  std::unique_ptr<ClipTokenizer> tok_;
  ClipConfig config_;
};

std::vector<int64_t> range(int64_t b, int64_t e) {
  std::vector<int64_t> out;
  for (int64_t i = b; i < e; ++i) out.push_back(i);
  return out;
}

TEST_F(ClipTaskTest, PixelsAreThreeEqualChannelsAtTheModelSize) {
  const FashionClip d = fashion_clip(DataSplit::test, 0, 4);
  ASSERT_EQ(d.pixels.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  // Grey → RGB, then per-channel CLIP mean/std: undoing the normalisation makes channels equal.
  const at::Tensor mean = at::tensor({0.48145466, 0.4578275, 0.40821073}, at::kFloat).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.26862954, 0.26130258, 0.27577711}, at::kFloat).view({1, 3, 1, 1});
  const at::Tensor raw = d.pixels * std + mean;
  EXPECT_TRUE(at::allclose(raw.select(1, 0), raw.select(1, 2), 1e-5, 1e-5));
  EXPECT_GE(raw.min().item<float>(), -1e-5);
  EXPECT_LE(raw.max().item<float>(), 1 + 1e-5);
}

// (b) A task-level 2-client check: LoRA on the text attention lowers each client's loss, and
// neither the cached image features nor the shared weights move.
TEST_F(ClipTaskTest, LoraTrainingLowersEachClientsLossAndLeavesTheBaseAlone) {
  const auto t0 = std::chrono::steady_clock::now();
  const FashionClip data = fashion_clip(DataSplit::test, 0, 64);
  auto w = std::make_shared<const TensorMap>(clip_random_weights(config_, 7));
  const TensorMap w_before = tensor_map_clone(*w);
  const auto task = make_task(w, data);
  EXPECT_EQ(task->size(), 64);
  EXPECT_EQ(task->targets().size(), 8u);
  EXPECT_TRUE(contains(task->cache_summary(), "vision tower run once for 64 images"));
  EXPECT_GT(task->shared_bytes(), static_cast<int64_t>(tensor_map_bytes(*w)));
  const at::Tensor features_before = task->image_features().clone();

  LoraSettings lora;
  lora.rank = 4;
  lora.alpha = 8;
  TrainSettings ts;
  ts.optimizer = OptimizerKind::adamw;
  ts.lr = 0.01;
  ts.batch_size = 16;
  ts.local_epochs = 15;
  const TensorMap start = lora_init(task->targets(), lora, 11);
  std::vector<TensorMap> trained;
  for (int client = 0; client < 2; ++client) {
    LocalTrainJob job;
    job.adapters = start;
    for (const auto& [name, t] : start) job.trainable.insert(name);
    job.indices = range(32 * client, 32 * client + 32);
    job.seed = 100 + static_cast<uint64_t>(client);
    job.client = client;
    const EvalResult before = task->evaluate(start, job.indices, lora, 64);
    const LocalTrainResult r = task->train(job, ts, lora);
    const EvalResult after = task->evaluate(r.adapters, job.indices, lora, 64);
    std::printf("[ client %d ] training loss %.4f -> %.4f, accuracy %.3f -> %.3f (%lld steps)\n", client, before.loss,
                after.loss, before.metrics.accuracy, after.metrics.accuracy, static_cast<long long>(r.steps));
    EXPECT_EQ(r.steps, 30);
    EXPECT_LT(after.loss, before.loss - 0.5) << "client " << client;
    // Below ln 10, the loss of the best uniform guess: the text side learned class information,
    // not only to shrink the random model's overconfident logits.
    EXPECT_LT(after.loss, std::log(10.0) - 0.1) << "client " << client;
    EXPECT_GT(after.metrics.accuracy, before.metrics.accuracy) << "client " << client;
    // The adapters did change, and B is no longer zero.
    EXPECT_GT(r.adapters.at("text_model.encoder.layers.0.self_attn.q_proj.lora_B").abs().max().item<float>(), 0.f);
    trained.push_back(r.adapters);
  }
  // One FedAvg round (equal weights, A and B averaged separately, as FedAvg of LoRA does): the
  // global adapters still lower the loss on the union of both clients' samples.
  TensorMap global;
  for (const auto& [name, t] : start) global.emplace(name, (trained[0].at(name) + trained[1].at(name)) / 2);
  const double union_before = task->evaluate(start, range(0, 64), lora, 64).loss;
  const double union_after = task->evaluate(global, range(0, 64), lora, 64).loss;
  std::printf("[ fedavg ] loss on both clients' samples %.4f -> %.4f\n", union_before, union_after);
  EXPECT_LT(union_after, union_before);
  EXPECT_TRUE(at::equal(task->image_features(), features_before)); // bit for bit
  for (const auto& [name, t] : w_before) {
    EXPECT_TRUE(at::equal(w->at(name), t)) << name;
    EXPECT_FALSE(w->at(name).requires_grad()) << name;
  }
  std::printf("[ timing ] %.2f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// (c) evaluate() without adapters against CLIP's functions called directly.
TEST_F(ClipTaskTest, EvaluateWithoutAdaptersIsTheHandComputedZeroShot) {
  const FashionClip data = fashion_clip(DataSplit::test, 100, 48);
  auto w = std::make_shared<const TensorMap>(clip_random_weights(config_, 3));
  const auto task = make_task(w, data);

  const ForwardContext plain;
  const at::Tensor img = clip_encode_image(*w, config_, data.pixels, plain);
  std::vector<at::Tensor> rows;
  for (const auto& name : fashion_mnist_class_names()) {
    const auto e = tok_->encode_context("a photo of a " + name + ".", config_.text.max_positions);
    ASSERT_FALSE(e.truncated);
    rows.push_back(at::tensor(e.ids, at::kLong));
  }
  const at::Tensor txt = clip_encode_text(*w, config_, at::stack(rows), plain);
  const at::Tensor logits = clip_logits(img, txt, w->at("logit_scale"));
  const at::Tensor pred = logits.argmax(1);
  const double acc = pred.eq(data.labels).to(at::kDouble).mean().item<double>();
  const double loss = at::cross_entropy_loss(logits, data.labels).item<double>();

  const EvalResult r = task->evaluate(TensorMap{}, range(0, 48), LoraSettings{}, 7); // uneven batches
  EXPECT_DOUBLE_EQ(r.metrics.accuracy, acc);
  EXPECT_EQ(r.metrics.count, 48);
  EXPECT_NEAR(r.loss, loss, 1e-5);
  EXPECT_DOUBLE_EQ(task->zero_shot_accuracy(range(0, 48)), acc);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::allclose(task->logits(at::arange(48, at::kLong), task->class_embeddings(plain)), logits, 1e-4, 1e-5));

  // Two copies of one template give the same class embeddings (mean of equal unit vectors).
  const auto twice = make_task(w, data, {"a photo of a {}.", "a photo of a {}."});
  EXPECT_NEAR(twice->evaluate(TensorMap{}, range(0, 48), LoraSettings{}, 64).loss, loss, 1e-5);
  // Negative control: another template changes the logits, so the comparison can fail.
  const auto other = make_task(w, data, {"a {} photo."});
  EXPECT_GT(std::abs(other->evaluate(TensorMap{}, range(0, 48), LoraSettings{}, 64).loss - loss), 1e-4);
}

// (e) Clear errors for bad inputs.
TEST_F(ClipTaskTest, BadClassNamesTemplatesLabelsAndTargetsAreRejected) {
  const FashionClip data = fashion_clip(DataSplit::test, 0, 8);
  auto w = std::make_shared<const TensorMap>(clip_random_weights(config_, 1));
  const auto targets = match_lora_targets(clip_adaptable_layers(config_), kClipFloraTargets);
  auto error_of = [&](std::vector<std::string> names, std::vector<std::string> templates,
                      std::map<std::string, AdaptableLayer> t, const ClipConfig& c) -> std::string {
    try {
      ClipZeroShotTask task(w, c, *tok_, data.pixels, data.labels, std::move(names), std::move(t), std::move(templates));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  const auto& names = fashion_mnist_class_names();
  EXPECT_TRUE(contains(error_of({}, kClipDefaultTemplates, targets, config_), "no class names"));
  std::vector<std::string> blank = names;
  blank[3] = "";
  EXPECT_TRUE(contains(error_of(blank, kClipDefaultTemplates, targets, config_), "class name 3 is empty"));
  EXPECT_TRUE(contains(error_of(names, {"a photo of a thing."}, targets, config_), "exactly one \"{}\""));
  EXPECT_TRUE(contains(error_of(names, {"a {} of a {}."}, targets, config_), "\"a {} of a {}.\""));
  EXPECT_TRUE(contains(error_of(names, {}, targets, config_), "no prompt templates"));
  // Labels reach 9 (ankle boot at index 0 of the test split), but only 5 names are given.
  const std::vector<std::string> five(names.begin(), names.begin() + 5);
  EXPECT_TRUE(contains(error_of(five, kClipDefaultTemplates, targets, config_), "expected labels in [0, 5)"));
  std::map<std::string, AdaptableLayer> vision = targets;
  vision.emplace("vision_model.encoder.layers.0.self_attn.q_proj", AdaptableLayer{32, 32});
  EXPECT_TRUE(contains(error_of(names, kClipDefaultTemplates, vision, config_), "outside CLIP's text tower"));
  // clip_tiny()'s own eos id (599) is not the tiny tokenizer's (564): pooling would miss eot.
  EXPECT_TRUE(contains(error_of(names, kClipDefaultTemplates, targets, clip_tiny()), "text.eos_token_id"));
  // A prompt longer than the 16-token context.
  EXPECT_TRUE(contains(error_of(names, {"a photo of a photo of a photo of a photo of a {}."}, targets, config_),
                       "more than the text context of 16"));
  EXPECT_EQ(error_of(names, kClipDefaultTemplates, targets, config_), "no error");
  EXPECT_THROW((void)clip_fill_template("{}{}", "x"), std::invalid_argument);
  EXPECT_EQ(clip_fill_template("a photo of a {}.", "bag"), "a photo of a bag.");
}

// Full fine-tuning (FedFFT) on CLIP trains every tensor of the modules it names, LayerNorms and
// embeddings included, as the client's own copies; the shared weights stay as they were.
TEST_F(ClipTaskTest, FullFineTuningTrainsLayerNormsAndEmbeddingsAsClientCopies) {
  const FashionClip data = fashion_clip(DataSplit::test, 0, 32);
  auto w = std::make_shared<const TensorMap>(clip_random_weights(config_, 7));
  const TensorMap w_before = tensor_map_clone(*w);
  const std::vector<std::string> globs{"text_model.encoder.layers.0.layer_norm1", "text_model.final_layer_norm",
                                       "text_model.embeddings.token_embedding"};
  const auto modules = match_lora_targets(weighted_modules(clip_parameter_shapes(config_)), globs);
  const auto task = std::make_unique<ClipZeroShotTask>(w, config_, *tok_, data.pixels, data.labels,
                                                       fashion_mnist_class_names(), modules, kClipDefaultTemplates,
                                                       256, /*any_weighted_module=*/true);
  EXPECT_TRUE(contains(task->cache_summary(), "full fine-tuning of 3 text-tower modules"));
  const std::vector<std::string> names = full_tensor_names(modules, clip_parameter_shapes(config_));
  EXPECT_EQ(names, (std::vector<std::string>{"text_model.embeddings.token_embedding.weight",
                                             "text_model.encoder.layers.0.layer_norm1.bias",
                                             "text_model.encoder.layers.0.layer_norm1.weight",
                                             "text_model.final_layer_norm.bias", "text_model.final_layer_norm.weight"}));
  LocalTrainJob job;
  for (const auto& name : names) {
    job.adapters.emplace(name, w->at(name).clone());
    job.trainable.insert(name);
  }
  job.indices = range(0, 32);
  job.seed = 5;
  TrainSettings ts;
  ts.optimizer = OptimizerKind::adam;
  ts.lr = 0.01;
  ts.batch_size = 16;
  ts.local_epochs = 5;
  const EvalResult before = task->evaluate(job.adapters, job.indices, LoraSettings{}, 64);
  const LocalTrainResult r = task->train(job, ts, LoraSettings{});
  const EvalResult after = task->evaluate(r.adapters, job.indices, LoraSettings{}, 64);
  std::printf("[ full ] training loss %.4f -> %.4f\n", before.loss, after.loss);
  EXPECT_LT(after.loss, before.loss);
  ASSERT_EQ(r.adapters.size(), names.size());
  for (const auto& name : names) EXPECT_FALSE(at::equal(r.adapters.at(name), w->at(name))) << name << " was not trained";
  for (const auto& [name, t] : w_before) {
    EXPECT_TRUE(at::equal(w->at(name), t)) << name;
    EXPECT_FALSE(w->at(name).requires_grad()) << name;
  }

  auto error_of = [&](std::map<std::string, AdaptableLayer> targets, bool full) -> std::string {
    try {
      ClipZeroShotTask t(w, config_, *tok_, data.pixels, data.labels, fashion_mnist_class_names(), std::move(targets),
                         kClipDefaultTemplates, 256, full);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  // A LayerNorm is no LoRA target; a vision-tower module is refused either way (features are cached).
  EXPECT_TRUE(contains(error_of(modules, false), "'text_model.embeddings.token_embedding' is not an adaptable layer"));
  const auto vision = match_lora_targets(weighted_modules(clip_parameter_shapes(config_)), {"vision_model.pre_layrnorm"});
  EXPECT_TRUE(contains(error_of(vision, true), "strategy.trainable: 'vision_model.pre_layrnorm' is outside CLIP's text tower"));
  EXPECT_TRUE(contains(error_of({{"text_model.nothing", AdaptableLayer{1, 1}}}, true), "is not a module"));
}

// (d) Contrastive pretraining from random weights lifts zero-shot accuracy well above chance.
TEST_F(ClipTaskTest, PretrainingRaisesZeroShotAccuracyAboveChance) {
  const auto t0 = std::chrono::steady_clock::now();
  const FashionClip pub = fashion_clip(DataSplit::train, 0, 512);
  const FashionClip held = fashion_clip(DataSplit::test, 0, 200);
  ClipPretrainSettings s;
  s.epochs = 12;
  s.batch_size = 64;
  s.lr = 2e-3;
  s.warmup_steps = 10;
  ClipPretrainReport rep;
  const TensorMap w = clip_pretrain(config_, *tok_, ClipPixelTensor(pub.pixels), pub.labels,
                                    fashion_mnist_class_names(), kClipDefaultTemplates, s, 5, &rep);
  auto shared = std::make_shared<const TensorMap>(w);
  const auto random_task = make_task(std::make_shared<const TensorMap>(clip_random_weights(config_, 5)), held);
  const auto task = make_task(shared, held);
  const double before = random_task->zero_shot_accuracy(range(0, 200));
  const double after = task->zero_shot_accuracy(range(0, 200));
  std::printf("[ pretrain ] loss %.4f -> %.4f over %lld steps in %.2f s; held-out zero-shot accuracy %.3f -> %.3f\n",
              rep.first_epoch_loss, rep.last_epoch_loss, static_cast<long long>(rep.steps), rep.seconds, before,
              after);
  EXPECT_LT(rep.last_epoch_loss, rep.first_epoch_loss);
  EXPECT_GT(after, 0.4); // chance is 0.1
  EXPECT_LE(w.at("logit_scale").item<double>(), std::log(100.0) + 1e-6);
  std::printf("[ timing ] %.2f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TEST_F(ClipTaskTest, PretrainingIsDeterministicAndCached) {
  const FashionClip pub = fashion_clip(DataSplit::train, 0, 64);
  ClipPretrainSettings s;
  s.epochs = 1;
  s.batch_size = 32;
  const auto& names = fashion_mnist_class_names();
  const std::vector<std::string> templates{"a photo of a {}.", "a {} photo."};
  const ClipPixelTensor pixels(pub.pixels);
  const TensorMap a = clip_pretrain(config_, *tok_, pixels, pub.labels, names, templates, s, 9);
  ClipPretrainReport rep;
  const TensorMap b = clip_pretrain_cached(dir_ / "clip.safetensors", config_, *tok_, pixels, pub.labels, names,
                                           templates, s, 9, &rep);
  EXPECT_FALSE(rep.from_cache);
  EXPECT_EQ(rep.steps, 2);
  const TensorMap c = clip_pretrain_cached(dir_ / "clip.safetensors", config_, *tok_, pixels, pub.labels, names,
                                           templates, s, 9, &rep);
  EXPECT_TRUE(rep.from_cache);
  ASSERT_EQ(a.size(), c.size());
  for (const auto& [name, t] : a) {
    EXPECT_TRUE(at::equal(t, b.at(name))) << name;
    EXPECT_TRUE(at::equal(t, c.at(name))) << name;
  }
  EXPECT_FALSE(at::equal(a.at("visual_projection.weight"), clip_random_weights(config_, 9).at("visual_projection.weight")));
  try {
    (void)clip_pretrain_cached(dir_ / "clip.safetensors", config_, *tok_, pixels, pub.labels, names, templates, s,
                               10);
    FAIL() << "expected std::runtime_error for another seed";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "other settings"));
  }
}

} // namespace
} // namespace fedvlm
