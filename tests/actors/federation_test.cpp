// tests/actors/federation_test.cpp — whole federated runs through the actors: strategies, privacy, determinism, faults.
#include "fl/federation/round.hpp"
#include "actors/aggregator_actor.hpp"
#include "actors/run_driver.hpp"
#include "fl/federation/client_faults.hpp"
#include "fl/federation/holdout.hpp"
#include "fl/config/device_trace.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/privacy/privacy_budget.hpp"
#include "fl/config/strategy.hpp"
#include "model/classic_nets.hpp"
#include "model/clip.hpp"
#include "model/mobilenet_v3.hpp"
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace {

using namespace fedvlm;

const std::filesystem::path kFashion = "/usr/share/datasets/fashion-mnist";

/// on_round_state as the driver sees it: every round's whole state, kept by a RunStateMirror
/// from the hand-overs (whole, or partial where downloads replace whole tensors).
std::function<void(RoundStateChange)> whole_states(std::function<void(const RunCheckpoint&)> each) {
  auto mirror = std::make_shared<RunStateMirror>();
  return [mirror, each = std::move(each)](RoundStateChange change) {
    mirror->apply(std::move(change));
    each(mirror->whole());
  };
}

class RecordingObserver : public RunObserverBase {
public:
  void client_evaluated(const ClientRoundRecord& r) override {
    std::lock_guard<std::mutex> lock(mutex_);
    records.push_back(r);
  }
  void round_finished(const RoundSummary& s) override {
    std::lock_guard<std::mutex> lock(mutex_);
    rounds.push_back(s);
  }
  std::vector<ClientRoundRecord> records;
  std::vector<RoundSummary> rounds;

  [[nodiscard]] const ClientRoundRecord& at(int client, int round) const {
    for (const auto& r : records)
      if (r.client == client && r.round == round) return r;
    throw std::out_of_range("no record for client " + std::to_string(client) + " round " + std::to_string(round));
  }

private:
  std::mutex mutex_;
};

class Federation : public ::testing::Test {
protected:
  // A fixed directory (ctest runs in the build dir): every test process reuses the one
  // pretrained checkpoint cached there instead of pretraining again.
  static void SetUpTestSuite() {
    work_ = std::filesystem::current_path() / "federation_test_work";
    datasets_ = new DatasetCache();
  }
  static void TearDownTestSuite() {
    delete datasets_;
  }
  void SetUp() override {
    if (!std::filesystem::exists(kFashion / "train-images-idx3-ubyte.gz"))
      GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }

  /// 4 clients × 2 rounds on a small pool, backbone pretrained briefly once (cached for the suite).
  static ExperimentConfig small_config(StrategyKind strategy) {
    ExperimentConfig c;
    c.name = "federation_test";
    c.output_dir = work_;
    c.seed = 3;
    c.data.path = kFashion;
    c.data.max_samples = 800;
    c.pretrain.enabled = true;
    // A base that has learnt something (loss ~2.1 after 20 steps was chance level, and whether
    // a federation then learnt depended on the CPU's float rounding).
    c.pretrain.public_samples = 2000;
    c.pretrain.epochs = 2;
    c.pretrain.batch_size = 50;
    c.partition.scheme = PartitionScheme::shards;
    c.partition.shards_per_client = 2;
    c.partition.shards = 8;
    c.federation.clients = 4;
    c.federation.rounds = 2;
    c.partition.clients = 4;
    c.partition.seed = c.seed;
    c.strategy = strategy;
    c.train.local_epochs = 1;
    c.train.lr = 0.05;
    c.scheduler.concurrency = 2;
    return c;
  }

  struct Outcome {
    RunSetup setup;
    RecordingObserver observer;
    RunDone done;
  };
  static std::unique_ptr<Outcome> run(const ExperimentConfig& c, const RunHooks& hooks = {}) {
    auto out = std::make_unique<Outcome>();
    out->setup = prepare_run(c, *datasets_, SetupMode::execute);
    out->done = run_federation(c, c.name + "/" + c.run_label, out->setup, out->observer, hooks);
    return out;
  }

  static inline std::filesystem::path work_;
  static inline DatasetCache* datasets_ = nullptr;
};

bool same(const at::Tensor& a, const at::Tensor& b) { return at::equal(a, b); }

/// True when tensor `name` is bitwise the same in every client's final adapters.
bool same_across_clients(const RunDone& done, const std::string& name) {
  for (std::size_t k = 1; k < done.adapters.size(); ++k)
    if (!same(done.adapters[0].at(name), done.adapters[k].at(name))) return false;
  return true;
}
bool all_distinct_across_clients(const RunDone& done, const std::string& name) {
  for (std::size_t i = 0; i < done.adapters.size(); ++i)
    for (std::size_t j = i + 1; j < done.adapters.size(); ++j)
      if (same(done.adapters[i].at(name), done.adapters[j].at(name))) return false;
  return true;
}

constexpr const char* kA = "classifier.3.lora_A";
constexpr const char* kB = "classifier.3.lora_B";

TEST_F(Federation, PLoRAKeepsEachClientsAPrivateAndAveragesB) {
  const auto c = small_config(StrategyKind::plora);
  const auto out = run(c);
  ASSERT_EQ(out->done.adapters.size(), 4u);
  EXPECT_EQ(out->done.rounds_completed, 2);
  EXPECT_EQ(out->observer.records.size(), 4u * 3u); // round 0 (before) + 2 rounds
  // B came down from the aggregator: identical everywhere, and equal to the global.
  EXPECT_TRUE(same_across_clients(out->done, kB));
  EXPECT_TRUE(same(out->done.global.at(kB), out->done.adapters[0].at(kB)));
  // A never travelled: every client's A is its own, and training changed it.
  EXPECT_TRUE(all_distinct_across_clients(out->done, kA));
  EXPECT_EQ(out->done.global.count(kA), 0u);
  for (int k = 0; k < 4; ++k)
    EXPECT_FALSE(same(out->done.adapters[k].at(kA), initial_adapters(c, out->setup, k).at(kA))) << "client " << k;
  // Only B crosses the network: bytes up == size of every B matrix.
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).bytes_up, out->setup.bytes_up_per_client);
    EXPECT_TRUE(out->observer.at(k, 1).participated);
  }
  int64_t b_bytes = 0;
  for (const auto& [name, t] : out->done.global) b_bytes += t.numel() * 4;
  EXPECT_EQ(out->setup.bytes_up_per_client, b_bytes);
  EXPECT_EQ(out->observer.at(0, 0).phase, kPhaseBefore);
  EXPECT_EQ(out->observer.at(0, 0).bytes_up, 0);
}

TEST_F(Federation, HoldoutClientsAreNeverSelectedAndAreScoredAsNewClients) {
  auto c = small_config(StrategyKind::plora);
  c.evaluation.holdout_clients = 1; // client 3: its shards, never trained
  c.evaluation.adapt_steps = 3;
  const auto out = run(c);
  ASSERT_EQ(out->done.adapters.size(), 3u);
  ASSERT_EQ(out->setup.splits.size(), 3u);
  ASSERT_EQ(out->setup.holdout_splits.size(), 1u);
  for (const auto& r : out->observer.records) EXPECT_LT(r.client, 3);
  EXPECT_EQ(out->observer.records.size(), 3u * 3u);
  // The partition is over all four clients: the holdout client's data is its own.
  const std::vector<int64_t>& held = out->setup.holdout_splits[0].train;
  for (const auto& s : out->setup.splits)
    for (int64_t i : s.train) EXPECT_EQ(std::count(held.begin(), held.end(), i), 0);
  ASSERT_EQ(out->observer.rounds.size(), 3u);
  for (const auto& s : out->observer.rounds) {
    EXPECT_TRUE(std::isfinite(s.holdout_accuracy)) << "round " << s.round;
    EXPECT_TRUE(std::isfinite(s.holdout_adapted_accuracy)) << "round " << s.round;
    EXPECT_LE(s.clients_selected, 3);
  }
  // Round 0: the new client holds what every client starts with: scored by hand the same.
  const HoldoutClient h = holdout_clients(c, out->setup).front();
  const EvalResult start = out->setup.task->evaluate(initial_adapters(c, out->setup, 3), h.settings.split.test, c.lora,
                                                     c.train.eval_batch_size);
  EXPECT_DOUBLE_EQ(out->observer.rounds[0].holdout_accuracy, start.metrics.accuracy);
  // After the last round: the global B with its own fresh A.
  const NewcomerScore last = evaluate_newcomer(*out->setup.task, newcomer_job(h, out->done.global, 3, 2), c.train, c.lora);
  EXPECT_DOUBLE_EQ(out->observer.rounds[2].holdout_accuracy, last.before.metrics.accuracy);
  EXPECT_DOUBLE_EQ(out->observer.rounds[2].holdout_adapted_accuracy, last.after.metrics.accuracy);
}

TEST_F(Federation, FLoRAAveragesBothAAndB) {
  const auto out = run(small_config(StrategyKind::flora));
  EXPECT_TRUE(same_across_clients(out->done, kA));
  EXPECT_TRUE(same_across_clients(out->done, kB));
  EXPECT_TRUE(same(out->done.global.at(kA), out->done.adapters[2].at(kA)));
  EXPECT_EQ(out->observer.at(1, 2).bytes_up, out->setup.adapter_bytes);
}

TEST_F(Federation, FFALoRANeverChangesA) {
  const auto c = small_config(StrategyKind::ffa_lora);
  const auto out = run(c);
  const TensorMap init = initial_adapters(c, out->setup, 0);
  for (int k = 0; k < 4; ++k)
    for (const auto& layer : {"classifier.0", "classifier.3"})
      EXPECT_TRUE(same(out->done.adapters[k].at(std::string(layer) + kLoraA), init.at(std::string(layer) + kLoraA)))
          << "client " << k << " " << layer;
  EXPECT_TRUE(same_across_clients(out->done, kB));
  EXPECT_FALSE(same(out->done.adapters[0].at(kB), init.at(kB))); // B did train
}

TEST_F(Federation, FedSALoRAAveragesAKeepsBPrivate) {
  const auto out = run(small_config(StrategyKind::fedsa_lora));
  EXPECT_TRUE(same_across_clients(out->done, kA));
  EXPECT_TRUE(all_distinct_across_clients(out->done, kB));
  EXPECT_EQ(out->done.global.count(kB), 0u);
}

TEST_F(Federation, LocalOnlySendsNothing) {
  const auto out = run(small_config(StrategyKind::local));
  EXPECT_TRUE(out->done.global.empty());
  EXPECT_TRUE(all_distinct_across_clients(out->done, kA));
  EXPECT_TRUE(all_distinct_across_clients(out->done, kB));
  for (const auto& r : out->observer.records) {
    EXPECT_EQ(r.bytes_up, 0);
    EXPECT_EQ(r.bytes_down, 0);
  }
}

TEST_F(Federation, CentralizedTrainsOneModelEveryClientEvaluates) {
  const auto out = run(small_config(StrategyKind::centralized));
  EXPECT_TRUE(same_across_clients(out->done, kA));
  EXPECT_TRUE(same_across_clients(out->done, kB));
  EXPECT_EQ(out->observer.records.size(), 12u);
  for (const auto& r : out->observer.records) {
    EXPECT_FALSE(r.participated); // no client trains: the central trainer does
    EXPECT_EQ(r.bytes_up, 0);
  }
}

TEST_F(Federation, FedProxRunsWithAnyStrategy) {
  auto c = small_config(StrategyKind::plora);
  c.train.prox_mu = 0.5;
  const auto prox = run(c);
  c.train.prox_mu = 0.0;
  const auto plain = run(c);
  EXPECT_EQ(prox->done.rounds_completed, 2);
  // The proximal term changes the local optimum, so the trained B differs.
  EXPECT_FALSE(same(prox->done.global.at(kB), plain->done.global.at(kB)));
}

TEST_F(Federation, SameSeedGivesIdenticalMetricsHoweverActorsInterleave) {
  auto c = small_config(StrategyKind::plora);
  c.scheduler.concurrency = 3;
  const auto a = run(c);
  const auto b = run(c);
  ASSERT_EQ(a->observer.records.size(), b->observer.records.size());
  for (const auto& ra : a->observer.records) {
    const auto& rb = b->observer.at(ra.client, ra.round);
    EXPECT_EQ(ra.accuracy, rb.accuracy);
    EXPECT_EQ(ra.loss, rb.loss);
    EXPECT_EQ(ra.f1, rb.f1);
    EXPECT_EQ(ra.train_loss, rb.train_loss);
    EXPECT_EQ(ra.bytes_up, rb.bytes_up);
  }
  for (std::size_t k = 0; k < 4; ++k)
    for (const auto& [name, t] : a->done.adapters[k]) EXPECT_TRUE(same(t, b->done.adapters[k].at(name))) << name;
  // A different seed changes the outcome.
  c.seed = 4;
  const auto other = run(c);
  EXPECT_FALSE(same(a->done.global.at(kB), other->done.global.at(kB)));
}

// scheduler.batch_clients: clients train in groups of the round's plan; the metrics equal
// one-by-one training to float rounding, and with the grouping fixed by the plan they are
// identical however many workers run and however the actors interleave.
TEST_F(Federation, ClientsTrainedInOnePassMatchOneByOneAndAreReproducible) {
  auto c = small_config(StrategyKind::plora);
  c.train.local_epochs = 2;
  const auto alone = run(c);
  c.scheduler.batch_clients = 3; // chunks {0, 1, 2} and {3}
  const auto grouped = run(c);
  c.scheduler.concurrency = 1;
  const auto grouped_one_worker = run(c);
  ASSERT_EQ(alone->observer.records.size(), grouped->observer.records.size());
  for (const auto& ra : alone->observer.records) {
    const auto& rg = grouped->observer.at(ra.client, ra.round);
    EXPECT_NEAR(ra.loss, rg.loss, 1e-4) << "client " << ra.client << " round " << ra.round;
    EXPECT_NEAR(ra.train_loss, rg.train_loss, 1e-4) << "client " << ra.client << " round " << ra.round;
    EXPECT_NEAR(ra.accuracy, rg.accuracy, 0.02) << "client " << ra.client << " round " << ra.round;
    const auto& r1 = grouped_one_worker->observer.at(ra.client, ra.round);
    EXPECT_EQ(rg.loss, r1.loss);
    EXPECT_EQ(rg.train_loss, r1.train_loss);
    EXPECT_EQ(rg.accuracy, r1.accuracy);
  }
  for (std::size_t k = 0; k < 4; ++k)
    for (const auto& [name, t] : alone->done.adapters[k]) {
      EXPECT_TRUE(at::allclose(t, grouped->done.adapters[k].at(name), 1e-4, 1e-5)) << name;
      EXPECT_TRUE(same(grouped->done.adapters[k].at(name), grouped_one_worker->done.adapters[k].at(name))) << name;
    }
}

TEST_F(Federation, FailingClientIsLeftOutAndTheRunGoesOn) {
  auto c = small_config(StrategyKind::plora);
  c.faults.failing_clients = {1};
  c.federation.quorum = 0.5;
  const auto out = run(c);
  EXPECT_EQ(out->done.rounds_completed, 2);
  EXPECT_EQ(out->done.rounds_without_quorum, 0);
  for (int round = 1; round <= 2; ++round) {
    EXPECT_FALSE(out->observer.at(1, round).participated);
    EXPECT_EQ(out->observer.at(1, round).bytes_up, 0);
    EXPECT_TRUE(out->observer.at(0, round).participated);
  }
  // It still receives and evaluates the global B.
  EXPECT_TRUE(same(out->done.adapters[1].at(kB), out->done.global.at(kB)));
}

TEST_F(Federation, WithoutQuorumTheGlobalIsKept) {
  auto c = small_config(StrategyKind::plora);
  c.faults.failing_clients = {0, 1, 2};
  c.federation.quorum = 0.5;
  const auto out = run(c);
  EXPECT_EQ(out->done.rounds_without_quorum, 2);
  EXPECT_TRUE(out->done.global.empty()); // nothing was ever aggregated
  EXPECT_EQ(out->observer.records.size(), 12u); // every client was still evaluated
}

// Nobody trains: three rounds in a row in which no selected client answers stop the run as
// failed, saying why, whether the clients all fail, all drop out or all time out.
TEST_F(Federation, RoundWithoutAnyAnswerStopsTheRunSayingWhy) {
  std::vector<ExperimentConfig> cases(3, small_config(StrategyKind::plora));
  cases[0].faults.failing_clients = {0, 1, 2, 3};
  cases[1].faults.dropout_probability = 1.0;
  cases[2].faults.slow_clients = {0, 1, 2, 3};
  cases[2].faults.slow_seconds = 3.0;
  cases[2].federation.round_deadline_s = 2.0; // simulated: nothing waits 3 s for them
  for (auto& c : cases) {
    c.federation.quorum = 0.5;
    c.federation.rounds = 4; // stopped after 3 silent rounds, before the 4th
    try {
      (void)run(c);
      ADD_FAILURE() << "a run in which nobody answered completed";
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("round 3: none of the 4 selected clients answered (failed or timed out: 0, 1, 2, 3), 3 rounds in a row"),
                std::string::npos) << m;
      EXPECT_NE(m.find("nobody trains"), std::string::npos) << m;
    }
  }
}

TEST_F(Federation, StragglerPastTheDeadlineIsLeftOut) {
  auto c = small_config(StrategyKind::plora);
  c.faults.slow_clients = {2};
  c.faults.slow_seconds = 3.0;
  c.federation.round_deadline_s = 2.5; // simulated seconds: the others compute 1 s each
  c.federation.quorum = 0.5;
  c.federation.rounds = 1;
  const auto out = run(c);
  EXPECT_FALSE(out->observer.at(2, 1).participated);
  EXPECT_TRUE(out->observer.at(3, 1).participated);
  EXPECT_EQ(out->observer.rounds.back().clients_answered, 3);
}

// Stragglers a day late cost no wall time (a run that slept for them, or waited for the
// 3600 s wall timeout, would not finish): the virtual clock decides who makes the deadline, so
// the metrics are the same with 1 and 2 workers, and a resumed run goes on with the same clock.
TEST_F(Federation, StragglersAreVirtualReproducibleAndResumeExactly) {
  auto c = small_config(StrategyKind::plora);
  c.federation.rounds = 3;
  c.faults.slow_fraction = 0.5;
  c.faults.slow_seconds = 86400;
  c.faults.slow_distribution = DelayDistribution::exponential;
  c.federation.round_deadline_s = 43200;
  c.federation.quorum = 0.25; // aggregate what made the deadline
  c.network.up_mbps = 1;
  c.network.down_mbps = 4;
  c.network.latency_s = 0.05;
  std::map<int, std::string> saved;
  RunHooks keep;
  keep.on_round_state = whole_states([&](const RunCheckpoint& ck) { saved[ck.round] = checkpoint_encode(ck); });
  const auto two = run(c, keep);
  c.scheduler.concurrency = 1;
  const auto one = run(c);
  ASSERT_EQ(two->observer.rounds.size(), 4u);
  ASSERT_EQ(one->observer.rounds.size(), 4u);
  int dropped = 0, kept = 0;
  double clock = 0;
  int64_t bytes = 0;
  for (int round = 1; round <= 3; ++round) {
    const auto& a = two->observer.rounds[static_cast<std::size_t>(round)];
    const auto& b = one->observer.rounds[static_cast<std::size_t>(round)];
    EXPECT_EQ(a.virtual_seconds, b.virtual_seconds) << round;
    EXPECT_EQ(a.clients_failed, b.clients_failed) << round;
    EXPECT_DOUBLE_EQ(a.virtual_seconds, clock + a.round_virtual_seconds) << round;
    clock = a.virtual_seconds;
    dropped += a.clients_failed;
    kept += a.clients_answered;
    if (a.clients_failed > 0) EXPECT_DOUBLE_EQ(a.round_virtual_seconds, 43200) << "waited until the deadline";
    else EXPECT_LT(a.round_virtual_seconds, 43200);
    for (int k = 0; k < 4; ++k) {
      const auto& ra = two->observer.at(k, round);
      EXPECT_EQ(ra.accuracy, one->observer.at(k, round).accuracy) << k << " " << round;
      EXPECT_EQ(ra.participated, one->observer.at(k, round).participated) << k << " " << round;
      bytes += ra.bytes_up + ra.bytes_down;
    }
    EXPECT_EQ(a.cumulative_bytes, bytes) << round;
  }
  EXPECT_GT(dropped, 0) << "exponential delays of mean 1 day: some pass a 12 h deadline";
  EXPECT_GT(kept, 0);

  RunHooks from1;
  from1.resume_from = checkpoint_decode(saved.at(1), "round 1");
  from1.previous_rounds = {two->observer.rounds[0], two->observer.rounds[1]};
  c.scheduler.concurrency = 2;
  const auto resumed = run(c, from1);
  ASSERT_EQ(resumed->observer.rounds.size(), 2u);
  for (const auto& r : resumed->observer.rounds) {
    const auto& w = two->observer.rounds[static_cast<std::size_t>(r.round)];
    EXPECT_EQ(r.virtual_seconds, w.virtual_seconds) << r.round;
    EXPECT_EQ(r.cumulative_bytes, w.cumulative_bytes) << r.round;
    EXPECT_EQ(r.mean_accuracy, w.mean_accuracy) << r.round;
  }
}

// A device trace: clients offline at the start are never selected, the others run on their
// devices' speeds and links, and overcommit keeps the first to finish.
TEST_F(Federation, ATraceDrivenRunSelectsOnlyAvailableClients) {
  auto c = small_config(StrategyKind::flora);
  c.federation.rounds = 2;
  c.federation.clients_per_round = 1;
  c.federation.overcommit = 2.0; // 2 selected, the first to finish kept
  c.network.devices = parse_device_trace("client,speed_factor,down_mbps,up_mbps,latency_s,available\n"
                                         "0,1.0,10,2,0.02,*\n"
                                         "1,3.0,1,0.5,0.2,*\n"
                                         "2,1.0,10,2,0.02,1000000-2000000\n",
                                         "trace");
  const auto out = run(c);
  ASSERT_EQ(out->observer.rounds.size(), 3u);
  for (int round = 1; round <= 2; ++round) {
    const auto& sum = out->observer.rounds[static_cast<std::size_t>(round)];
    EXPECT_EQ(sum.clients_selected, 2) << round; // of the available 0, 1, 3
    EXPECT_EQ(sum.clients_answered, 1) << round;
    EXPECT_FALSE(out->observer.at(2, round).participated) << "client 2 is offline until 1e6 s";
    EXPECT_FALSE(out->observer.at(1, round).participated) << "device 1 is 3x slower on slower links";
    EXPECT_GT(sum.round_virtual_seconds, 1.0) << round; // 1 s of compute plus its transfers
  }
}

TEST_F(Federation, PartialParticipationSamplesClientsPerRound) {
  auto c = small_config(StrategyKind::flora);
  c.federation.clients_per_round = 2;
  const auto out = run(c);
  for (int round = 1; round <= 2; ++round) {
    const auto chosen = select_clients(4, 2, c.seed, round);
    int participants = 0;
    for (int k = 0; k < 4; ++k) {
      const bool expected = std::find(chosen.begin(), chosen.end(), k) != chosen.end();
      EXPECT_EQ(out->observer.at(k, round).participated, expected) << "client " << k << " round " << round;
      participants += out->observer.at(k, round).participated;
    }
    EXPECT_EQ(participants, 2);
  }
}

// A round asks only the clients that trained for their state; the others' is merged by the
// aggregator from the round's download. Asking every client (the reference) must give the same
// checkpoint, byte for byte, after every round: shared tensors replaced, residuals added to
// lora_delta (FedEx), stacks merged and fresh adapters drawn (stacking), per-client downloads
// with the optimizer dropped (FlexLoRA), alternating factors (RoLoRA).
// With evaluation.clients_sample, FedAvg-of-whole-tensors strategies send the download only to
// the clients a round evaluates; the others merge the newest one before they next train: the
// records (accuracies, bytes) and checkpoints must be those of sending it to everyone.
TEST_F(Federation, ClientsThatDidNotTrainHoldWhatTheAggregatorMergedForThem) {
  const std::vector<std::pair<StrategyKind, int>> cases = {
      {StrategyKind::plora, 0},    {StrategyKind::flora, 0},     {StrategyKind::fedex_lora, 0},
      {StrategyKind::stacking, 0}, {StrategyKind::flexlora, 0},  {StrategyKind::rolora, 0},
      {StrategyKind::plora, 1},    {StrategyKind::flora, 1},     {StrategyKind::ffa_lora, 1},
      {StrategyKind::rolora, 1}};
  for (const auto& [strategy, sample] : cases) {
    auto c = small_config(strategy);
    c.federation.clients_per_round = 2;
    c.federation.rounds = 4;
    c.evaluation.clients_sample = sample;
    c.train.optimizer = OptimizerKind::adamw; // moments that a dropped optimizer would lose
    std::map<int, std::string> asked, merged;
    RunHooks every;
    every.collect_every_state = true;
    every.on_round_state = whole_states([&](const RunCheckpoint& ck) { asked[ck.round] = checkpoint_encode(ck); });
    RunHooks some;
    some.on_round_state = whole_states([&](const RunCheckpoint& ck) { merged[ck.round] = checkpoint_encode(ck); });
    const auto reference = run(c, every);
    const auto out = run(c, some);
    const std::string what = to_string(strategy) + " clients_sample=" + std::to_string(sample);
    ASSERT_EQ(asked.size(), 4u) << what;
    ASSERT_EQ(merged.size(), 4u) << what;
    for (int round = 1; round <= 4; ++round)
      EXPECT_TRUE(asked.at(round) == merged.at(round)) << what << ": checkpoint of round " << round;
    ASSERT_EQ(reference->observer.records.size(), out->observer.records.size()) << what;
    for (const auto& r : out->observer.records) {
      const auto& w = reference->observer.at(r.client, r.round);
      EXPECT_EQ(r.accuracy, w.accuracy) << what << " client " << r.client << " round " << r.round;
      EXPECT_EQ(r.train_loss, w.train_loss) << what << " client " << r.client << " round " << r.round;
      EXPECT_EQ(r.bytes_down, w.bytes_down) << what << " client " << r.client << " round " << r.round;
    }
    ASSERT_EQ(reference->observer.rounds.size(), out->observer.rounds.size()) << what;
    for (std::size_t i = 0; i < out->observer.rounds.size(); ++i)
      EXPECT_EQ(out->observer.rounds[i].cumulative_bytes, reference->observer.rounds[i].cumulative_bytes) << what << " round " << i;
    for (std::size_t k = 0; k < 4; ++k)
      for (const auto& [name, t] : reference->done.adapters[k])
        EXPECT_TRUE(same(t, out->done.adapters[k].at(name))) << what << " client " << k << " " << name;
  }
}

TEST_F(Federation, ResumedFromACheckpointEqualsTheUninterruptedRun) {
  for (StrategyKind strategy : {StrategyKind::plora, StrategyKind::flora}) {
    auto c = small_config(strategy);
    c.federation.rounds = 3;
    c.scheduler.concurrency = 3;
    // The uninterrupted run keeps the encoded state of every round, as the driver's files would.
    std::map<int, std::string> saved;
    RunHooks keep;
    keep.on_round_state = whole_states([&](const RunCheckpoint& ck) { saved[ck.round] = checkpoint_encode(ck); });
    const auto whole = run(c, keep);
    ASSERT_EQ(saved.size(), 3u);

    RunHooks from1;
    from1.resume_from = checkpoint_decode(saved.at(1), "round 1");
    ASSERT_EQ(from1.resume_from.round, 1);
    const auto resumed = run(c, from1);
    EXPECT_EQ(resumed->done.rounds_completed, 3);
    // Only rounds 2 and 3 ran again, and every number in them is the same.
    ASSERT_EQ(resumed->observer.records.size(), 4u * 2u) << to_string(strategy);
    for (const auto& r : resumed->observer.records) {
      const auto& w = whole->observer.at(r.client, r.round);
      EXPECT_GE(r.round, 2);
      EXPECT_EQ(r.accuracy, w.accuracy);
      EXPECT_EQ(r.loss, w.loss);
      EXPECT_EQ(r.train_loss, w.train_loss);
      EXPECT_EQ(r.bytes_up, w.bytes_up);
      EXPECT_EQ(r.bytes_down, w.bytes_down);
    }
    for (std::size_t k = 0; k < 4; ++k)
      for (const auto& [name, t] : whole->done.adapters[k]) EXPECT_TRUE(same(t, resumed->done.adapters[k].at(name))) << name;
    for (const auto& [name, t] : whole->done.global) EXPECT_TRUE(same(t, resumed->done.global.at(name))) << name;
  }
}

TEST_F(Federation, CheckpointOfAnotherShapeIsRefused) {
  auto c = small_config(StrategyKind::plora);
  RunHooks keep;
  RunCheckpoint last;
  keep.on_round_state = whole_states([&](const RunCheckpoint& ck) { last = ck; });
  run(c, keep);
  c.lora.rank = 2 * c.lora.rank;
  RunHooks from;
  from.resume_from = last;
  try {
    run(c, from);
    FAIL() << "a checkpoint of rank " << c.lora.rank / 2 << " was accepted for rank " << c.lora.rank;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
}

TEST_F(Federation, CrashingClientActorIsRespawnedAndTheRunGoesOn) {
  auto c = small_config(StrategyKind::plora);
  c.federation.rounds = 3;
  c.federation.quorum = 0.5;
  c.faults.crash_clients = {1};
  c.faults.crash_rounds = {2};
  const auto out = run(c);
  EXPECT_EQ(out->done.rounds_completed, 3);
  ASSERT_EQ(out->observer.rounds.size(), 4u);
  EXPECT_EQ(out->observer.rounds[2].clients_failed, 1); // round 2: the crash
  EXPECT_EQ(out->observer.rounds[2].clients_answered, 3);
  EXPECT_EQ(out->observer.rounds[1].clients_failed, 0);
  EXPECT_EQ(out->observer.rounds[3].clients_failed, 0);
  // The respawned client evaluates in round 2 and trains again in round 3.
  EXPECT_FALSE(out->observer.at(1, 2).participated);
  EXPECT_TRUE(out->observer.at(1, 3).participated);
  EXPECT_EQ(out->observer.records.size(), 4u * 4u);
  // It came back with its own private A from round 1, not a fresh init.
  EXPECT_FALSE(same(out->done.adapters[1].at(kA), initial_adapters(c, out->setup, 1).at(kA)));
}

TEST_F(Federation, DropOutsFollowEachClientsOwnStream) {
  auto c = small_config(StrategyKind::flora);
  c.federation.rounds = 3;
  c.federation.quorum = 0.25;
  c.faults.dropout_probability = 0.5;
  const auto out = run(c);
  int dropped_total = 0;
  for (int round = 1; round <= 3; ++round) {
    int expected_failed = 0;
    for (int k = 0; k < 4; ++k) {
      const bool drops = draw_client_faults(c.faults, c.seed, k, round).drops_out;
      expected_failed += drops;
      EXPECT_EQ(out->observer.at(k, round).participated, !drops) << "client " << k << " round " << round;
    }
    EXPECT_EQ(out->observer.rounds[static_cast<std::size_t>(round)].clients_failed, expected_failed);
    dropped_total += expected_failed;
  }
  // Seed 3 with p = 0.5 over 12 draws: some drop, some stay (else the test shows nothing).
  EXPECT_GT(dropped_total, 0);
  EXPECT_LT(dropped_total, 12);
}

TEST_F(Federation, StragglersAreCountedLate) {
  auto c = small_config(StrategyKind::plora);
  c.federation.rounds = 1;
  c.faults.slow_clients = {3};
  c.faults.slow_seconds = 0.2;
  const auto out = run(c);
  EXPECT_EQ(out->observer.rounds.back().clients_late, 1);
  EXPECT_EQ(out->observer.rounds.back().clients_answered, 4);
}

TEST_F(Federation, NonFiniteTrainingLossStopsTheRun) {
  auto c = small_config(StrategyKind::plora);
  // Poisoned state: every client resumes round 1 with NaN in its B.
  RunHooks keep;
  RunCheckpoint first;
  keep.on_round_state = whole_states([&](const RunCheckpoint& ck) {
    if (ck.round == 1) first = ck;
  });
  run(c, keep);
  for (auto& cs : first.clients) cs.adapters.at(kB).fill_(std::numeric_limits<float>::quiet_NaN());
  RunHooks from;
  from.resume_from = first;
  try {
    run(c, from);
    FAIL() << "a run whose training loss is NaN completed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nan"), std::string::npos) << e.what();
  }
}

// A checkpoint full of nan used to train to loss nan and "complete"; prepare_run refuses it,
// naming model.weights, the file and the first offending tensor.
TEST_F(Federation, NonFiniteWeightsAreRefusedNamingFileAndTensor) {
  ExperimentConfig c = small_config(StrategyKind::plora);
  c.pretrain.enabled = false;
  MobileNetV3Config mc;
  mc.variant = "small";
  mc.num_classes = 10;
  mc.in_channels = 1;
  TensorMap state = tensor_map_clone(make_mobilenet_v3(mc, 1)->state());
  std::string first_float;
  for (auto& [name, t] : state) {
    if (!t.is_floating_point()) continue;
    t.fill_(std::numeric_limits<float>::quiet_NaN());
    if (first_float.empty()) first_float = name;
  }
  std::filesystem::create_directories(work_);
  c.model.weights = work_ / "nan_weights.safetensors";
  safetensors_save(c.model.weights, state);
  try {
    (void)prepare_run(c, *datasets_, SetupMode::execute);
    ADD_FAILURE() << "a nan checkpoint was accepted";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.weights: " + c.model.weights.string() + ": tensor '" + first_float +
                       "' holds nan at element 0"),
              std::string::npos)
        << msg;
  }
}

TEST_F(Federation, EveryStrategyReportsWhatAggregationLoses) {
  const auto flora = run(small_config(StrategyKind::flora));
  const auto ffa = run(small_config(StrategyKind::ffa_lora));
  const auto plora = run(small_config(StrategyKind::plora));
  const auto local = run(small_config(StrategyKind::local));
  for (int round = 1; round <= 2; ++round) {
    const auto r = static_cast<std::size_t>(round);
    // FedIT averages A and B apart: inexact on trained factors; one layer per LoRA target.
    EXPECT_GT(flora->observer.rounds[r].aggregation_error, 1e-4) << round;
    EXPECT_EQ(flora->observer.rounds[r].aggregation_error_by_layer.size(), 2u);
    // FFA-LoRA: one frozen A for all, so averaging B is exact (float32 rounding only).
    EXPECT_LT(ffa->observer.rounds[r].aggregation_error, 1e-6) << round;
    // pLoRA: no common product; every participant has a drift instead.
    EXPECT_TRUE(std::isnan(plora->observer.rounds[r].aggregation_error));
    for (int k = 0; k < 4; ++k) {
      EXPECT_GT(plora->observer.at(k, round).drift, 0.0) << k;
      EXPECT_TRUE(std::isnan(flora->observer.at(k, round).drift));
      EXPECT_TRUE(std::isnan(local->observer.at(k, round).drift));
    }
    EXPECT_TRUE(std::isnan(local->observer.rounds[r].aggregation_error));
  }
  EXPECT_TRUE(std::isnan(flora->observer.rounds[0].aggregation_error)); // nothing aggregated before round 1
}

TEST_F(Federation, CentralDifferentialPrivacyClipsNoisesAndAccounts) {
  auto c = small_config(StrategyKind::flora);
  c.federation.weighting = Weighting::uniform;
  c.federation.rounds = 3;
  const auto plain = run(c);
  c.privacy.clip_norm = 0.05;
  const auto clipped = run(c); // clipping alone: no noise, no epsilon
  c.privacy.noise_multiplier = 1.0;
  const auto noisy = run(c);
  const auto again = run(c);
  EXPECT_FALSE(same(plain->done.global.at(kB), clipped->done.global.at(kB)));
  EXPECT_FALSE(same(clipped->done.global.at(kB), noisy->done.global.at(kB)));
  EXPECT_TRUE(same(noisy->done.global.at(kB), again->done.global.at(kB))); // noise from the seed
  double previous = 0;
  for (int round = 1; round <= 3; ++round) {
    const double eps = noisy->observer.rounds[static_cast<std::size_t>(round)].epsilon;
    EXPECT_DOUBLE_EQ(eps, epsilon_after_rounds(c.privacy, c.federation, round));
    EXPECT_GT(eps, previous);
    previous = eps;
    EXPECT_TRUE(std::isnan(clipped->observer.rounds[static_cast<std::size_t>(round)].epsilon));
  }
  // Each clipped update moved the global by at most C from where the clients started: the
  // first round's global B is within C of the initial B (zero), without noise.
  EXPECT_LE(clipped->done.global.at(kB).norm().item<double>(), 3 * 0.05 + 1e-6);
}

TEST_F(Federation, PrivacyBudgetStopsTheRunBeforeItIsExceeded) {
  auto c = small_config(StrategyKind::plora);
  c.federation.weighting = Weighting::uniform;
  c.federation.rounds = 10;
  c.privacy.clip_norm = 0.1;
  c.privacy.noise_multiplier = 1.0;
  c.privacy.target_epsilon = epsilon_after_rounds(c.privacy, c.federation, 2) + 1e-9; // room for 2 rounds
  const auto out = run(c);
  EXPECT_EQ(out->done.rounds_completed, 2);
  EXPECT_NE(out->done.note.find("stopped after round 2 of 10"), std::string::npos) << out->done.note;
  EXPECT_LE(out->observer.rounds.back().epsilon, c.privacy.target_epsilon);
}

TEST_F(Federation, LocalDifferentialPrivacyNoisesEveryUpdate) {
  auto c = small_config(StrategyKind::plora);
  c.federation.rounds = 1;
  c.privacy.clip_norm = 0.1;
  c.privacy.noise_multiplier = 0.5;
  c.privacy.mode = PrivacyMode::local;
  const auto noisy = run(c);
  c.privacy.noise_multiplier = 0;
  const auto clipped = run(c);
  EXPECT_FALSE(same(noisy->done.global.at(kB), clipped->done.global.at(kB)));
  EXPECT_GT(noisy->observer.rounds[1].epsilon, 0.0);
}

TEST_F(Federation, RoLoRAAlternatesFactorsAndAveragesExactly) {
  auto c = small_config(StrategyKind::rolora);
  c.federation.rounds = 3;
  std::map<int, RunCheckpoint> states;
  RunHooks keep;
  keep.on_round_state = whole_states([&](const RunCheckpoint& ck) { states[ck.round] = ck; });
  const auto out = run(c, keep);
  ASSERT_EQ(states.size(), 3u);
  const TensorMap init = initial_adapters(c, out->setup, 0);
  int64_t a_bytes = 0, b_bytes = 0;
  for (const auto& [name, t] : init) (name.find("lora_A") != std::string::npos ? a_bytes : b_bytes) += t.numel() * 4;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).bytes_up, b_bytes) << k; // round 1: B only
    EXPECT_EQ(out->observer.at(k, 2).bytes_up, a_bytes) << k; // round 2: A only
    // Round 1 left the common A untouched; round 2 moved it, and every client holds the average.
    const auto& after1 = states[1].clients[static_cast<std::size_t>(k)].adapters;
    EXPECT_TRUE(same(after1.at(kA), init.at(kA))) << k;
    const auto& after2 = states[2].clients[static_cast<std::size_t>(k)].adapters;
    EXPECT_FALSE(same(after2.at(kA), init.at(kA))) << k;
    EXPECT_TRUE(same(after2.at(kA), states[2].clients[0].adapters.at(kA))) << k;
  }
  EXPECT_TRUE(same_across_clients(out->done, kA));
  EXPECT_TRUE(same_across_clients(out->done, kB));
  // The frozen factor is common, so averaging the other is exact (float32 rounding only).
  for (int round = 1; round <= 3; ++round)
    EXPECT_LT(out->observer.rounds[static_cast<std::size_t>(round)].aggregation_error, 1e-6) << round;
  // The global keeps both factors' last averages.
  EXPECT_TRUE(out->done.global.count(kA) && out->done.global.count(kB));
}

/// Mean test loss over the clients after `round`.
double mean_loss(const RecordingObserver& o, int round, int clients = 4) {
  double sum = 0;
  for (int k = 0; k < clients; ++k) sum += o.at(k, round).loss;
  return sum / clients;
}

/// Bytes of a float32 matrix of `rows` × `cols` (expected figures come from the model's shapes).
int64_t f32(int64_t rows, int64_t cols) { return rows * cols * 4; }

TEST_F(Federation, ExactRulesLeaveNoAggregationErrorAndSendWhatTheyShould) {
  auto c = small_config(StrategyKind::fedex_lora);
  c.train.local_epochs = 3; // enough local work per round that round 2's start shows it
  const auto fedex = run(c);
  c.strategy = StrategyKind::stacking;
  c.lora_client_ranks = {1, 2, 4, 2};
  const auto stacking = run(c);
  const auto stacking_again = run(c);
  const auto& targets = fedex->setup.targets; // layer → out × in (MobileNetV3's classifier)
  ASSERT_EQ(targets.size(), 2u);
  int64_t fedex_down = 0, stack_down = 0;
  for (const auto& [name, shape] : targets) {
    const int64_t r = c.lora.rank;
    fedex_down += f32(r, shape.in_features) + f32(shape.out_features, r) + f32(shape.out_features, shape.in_features);
    stack_down += f32(1 + 2 + 4 + 2, shape.in_features) + f32(shape.out_features, 1 + 2 + 4 + 2);
  }
  for (int round = 1; round <= 2; ++round) {
    const auto r = static_cast<std::size_t>(round);
    EXPECT_LT(fedex->observer.rounds[r].aggregation_error, 1e-5) << round;
    EXPECT_LT(stacking->observer.rounds[r].aggregation_error, 1e-5) << round;
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(fedex->observer.at(k, round).bytes_down, fedex_down) << k;
      EXPECT_EQ(stacking->observer.at(k, round).bytes_down, stack_down) << k;
      EXPECT_DOUBLE_EQ(stacking->observer.at(k, round).accuracy, stacking_again->observer.at(k, round).accuracy) << k;
    }
  }
  for (int k = 0; k < 4; ++k) {
    const TensorMap& mine = stacking->done.adapters[static_cast<std::size_t>(k)];
    EXPECT_EQ(mine.at(kA).size(0), client_lora_rank(c, k)) << k;
    EXPECT_EQ(mine.at(kB).abs().max().item<float>(), 0.0f) << k; // merged, then started afresh
    // Every client holds the same merged delta, and so does the global.
    EXPECT_TRUE(at::allclose(mine.at("classifier.3.lora_delta"), stacking->done.global.at("classifier.3.lora_delta")));
  }
  // Fine-tuning through FedEx's merged residuals still learns: local training in round 2 starts
  // from what round 1 merged, and its training loss is lower (0.73 -> 0.43 here). Stacking
  // restarts its adapters every round and merges a product no client fitted alone, so its local
  // loss need not fall; that its merge carries something is checked by the delta above being
  // equal everywhere and, here, non-zero. (Not the test loss of each client's own 2-class split:
  // the merged model mixes the other clients' classes in, and that loss moved by 2e-5 up or down
  // depending on the machine's float rounding.)
  double train_1 = 0, train_2 = 0;
  for (int k = 0; k < 4; ++k) {
    train_1 += fedex->observer.at(k, 1).train_loss;
    train_2 += fedex->observer.at(k, 2).train_loss;
  }
  EXPECT_LT(train_2, train_1);
  EXPECT_GT(stacking->done.global.at("classifier.3.lora_delta").abs().max().item<float>(), 0.0f);
}

TEST_F(Federation, PerClientRulesKeepEachClientsRank) {
  for (StrategyKind kind : {StrategyKind::flexlora, StrategyKind::hetlora}) {
    auto c = small_config(kind);
    c.lora_client_ranks = {2, 4};
    c.train.local_epochs = 3; // 2 rounds of 1 epoch on 2-shard clients barely move the test loss
    const auto out = run(c);
    for (int k = 0; k < 4; ++k) {
      const int rank = client_lora_rank(c, k);
      EXPECT_EQ(out->done.adapters[static_cast<std::size_t>(k)].at(kA).size(0), rank) << to_string(kind);
      int64_t bytes = 0;
      for (const auto& [name, shape] : out->setup.targets) bytes += f32(rank, shape.in_features) + f32(shape.out_features, rank);
      EXPECT_EQ(out->observer.at(k, 2).bytes_down, bytes) << to_string(kind) << " client " << k;
      EXPECT_EQ(out->observer.at(k, 2).bytes_up, bytes) << to_string(kind) << " client " << k;
    }
    const double error = out->observer.rounds[2].aggregation_error;
    EXPECT_TRUE(std::isfinite(error) && error > 0) << to_string(kind) << ": truncation loses something";
    // Local training goes on from what the rule hands back: the clients' training loss falls
    // from round 1 to round 2. (The aggregated model's loss on each 2-class client's own test
    // split is not monotone on this weak base: FlexLoRA's went 1.97 → 2.74 on one machine.)
    double train_1 = 0, train_2 = 0;
    for (int k = 0; k < 4; ++k) {
      train_1 += out->observer.at(k, 1).train_loss;
      train_2 += out->observer.at(k, 2).train_loss;
    }
    EXPECT_LT(train_2, train_1) << to_string(kind);
  }
}

TEST_F(Federation, FullFineTuningAveragesTheTrainedModulesWeights) {
  auto c = small_config(StrategyKind::full);
  c.lora_targets = {"classifier.3"}; // as strategy.trainable would set them
  const auto out = run(c);
  const TensorMap& base = out->setup.task->base_weights();
  // The base as loaded afresh (the cached pretrained checkpoint): the run must not have written it.
  const RunSetup fresh = prepare_run(c, *datasets_, SetupMode::execute);
  const at::Tensor w0 = fresh.task->base_weights().at("classifier.3.weight");
  // What travels: the Linear's weight and bias, from its shape (10 classes x 1024 inputs).
  const auto& shape = out->setup.targets.at("classifier.3");
  const int64_t bytes = (shape.out_features * shape.in_features + shape.out_features) * 4;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).bytes_up, bytes) << k;
    EXPECT_EQ(out->observer.at(k, 1).bytes_down, bytes) << k;
    const TensorMap& mine = out->done.adapters[static_cast<std::size_t>(k)];
    EXPECT_EQ(mine.size(), 2u); // no LoRA factors
    EXPECT_TRUE(same(mine.at("classifier.3.weight"), out->done.global.at("classifier.3.weight"))) << k;
  }
  EXPECT_FALSE(same(out->done.global.at("classifier.3.weight"), w0)); // trained
  EXPECT_TRUE(same(base.at("classifier.3.weight"), w0));              // the shared base never is
  EXPECT_LT(mean_loss(out->observer, 2), mean_loss(out->observer, 0));
}

TEST_F(Federation, CnnMnistTrainedInFullIsScoredOnTheOfficialTestSplit) {
  auto c = small_config(StrategyKind::full);
  c.model.arch = "cnn_mnist";
  c.pretrain.enabled = false;
  c.lora_targets = {"conv1", "conv2", "fc1", "fc2"}; // the whole network, as strategy.trainable sets it
  c.evaluation.global_test = true;
  c.data.test_fraction = 0; // clients train on all their data
  c.federation.rounds = 3;
  c.train.local_epochs = 2;
  c.train.batch_size = 10;
  c.train.momentum = 0.5;
  c.train.fresh_optimizer = true;
  const auto out = run(c);
  ASSERT_EQ(out->setup.global_test.size(), 10000u); // Fashion-MNIST's t10k, after the clients' pool
  EXPECT_EQ(out->observer.at(0, 1).bytes_up, 21840 * 4); // every weight and bias of cnn_mnist
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).test_samples, 0);
    EXPECT_TRUE(std::isnan(out->observer.at(k, 1).accuracy)) << "nothing to measure on the client";
  }
  const auto& rounds = out->observer.rounds;
  EXPECT_NEAR(rounds[0].global_accuracy, 0.1, 0.08); // random init: about chance
  EXPECT_GT(rounds[3].global_accuracy, rounds[0].global_accuracy + 0.15);
  EXPECT_LT(rounds[3].global_loss, rounds[0].global_loss);

  // The last figure again, computed here: the averaged weights in a fresh cnn_mnist on t10k.
  auto model = make_classic_net("cnn_mnist", 10, 0);
  for (auto& [name, t] : model->mutable_state()) t = out->done.global.at(name);
  const auto test = datasets_->test_split(c.data);
  const at::Tensor predicted = model->forward(test->images, ForwardContext{}).argmax(1);
  const double accuracy = predicted.eq(test->labels).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(rounds[3].global_accuracy, accuracy, 1e-9);
}

TEST_F(Federation, TinyClipWithLoraOnItsTextEncoderLearnsForEveryClient) {
  auto c = small_config(StrategyKind::flora);
  c.model.arch = "clip_tiny";
  c.pretrain.enabled = false; // random weights: the loss has far to fall
  c.lora_targets = {"text_model.encoder.layers.*.self_attn.{q,k,v,out}_proj"};
  c.lora.rank = 2;
  c.lora.alpha = 32;
  c.federation.clients = 2;
  c.partition.clients = 2;
  c.partition.shards = 4;
  c.data.max_samples = 200;
  c.federation.rounds = 3;
  c.train.local_epochs = 8;
  c.train.optimizer = OptimizerKind::adam;
  c.train.lr = 0.02;
  const auto out = run(c);
  // FLoRA's placement: q, k, v, out of both text layers; A (r x in) and B (out x r) travel.
  ASSERT_EQ(out->setup.targets.size(), 8u);
  int64_t bytes = 0;
  for (const auto& [name, shape] : out->setup.targets) {
    EXPECT_EQ(name.rfind("text_model.encoder.layers.", 0), 0u) << name;
    bytes += f32(2, shape.in_features) + f32(shape.out_features, 2);
  }
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).bytes_up, bytes) << k;
    // The test loss, not the train loss of later rounds: after each FedAvg of two non-IID
    // clients a round's local training starts from a model neither client had, so the mean
    // train loss of a round need not fall from one round to the next.
    EXPECT_LT(out->observer.at(k, 3).loss, out->observer.at(k, 0).loss) << "client " << k;
  }
}

// Where LibTorch has CUDA (scripts/device_build.sh): the tiny CLIP task built on the GPU trains
// as on the CPU.
TEST_F(Federation, CudaTrainingClipOnTheGpuMatchesTheCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "this LibTorch has no CUDA (or no GPU is visible)";
  auto c = small_config(StrategyKind::flora);
  c.model.arch = "clip_tiny";
  c.pretrain.enabled = false;
  c.lora_targets = {"text_model.encoder.layers.*.self_attn.{q,k,v,out}_proj"};
  const RunSetup on_cpu = prepare_run(c, *datasets_, SetupMode::execute);
  c.device = "cuda";
  const RunSetup on_gpu = prepare_run(c, *datasets_, SetupMode::execute);
  LocalTrainJob job;
  job.adapters = initial_adapters(c, on_cpu, 0);
  for (const auto& [name, t] : job.adapters) job.trainable.insert(name);
  job.indices = on_cpu.splits[0].train;
  job.seed = 5;
  const LocalTrainResult a = on_cpu.task->train(job, c.train, c.lora);
  const LocalTrainResult b = on_gpu.task->train(job, c.train, c.lora);
  for (const auto& [name, t] : a.adapters) EXPECT_TRUE(at::allclose(b.adapters.at(name), t, 1e-3, 1e-4)) << name;
}

// FedFFT on CLIP: every tensor of the named text-tower modules — LayerNorms, embeddings, the
// bias-less projection, a Linear — is trained as each client's copy, travels whole, and is averaged.
TEST_F(Federation, TinyClipFullFineTuningTrainsAndSendsLayerNormsAndEmbeddings) {
  auto c = small_config(StrategyKind::full);
  c.model.arch = "clip_tiny";
  c.pretrain.enabled = false;
  c.strategy_trainable = {"text_model.encoder.layers.0.layer_norm1", "text_model.final_layer_norm",
                          "text_model.embeddings.{token,position}_embedding", "text_projection",
                          "text_model.encoder.layers.1.self_attn.q_proj"};
  c.lora_targets = c.strategy_trainable; // as experiment_toml sets them
  c.federation.clients = 2;
  c.partition.clients = 2;
  c.partition.shards = 4;
  c.data.max_samples = 200;
  c.federation.rounds = 2;
  c.train.local_epochs = 2;
  c.train.optimizer = OptimizerKind::adam;
  c.train.lr = 0.01;
  const std::set<std::string> expected{
      "text_model.encoder.layers.0.layer_norm1.weight", "text_model.encoder.layers.0.layer_norm1.bias",
      "text_model.final_layer_norm.weight", "text_model.final_layer_norm.bias",
      "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
      "text_projection.weight", "text_model.encoder.layers.1.self_attn.q_proj.weight",
      "text_model.encoder.layers.1.self_attn.q_proj.bias"};
  // The bytes from the tiny config's sizes: two LayerNorms (gain and bias), the vocabulary and
  // position embeddings, the projection (no bias), one square Linear with its bias.
  const ClipConfig tiny = clip_tiny();
  const int64_t h = tiny.text.hidden_size;
  const int64_t bytes = 4 * (2 * h + 2 * h + tiny.text.vocab_size * h + tiny.text.max_positions * h +
                             tiny.projection_dim * h + h * h + h);
  const RunSetup plan = prepare_run(c, *datasets_, SetupMode::plan);
  EXPECT_EQ(plan.bytes_up_per_client, bytes);
  EXPECT_EQ(plan.bytes_down_per_client, bytes);

  const auto out = run(c);
  EXPECT_EQ(out->setup.bytes_up_per_client, bytes);
  const TensorMap& base = out->setup.task->base_weights();
  const TensorMap fresh = clip_random_weights(tiny, c.seed); // the base as drawn: the run must not write it
  ASSERT_EQ(base.size(), fresh.size());
  for (const auto& [name, t] : fresh) EXPECT_TRUE(same(base.at(name), t)) << name;
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).bytes_up, bytes) << k;
    EXPECT_EQ(out->observer.at(k, 1).bytes_down, bytes) << k;
    const TensorMap& mine = out->done.adapters[static_cast<std::size_t>(k)];
    std::set<std::string> names;
    for (const auto& [name, t] : mine) names.insert(name);
    EXPECT_EQ(names, expected) << k;
    for (const auto& name : expected) EXPECT_TRUE(same(mine.at(name), out->done.global.at(name))) << name;
  }
  for (const auto& name : expected) EXPECT_FALSE(same(out->done.global.at(name), base.at(name))) << name << " untrained";
  EXPECT_LT(mean_loss(out->observer, 2, 2), mean_loss(out->observer, 0, 2));

  // The image features are cached: a module of the vision tower is refused by name, before any run.
  c.strategy_trainable = c.lora_targets = {"vision_model.post_layernorm"};
  try {
    (void)prepare_run(c, *datasets_, SetupMode::plan);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("strategy.trainable: 'vision_model.post_layernorm' is outside CLIP's text tower"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Federation, LinearProbeAveragesAClassifierOnTheFrozenFeatures) {
  const auto out = run(small_config(StrategyKind::linear_probe));
  // MobileNetV3-Small's trunk gives 576 features; 10 classes: a 10 x 576 weight and 10 biases.
  const int64_t bytes = (10 * 576 + 10) * 4;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(out->observer.at(k, 1).bytes_up, bytes) << k;
    const TensorMap& mine = out->done.adapters[static_cast<std::size_t>(k)];
    EXPECT_EQ(mine.size(), 2u);
    EXPECT_TRUE(same(mine.at("probe.weight"), out->done.global.at("probe.weight"))) << k;
  }
  EXPECT_GT(out->done.global.at("probe.weight").abs().max().item<float>(), 0.0f); // trained from zero
  EXPECT_LT(mean_loss(out->observer, 2), mean_loss(out->observer, 1));
}

TEST_F(Federation, AsyncRunIsReproducibleWhateverTheWallClock) {
  auto c = small_config(StrategyKind::plora);
  c.federation.mode = FederationMode::async;
  c.federation.rounds = 3;           // three aggregations
  c.federation.buffer_size = 2;
  c.federation.speed_sigma = 1.0;    // clients of lasting different speeds
  const auto one = run(c);
  c.scheduler.concurrency = 1;       // another interleaving of the same virtual schedule
  const auto two = run(c);
  ASSERT_EQ(one->observer.rounds.size(), 4u);
  ASSERT_EQ(two->observer.rounds.size(), 4u);
  double clock = 0;
  bool some_stale = false;
  for (int round = 1; round <= 3; ++round) {
    const auto& r1 = one->observer.rounds[static_cast<std::size_t>(round)];
    const auto& r2 = two->observer.rounds[static_cast<std::size_t>(round)];
    EXPECT_EQ(r1.clients_answered, 2) << round; // one buffer
    EXPECT_GT(r1.virtual_seconds, clock) << round;
    clock = r1.virtual_seconds;
    EXPECT_DOUBLE_EQ(r1.virtual_seconds, r2.virtual_seconds) << round;
    EXPECT_DOUBLE_EQ(r1.mean_staleness, r2.mean_staleness) << round;
    some_stale = some_stale || r1.max_staleness > 0;
    for (int k = 0; k < 4; ++k) {
      EXPECT_DOUBLE_EQ(one->observer.at(k, round).accuracy, two->observer.at(k, round).accuracy) << k << " " << round;
      EXPECT_DOUBLE_EQ(one->observer.at(k, round).loss, two->observer.at(k, round).loss) << k << " " << round;
    }
  }
  EXPECT_TRUE(some_stale) << "with 4 clients and buffers of 2, some update must be stale";
  EXPECT_TRUE(same(one->done.global.at(kB), two->done.global.at(kB)));
  // pLoRA in async mode still keeps A private.
  EXPECT_TRUE(all_distinct_across_clients(one->done, kA));
  EXPECT_GT(one->observer.rounds[3].mean_accuracy, one->observer.rounds[0].mean_accuracy);
}

TEST(SelectClients, AllOrASeededSortedSample) {
  EXPECT_EQ(select_clients(3, 0, 1, 1), (std::vector<int>{0, 1, 2}));
  const auto a = select_clients(40, 10, 7, 3);
  EXPECT_EQ(a.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(a, select_clients(40, 10, 7, 3));
  EXPECT_NE(a, select_clients(40, 10, 7, 4));
}

} // namespace
