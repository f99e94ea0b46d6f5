// tests/fl/data/clip_pixel_source_test.cpp — CLIP pixels preprocessed a batch at a time: same features and weights as
// from fully materialised pixels, and never more than one batch asked for at once.
#include "fl/data/clip_pixel_source.hpp"
#include "model/clip_tiny_tokenizer.hpp"
#include "fl/tasks/clip_pretrain.hpp"
#include "fl/tasks/clip_task.hpp"
#include "fl/tasks/lora_target_globs.hpp"
#include "tests/test_support.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

namespace fedvlm {
namespace {

using fedvlm::testing::TempDir;

/// Passes requests on to `inner`, recording the largest one and how many images were asked for.
class RecordingPixelSource : public ClipPixelSource {
public:
  explicit RecordingPixelSource(const ClipPixelSource& inner) : inner_(inner) {}
  [[nodiscard]] int64_t size() const override { return inner_.size(); }
  [[nodiscard]] at::Tensor pixels(const at::Tensor& indices) const override {
    largest = std::max(largest, indices.numel());
    requested += indices.numel();
    ++calls;
    return inner_.pixels(indices);
  }
  mutable int64_t largest = 0;
  mutable int64_t requested = 0;
  mutable int64_t calls = 0;

private:
  const ClipPixelSource& inner_;
};

class ClipPixelSourceTest : public ::testing::Test {
protected:
  void SetUp() override {
    write_tiny_clip_tokenizer_json(dir_ / "tokenizer.json");
    tok_ = std::make_unique<ClipTokenizer>(ClipTokenizer::load(dir_ / "tokenizer.json"));
    config_ = clip_tiny();
    config_.text.bos_token_id = tok_->bos_id();
    config_.text.eos_token_id = tok_->eos_id();
    config_.text.pad_token_id = tok_->pad_id();
  }

  // 37 images in [0, 1], not square and not the model's size, so resize and crop both act.
  static at::Tensor images(int64_t channels, uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::rand({37, channels, 28, 30}, gen);
  }
  static at::Tensor labels() { return at::arange(37, at::kLong).remainder(10); }

  TempDir dir_{"fedvlm-clip-pixels"};
  std::unique_ptr<ClipTokenizer> tok_;
  ClipConfig config_;
};

TEST_F(ClipPixelSourceTest, StreamedImageFeaturesEqualThoseOfMaterialisedPixelsForGreyAndRgb) {
  auto w = std::make_shared<const TensorMap>(clip_random_weights(config_, 4));
  const auto targets = match_lora_targets(clip_adaptable_layers(config_), kClipFloraTargets);
  const int64_t s = config_.vision.image_size;
  for (int64_t channels : {1, 3}) {
    SCOPED_TRACE(channels == 1 ? "grey" : "rgb");
    const at::Tensor raw = images(channels, 10 + static_cast<uint64_t>(channels));
    const ClipPixelsFromImages source(raw, s);
    RecordingPixelSource recorder(source);
    const ClipZeroShotTask streamed(w, config_, *tok_, recorder, labels(), fashion_mnist_class_names(), targets,
                                    kClipDefaultTemplates, /*encode_batch_size=*/8);
    // Batches of 8, 8, 8, 8 and the partial 5: each image preprocessed once, one batch at a time.
    EXPECT_EQ(recorder.largest, 8);
    EXPECT_EQ(recorder.requested, 37);
    EXPECT_EQ(recorder.calls, 5);

    // The reference: every image preprocessed up front, the vision tower run on all at once.
    const at::Tensor all = clip_pixels_from_images(raw, s);
    ASSERT_EQ(all.sizes(), (std::vector<int64_t>{37, 3, s, s}));
    if (channels == 1) EXPECT_TRUE(at::equal(all, clip_pixels_from_grey(raw, s)));
    at::NoGradGuard no_grad;
    const at::Tensor embeds = clip_encode_image(*w, config_, all, ForwardContext{});
    const at::Tensor want = embeds / embeds.norm(2, {-1}, /*keepdim=*/true);
    EXPECT_TRUE(at::allclose(streamed.image_features(), want, 1e-6, 1e-6))
        << (streamed.image_features() - want).abs().max().item<float>();
    // The tensor constructor (pixels already preprocessed) with the same batches: bit for bit.
    const ClipZeroShotTask materialised(w, config_, *tok_, all, labels(), fashion_mnist_class_names(), targets,
                                        kClipDefaultTemplates, 8);
    EXPECT_TRUE(at::equal(streamed.image_features(), materialised.image_features()));
    // Negative control: the features follow the images, so the comparison can fail.
    EXPECT_FALSE(at::allclose(streamed.image_features(), want.flip(0), 1e-6, 1e-6));
  }
}

TEST_F(ClipPixelSourceTest, PretrainingAsksForOneBatchAtATimeAndTrainsAsOnMaterialisedPixels) {
  const at::Tensor raw = images(1, 21);
  const int64_t s = config_.vision.image_size;
  ClipPretrainSettings settings;
  settings.epochs = 2;
  settings.batch_size = 16;
  settings.warmup_steps = 2;
  const ClipPixelsFromImages source(raw, s);
  RecordingPixelSource recorder(source);
  const auto& names = fashion_mnist_class_names();
  const TensorMap streamed = clip_pretrain(config_, *tok_, recorder, labels(), names, kClipDefaultTemplates, settings, 6);
  EXPECT_EQ(recorder.largest, 16);
  EXPECT_EQ(recorder.requested, 2 * 37); // every image once per epoch (37 = 16 + 16 + 5)
  const ClipPixelTensor all(clip_pixels_from_images(raw, s));
  const TensorMap materialised = clip_pretrain(config_, *tok_, all, labels(), names, kClipDefaultTemplates, settings, 6);
  ASSERT_EQ(streamed.size(), materialised.size());
  for (const auto& [name, t] : materialised) EXPECT_TRUE(at::equal(streamed.at(name), t)) << name;
  // The cache key reads the pixels in ranges too, and does not depend on where they come from.
  RecordingPixelSource key_reader(source);
  EXPECT_EQ(clip_pretrain_key(config_, key_reader, labels(), names, kClipDefaultTemplates, settings, 6),
            clip_pretrain_key(config_, all, labels(), names, kClipDefaultTemplates, settings, 6));
  EXPECT_EQ(key_reader.requested, 37);
  // Negative control: other pixels give another key.
  const ClipPixelsFromImages other(images(1, 22), s);
  EXPECT_NE(clip_pretrain_key(config_, other, labels(), names, kClipDefaultTemplates, settings, 6),
            clip_pretrain_key(config_, all, labels(), names, kClipDefaultTemplates, settings, 6));
}

TEST_F(ClipPixelSourceTest, BadShapesAndRangesAreRejected) {
  EXPECT_THROW(ClipPixelsFromImages(at::rand({2, 2, 8, 8}), 32), std::invalid_argument); // 2 channels
  EXPECT_THROW(ClipPixelsFromImages(at::rand({2, 8, 8}), 32), std::invalid_argument);
  EXPECT_THROW(ClipPixelsFromImages(at::rand({2, 1, 8, 8}), 0), std::invalid_argument);
  EXPECT_THROW(ClipPixelTensor(at::rand({2, 1, 32, 32})), std::invalid_argument);
  const ClipPixelsFromImages source(at::rand({3, 3, 8, 8}), 32);
  EXPECT_EQ(source.range(1, 1).sizes(), (std::vector<int64_t>{0, 3, 32, 32}));
  EXPECT_THROW((void)source.range(2, 4), std::invalid_argument);
  EXPECT_THROW((void)source.range(2, 1), std::invalid_argument);
  // Pixels of the wrong size for the model name the batch and the expected shape.
  auto w = std::make_shared<const TensorMap>(clip_random_weights(config_, 1));
  try {
    const ClipZeroShotTask task(w, config_, *tok_, at::rand({3, 3, 16, 16}), at::zeros({3}, at::kLong),
                                fashion_mnist_class_names(), {});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected float pixels (3, 3, 32, 32) for images 0..2, got [3, 3, 16, 16]"),
              std::string::npos)
        << e.what();
  }
}

} // namespace
} // namespace fedvlm
