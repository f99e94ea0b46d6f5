// tests/model/bart_generation_test.cpp — beam search and n-gram blocking on a tiny random Florence-2.
#include "model/florence2.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

namespace {

using namespace fedvlm;

struct Tiny {
  Florence2 model{Florence2Config::tiny(), 7};
  at::Tensor encoded;
  Tiny() {
    at::manual_seed(3);
    encoded = model.encode(at::randn({2, 3, 64, 64}), at::randint(4, 200, {2, 6}, at::kLong), ForwardContext{});
  }
  /// Summed log-probability of `tokens` (no start token) for row `b`, teacher-forced.
  double log_prob(int64_t b, std::vector<int64_t> tokens) const {
    while (!tokens.empty() && tokens.back() == model.config().text.pad_token_id) tokens.pop_back();
    const at::Tensor labels = at::tensor(tokens, at::kLong).unsqueeze(0);
    at::NoGradGuard no_grad;
    const at::Tensor logits = model.decode_logits(encoded.slice(0, b, b + 1), labels, ForwardContext{});
    const at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1)[0];
    double sum = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) sum += logp[static_cast<int64_t>(i)][tokens[i]].item<double>();
    return sum;
  }
};

std::vector<int64_t> row(const at::Tensor& t, int64_t b) {
  const at::Tensor r = t[b].contiguous();
  return {r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel()};
}

TEST(BeamSearch, OneBeamWithoutNgramRuleIsGreedy) {
  Tiny t;
  GenerationSettings g;
  g.max_new_tokens = 6;
  EXPECT_TRUE(at::equal(t.model.generate(t.encoded, ForwardContext{}, g), t.model.generate(t.encoded, ForwardContext{}, 6)));
}

TEST(BeamSearch, FindsAnAnswerAtLeastAsLikelyAsGreedy) {
  Tiny t;
  GenerationSettings g;
  g.max_new_tokens = 5;
  g.num_beams = 4;
  g.length_penalty = 0.0; // raw log-probability: beam search's objective, comparable to greedy's
  const at::Tensor beam = t.model.generate(t.encoded, ForwardContext{}, g);
  const at::Tensor greedy = t.model.generate(t.encoded, ForwardContext{}, 5);
  ASSERT_EQ(beam.size(0), 2);
  EXPECT_LE(beam.size(1), 5);
  for (int64_t b = 0; b < 2; ++b)
    EXPECT_GE(t.log_prob(b, row(beam, b)), t.log_prob(b, row(greedy, b)) - 1e-4) << "row " << b;
}

TEST(BeamSearch, NoRepeatNgramBlocksRepeatedBigrams) {
  Tiny t;
  // Make two tokens overwhelmingly likely, so plain decoding alternates and repeats bigrams.
  at::Tensor& bias = t.model.mutable_state().at("language_model.final_logits_bias");
  bias[0][10] = 30.0;
  bias[0][11] = 29.5;
  const std::vector<int64_t> plain = row(t.model.generate(t.encoded, ForwardContext{}, 8), 0);
  auto has_repeated_bigram = [](const std::vector<int64_t>& ids) {
    std::set<std::pair<int64_t, int64_t>> seen;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i)
      if (!seen.insert({ids[i], ids[i + 1]}).second) return true;
    return false;
  };
  ASSERT_TRUE(has_repeated_bigram(plain)) << "the biased model should repeat without the rule";
  GenerationSettings g;
  g.max_new_tokens = 8;
  g.num_beams = 2;
  g.no_repeat_ngram_size = 2;
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<int64_t> ids = {t.model.config().text.decoder_start_token_id};
    for (int64_t tok : row(t.model.generate(t.encoded, ForwardContext{}, g), b))
      if (tok != t.model.config().text.pad_token_id) ids.push_back(tok);
    EXPECT_FALSE(has_repeated_bigram(ids)) << "row " << b;
  }
}

TEST(BeamSearch, StopsAtEos) {
  Tiny t;
  t.model.mutable_state().at("language_model.final_logits_bias")[0][t.model.config().text.eos_token_id] = 50.0;
  GenerationSettings g;
  g.max_new_tokens = 6;
  g.num_beams = 3;
  const at::Tensor out = t.model.generate(t.encoded, ForwardContext{}, g);
  ASSERT_EQ(out.size(1), 1);
  EXPECT_EQ(out[0][0].item<int64_t>(), t.model.config().text.eos_token_id);
  EXPECT_EQ(out[1][0].item<int64_t>(), t.model.config().text.eos_token_id);
}

} // namespace
