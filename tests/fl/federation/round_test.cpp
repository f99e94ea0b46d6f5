// tests/fl/federation/round_test.cpp — what a round decides, checked without an actor system or a dataset.
#include "fl/federation/async_server.hpp"
#include "fl/federation/client_round.hpp"
#include "fl/federation/round.hpp"
#include "fl/aggregation/compression.hpp"
#include "fl/federation/starting_state.hpp"
#include "fl/federation/virtual_clock.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace fedvlm {
namespace {

RoundSettings settings(StrategyKind strategy, int clients) {
  RoundSettings s;
  s.run = "t/run";
  s.strategy = strategy;
  s.federation.clients = clients;
  s.federation.rounds = 3;
  s.seed = 7;
  s.client_ranks.assign(static_cast<std::size_t>(clients), 2);
  return s;
}

ClientUpdate update(int client, int64_t samples, float a, float b) {
  ClientUpdate up;
  up.client = client;
  up.samples = samples;
  up.tensors = {{"fc.lora_A", at::full({2, 3}, a)}, {"fc.lora_B", at::full({4, 2}, b)}};
  up.bytes = 4 * (2 * 3 + 4 * 2);
  up.train_loss = 0.5 * client;
  return up;
}

TEST(Round, QuorumIsTheCeilingOfTheFractionAndAtLeastOne) {
  EXPECT_EQ(quorum_needed(10, 0.5), 5u);
  EXPECT_EQ(quorum_needed(4, 0.75), 3u);
  EXPECT_EQ(quorum_needed(4, 0.76), 4u);
  EXPECT_EQ(quorum_needed(10, 0.3), 3u); // 0.3 × 10 is 3.0000000000000004 in binary: still 3
  EXPECT_EQ(quorum_needed(10, 0.0), 1u);
  EXPECT_EQ(quorum_needed(0, 1.0), 1u);
}

// Three rounds in a row without one answer stop the run (a short run: all its rounds); one
// answer, even below quorum, starts the count again.
TEST(Round, RoundsWithoutAnyAnswerStopTheRunAfterThreeInARow) {
  RoundInFlight r;
  r.selected = {0, 1, 2};
  r.failed = {0, 1, 2};
  int silent = 0;
  for (r.round = 1; r.round <= 2; ++r.round) EXPECT_EQ(nobody_answered(r, silent, 10), "") << r.round;
  const std::string why = nobody_answered(r, silent, 10);
  EXPECT_EQ(why.rfind("round 3: none of the 3 selected clients answered (failed or timed out: 0, 1, 2), 3 rounds in a row", 0), 0u)
      << why;
  EXPECT_EQ(silent, 3);
  RoundInFlight answered = r; // one answer resets the count
  answered.failed = {0, 2};
  answered.updates.emplace(1, update(1, 10, 1.0F, 1.0F));
  EXPECT_EQ(nobody_answered(answered, silent, 10), "");
  EXPECT_EQ(silent, 0);
  // A one-round run stops after its one silent round; nobody selected is no silence.
  int short_run = 0;
  r.round = 1;
  EXPECT_NE(nobody_answered(r, short_run, 1).find("the run's only round"), std::string::npos);
  int none = 0;
  EXPECT_EQ(nobody_answered(RoundInFlight{}, none, 1), "");
  EXPECT_EQ(none, 0);
}

TEST(Round, EveryClientIsEvaluatedWithoutASample) {
  RoundSettings s = settings(StrategyKind::plora, 6);
  RoundInFlight r;
  r.round = 2;
  r.selected = {1, 4};
  EXPECT_EQ(clients_to_evaluate(s, r, 6, {}), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(clients_to_evaluate(s, r, 6, {3}), (std::vector<int>{0, 1, 2, 4, 5})); // a lost client is asked nothing
}

TEST(Round, AnEvaluationSampleIsTheTrainedClientsPlusASeededDrawOfTheOthers) {
  RoundSettings s = settings(StrategyKind::plora, 40);
  s.evaluation_sample = 5;
  RoundInFlight r;
  r.round = 3;
  r.selected = {2, 7, 30};
  r.updates.emplace(2, update(2, 10, 1.0F, 1.0F));
  r.updates.emplace(35, update(35, 10, 1.0F, 1.0F)); // asynchronous mode: answered without being selected this round
  const std::set<int> lost = {9};
  const std::vector<int> a = clients_to_evaluate(s, r, 40, lost);
  ASSERT_EQ(a.size(), 4u + 5u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  const std::set<int> chosen(a.begin(), a.end());
  EXPECT_EQ(chosen.size(), a.size());
  for (int trained : {2, 7, 30, 35}) EXPECT_TRUE(chosen.count(trained)) << trained;
  EXPECT_FALSE(chosen.count(9));
  // Deterministic given the seed and round: a resumed run or another interleaving evaluates the same.
  EXPECT_EQ(clients_to_evaluate(s, r, 40, lost), a);
  RoundInFlight next = r;
  next.round = 4;
  EXPECT_NE(clients_to_evaluate(s, next, 40, lost), a);
  RoundSettings other_seed = s;
  other_seed.seed = 8;
  EXPECT_NE(clients_to_evaluate(other_seed, r, 40, lost), a);
  // Drawn from its own stream, not the selection's: not the clients select_clients would draw.
  std::vector<int> others;
  for (int id = 0; id < 40; ++id)
    if (!std::set<int>{2, 7, 9, 30, 35}.count(id)) others.push_back(id);
  std::vector<int> drawn;
  for (int id : a)
    if (!std::set<int>{2, 7, 30, 35}.count(id)) drawn.push_back(id);
  EXPECT_NE(drawn, sample_clients(others, 5, s.seed, r.round));
  // Over the rounds every client is evaluated now and then.
  std::set<int> seen;
  for (int round = 1; round <= 60; ++round) {
    RoundInFlight rr;
    rr.round = round;
    for (int id : clients_to_evaluate(s, rr, 40, {})) seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 40u);
  // A sample as large as the others: everyone.
  s.evaluation_sample = 40;
  EXPECT_EQ(clients_to_evaluate(s, r, 40, lost).size(), 39u);
}

TEST(Round, SelectionIsASeededSortedSample) {
  const auto a = select_clients(100, 10, 7, 3);
  ASSERT_EQ(a.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int>(a.begin(), a.end()).size(), 10u);
  EXPECT_EQ(a, select_clients(100, 10, 7, 3));
  EXPECT_NE(a, select_clients(100, 10, 7, 4));
  EXPECT_EQ(select_clients(3, 0, 7, 1), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(round_participants(settings(StrategyKind::centralized, 4), 4, 1), (std::vector<int>{-1}));
  EXPECT_EQ(round_participants(settings(StrategyKind::plora, 4), 4, 1), (std::vector<int>{0, 1, 2, 3}));
}

TEST(Round, TheTrainingPlanLeavesOutSimulatedFaultsAndLostClients) {
  RoundSettings s = settings(StrategyKind::plora, 5);
  s.faults.failing_clients = {1};
  s.faults.crash_clients = {3};
  s.faults.crash_rounds = {2};
  EXPECT_EQ(training_plan(s, 1, {0, 1, 2, 3, 4}, {4}), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(training_plan(s, 2, {0, 1, 2, 3, 4}, {}), (std::vector<int>{0, 2, 4}));
}

TEST(Round, WithoutQuorumNothingIsAggregatedAndTheGlobalStays) {
  RoundSettings s = settings(StrategyKind::flora, 3);
  s.federation.quorum = 1.0;
  RoundInFlight r;
  r.round = 1;
  r.selected = {0, 1, 2};
  r.updates.emplace(0, update(0, 10, 1, 1));
  r.failed = {1, 2};
  TensorMap global = {{"fc.lora_B", at::full({4, 2}, 9.0f)}};
  const QuorumOutcome q = close_training_round(s, r, global);
  EXPECT_FALSE(q.met);
  EXPECT_EQ(q.needed, 3u);
  EXPECT_TRUE(r.result.global.empty());
  EXPECT_TRUE(at::equal(global.at("fc.lora_B"), at::full({4, 2}, 9.0f)));
}

TEST(Round, WithQuorumTheGlobalIsTheSampleWeightedAverage) {
  RoundSettings s = settings(StrategyKind::flora, 3);
  s.federation.quorum = 0.5;
  RoundInFlight r;
  r.round = 1;
  r.selected = {0, 1, 2};
  r.updates.emplace(0, update(0, 10, 1, 2));
  r.updates.emplace(2, update(2, 30, 5, 6));
  r.failed = {1};
  TensorMap global;
  const QuorumOutcome q = close_training_round(s, r, global);
  ASSERT_TRUE(q.met);
  // FLoRA averages A and B with weights 10/40 and 30/40, by hand: 0.25·1 + 0.75·5 = 4, 0.25·2 + 0.75·6 = 5.
  EXPECT_TRUE(at::allclose(global.at("fc.lora_A"), at::full({2, 3}, 4.0f)));
  EXPECT_TRUE(at::allclose(global.at("fc.lora_B"), at::full({4, 2}, 5.0f)));
  const std::vector<double> w = aggregation_weights(r.updates, Weighting::samples);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_DOUBLE_EQ(w[0], 0.25);
  EXPECT_DOUBLE_EQ(w[1], 0.75);
}

TEST(Round, ARecordSaysWhoTookPartAndWhatTheyMeasured) {
  RoundSettings s = settings(StrategyKind::plora, 3);
  RoundInFlight r;
  r.round = 2;
  r.updates.emplace(1, update(1, 10, 1, 1));
  ClientEval ev;
  ev.client = 1;
  ev.round = 2;
  ev.result.metrics.accuracy = 0.75;
  ev.result.loss = 0.3;
  ev.test_samples = 20;
  ev.train_samples = 80;
  ClientRoundRecord rec = client_record(s, r, ev, 1.5);
  EXPECT_TRUE(rec.participated);
  EXPECT_EQ(rec.bytes_up, 4 * (2 * 3 + 4 * 2));
  EXPECT_DOUBLE_EQ(rec.train_loss, 0.5);
  EXPECT_EQ(rec.phase, kPhaseRound);
  EXPECT_DOUBLE_EQ(rec.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(rec.round_seconds, 1.5);
  EXPECT_TRUE(std::isnan(rec.staleness)); // sync mode
  ev.client = 2;
  ev.test_samples = 0; // no local test split: nothing was measured
  rec = client_record(s, r, ev, 1.5);
  EXPECT_FALSE(rec.participated);
  EXPECT_TRUE(std::isnan(rec.accuracy));
  EXPECT_TRUE(std::isnan(rec.loss));
}

TEST(Round, AsynchronousRecordsCarryTheMeanStalenessOfTheirCommits) {
  RoundSettings s = settings(StrategyKind::plora, 3);
  s.federation.mode = FederationMode::async;
  RoundInFlight r;
  r.round = 1;
  r.buffer.push_back({update(0, 10, 1, 1), {}, 1});
  r.buffer.push_back({update(0, 10, 1, 1), {}, 4});
  r.buffer.push_back({update(2, 10, 1, 1), {}, 0});
  ClientEval ev;
  ev.client = 0;
  ev.test_samples = 5;
  EXPECT_DOUBLE_EQ(client_record(s, r, ev, 0).staleness, 2.5);
  const RoundSummary sum = round_summary(s, r, {}, nullptr, 0, 12.0);
  EXPECT_DOUBLE_EQ(sum.virtual_seconds, 12.0);
  EXPECT_DOUBLE_EQ(sum.mean_staleness, 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(sum.max_staleness, 4.0);
  EXPECT_EQ(sum.clients_selected, 3);
}

TEST(Round, TheSummaryScoresOnlyClientsWithATestSplit) {
  RoundSettings s = settings(StrategyKind::plora, 3);
  RoundInFlight r;
  r.round = 1;
  r.selected = {0, 1, 2};
  r.failed = {2};
  ClientUpdate late = update(0, 10, 1, 1);
  late.delay_seconds = 2;
  r.updates.emplace(0, late);
  r.updates.emplace(1, update(1, 10, 1, 1));
  std::vector<ClientRoundRecord> recs(3);
  recs[0].accuracy = 0.5;
  recs[0].test_samples = 10;
  recs[1].accuracy = 0.9;
  recs[1].test_samples = 10;
  recs[2].accuracy = std::nan("");
  recs[2].test_samples = 0;
  EvalResult global;
  global.metrics.accuracy = 0.8;
  global.loss = 0.4;
  RoundSummary sum = round_summary(s, r, recs, &global, 3.0, std::nullopt);
  EXPECT_DOUBLE_EQ(sum.mean_accuracy, 0.7);
  EXPECT_DOUBLE_EQ(sum.min_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(sum.max_accuracy, 0.9);
  EXPECT_EQ(sum.clients_selected, 3);
  EXPECT_EQ(sum.clients_answered, 2);
  EXPECT_EQ(sum.clients_failed, 1);
  EXPECT_EQ(sum.clients_late, 1);
  EXPECT_DOUBLE_EQ(sum.global_accuracy, 0.8);
  EXPECT_TRUE(std::isnan(sum.virtual_seconds));
  sum = round_summary(s, r, {recs[2]}, nullptr, 3.0, std::nullopt);
  EXPECT_TRUE(std::isnan(sum.mean_accuracy)); // someone evaluated, nobody had a test split
  sum = round_summary(s, r, {}, nullptr, 3.0, std::nullopt);
  EXPECT_EQ(sum.mean_accuracy, 0.0);
}

TEST(Round, TheCheckpointHoldsClientsOnlyWhenTheyLiveHere) {
  RunProgress p;
  p.rounds_without_quorum = 1;
  p.global = {{"fc.lora_B", at::ones({2, 2})}};
  p.states = {{0, {}, {}}, {1, {}, {}}};
  p.central_state = {-1, {}, {}};
  p.crashes = {0, 2};
  RunCheckpoint ck = round_checkpoint(settings(StrategyKind::plora, 2), p, 2, 99, true);
  EXPECT_EQ(ck.round, 2);
  EXPECT_EQ(ck.total_rounds, 3);
  EXPECT_EQ(ck.config_hash, 99u);
  EXPECT_EQ(ck.rounds_without_quorum, 1);
  ASSERT_EQ(ck.clients.size(), 2u);
  EXPECT_EQ(ck.crashes, (std::vector<int>{0, 2}));
  EXPECT_TRUE(round_checkpoint(settings(StrategyKind::plora, 2), p, 2, 99, false).clients.empty());
  ck = round_checkpoint(settings(StrategyKind::centralized, 2), p, 2, 99, true);
  ASSERT_EQ(ck.clients.size(), 3u);
  EXPECT_EQ(ck.clients.front().id, -1);
}

TEST(Round, APrivacyBudgetStopsTheRunBeforeTheRoundThatWouldExceedIt) {
  RoundSettings s = settings(StrategyKind::plora, 10);
  s.federation.rounds = 100;
  EXPECT_FALSE(budget_stop(s, 5).has_value()); // no DP: never
  s.privacy.clip_norm = 1.0;
  s.privacy.noise_multiplier = 2.0;
  s.privacy.delta = 1e-5;
  s.privacy.target_epsilon = 5.0;
  int stop = -1;
  for (int round = 0; round < 100 && stop < 0; ++round)
    if (budget_stop(s, round)) stop = round;
  ASSERT_GT(stop, 0) << "the first round alone would exceed the budget: pick a larger noise";
  ASSERT_LT(stop, 100);
  EXPECT_NE(budget_stop(s, stop)->find("privacy.target_epsilon"), std::string::npos);
  EXPECT_FALSE(budget_stop(s, 100).has_value()); // the last round is done: nothing to stop
}

TEST(Round, AsynchronousClientsTakeTurnsFromTheIdleOnes) {
  RoundSettings s = settings(StrategyKind::plora, 4);
  std::set<int> idle;
  EXPECT_EQ(next_async_client(s, 4, idle, 2, 0), 2); // everyone trains at once: the same client again
  EXPECT_TRUE(idle.empty());
  s.federation.clients_per_round = 2;
  idle = {0, 3};
  const int pick = next_async_client(s, 4, idle, 1, 5);
  EXPECT_TRUE(pick == 0 || pick == 1 || pick == 3);
  EXPECT_EQ(idle.size(), 2u);
  EXPECT_FALSE(idle.count(pick));
  std::set<int> again = {0, 3};
  EXPECT_EQ(next_async_client(s, 4, again, 1, 5), pick); // the same commit draws the same client
}

// Commits follow the virtual clock, not the order results arrive in; staleness counts the
// aggregations a job missed. Client 0 holds 10 samples and client 1 30 (mean 20), so with one
// virtual second per epoch of mean data their jobs last 0.5 s and 1.5 s.
TEST(AsyncServer, CommitsInVirtualTimeOrderAndCountsStaleness) {
  RoundSettings s = settings(StrategyKind::plora, 2);
  s.federation.mode = FederationMode::async;
  s.federation.buffer_size = 1;
  s.federation.client_seconds = 1.0;
  s.train_samples = {10, 30};
  AsyncServer a(s, 2, 0);
  EXPECT_EQ(a.first_clients(), (std::vector<int>{0, 1}));
  const TensorMap g = {{"fc.lora_B", at::zeros({4, 2})}};
  EXPECT_EQ(a.start(0, g), 1);
  EXPECT_EQ(a.start(1, g), 1);
  RoundInFlight r;
  a.arrived(1, 1, update(1, 30, 1, 1)); // the slow client's result comes back first
  EXPECT_FALSE(a.commit_next(r).has_value()) << "client 0 ends first in virtual time and has not arrived";
  a.arrived(0, 1, update(0, 10, 1, 1));
  auto c = a.commit_next(r);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->client, 0);
  EXPECT_TRUE(c->committed);
  EXPECT_TRUE(c->buffer_full); // buffer_size 1
  EXPECT_EQ(c->next_client, 0); // everyone trains at once: it starts again
  EXPECT_DOUBLE_EQ(a.now(), 0.5);
  ASSERT_EQ(r.buffer.size(), 1u);
  EXPECT_EQ(r.buffer[0].staleness, 0);
  a.aggregated();
  r.buffer.clear();
  EXPECT_EQ(a.start(0, g), 2); // from version 1, ends at 1.0: still before client 1's 1.5
  EXPECT_FALSE(a.commit_next(r).has_value());
  a.arrived(0, 2, std::nullopt); // that job failed
  c = a.commit_next(r);
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->committed);
  EXPECT_FALSE(c->buffer_full);
  EXPECT_TRUE(r.buffer.empty());
  a.aggregated(); // (as if another client's update had been aggregated meanwhile)
  c = a.commit_next(r); // client 1's first job, started at version 0, now version 2
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->client, 1);
  ASSERT_EQ(r.buffer.size(), 1u);
  EXPECT_EQ(r.buffer[0].staleness, 2);
  EXPECT_DOUBLE_EQ(a.now(), 1.5);
}

TEST(ClientRound, TheUpdateCarriesOnlyTheSharedFactorsAndTheirBytes) {
  ClientSettings c;
  c.id = 3;
  c.strategy = StrategyKind::plora; // B shared, A private
  c.split.train = {4, 5, 6};
  const TensorMap adapters = {{"fc.lora_A", at::ones({2, 3})}, {"fc.lora_B", at::full({4, 2}, 2.0f)}};
  LocalTrainResult trained;
  trained.samples = 3;
  trained.mean_loss = 0.25;
  TensorMap kept, residual;
  bool was_kept = true;
  const ClientUpdate up = synchronous_update(c, 1, trained, adapters, {}, 0.5, kept, was_kept, residual);
  EXPECT_FALSE(was_kept);
  ASSERT_EQ(up.tensors.size(), 1u);
  EXPECT_TRUE(up.tensors.count("fc.lora_B"));
  EXPECT_EQ(up.bytes, 4 * 4 * 2); // 4 x 2 float32, from the shape
  EXPECT_EQ(up.samples, 3);
  EXPECT_DOUBLE_EQ(up.delay_seconds, 0.5);
  EXPECT_EQ(up.measured.size(), 2u); // the whole adapters, for the drift
  c.keeps_factors = true;            // on a node: the private A stays here
  const ClientUpdate on_node = synchronous_update(c, 1, trained, adapters, {}, 0, kept, was_kept, residual);
  EXPECT_TRUE(was_kept);
  EXPECT_TRUE(on_node.measured.empty());
  EXPECT_EQ(kept.size(), 2u);
  const LocalTrainJob job = training_job(c, strategy_spec(c.strategy), adapters, {}, 1);
  EXPECT_EQ(job.indices, c.split.train);
  EXPECT_EQ(job.trainable, (std::set<std::string>{"fc.lora_A", "fc.lora_B"}));
  EXPECT_EQ(job.prox_reference.size(), 1u); // FedProx pulls towards what was received: the shared B
}

TEST(ClientRound, ACompressedUpdateCountsItsEncodedBytesAndIsMeasuredAsDecoded) {
  ClientSettings c;
  c.strategy = StrategyKind::plora;
  c.compression.up = CompressionKind::int8;
  const TensorMap adapters = {{"fc.lora_A", at::ones({2, 3})}, {"fc.lora_B", at::arange(8, at::kFloat).reshape({4, 2}) / 7.0}};
  const TensorMap received = {{"fc.lora_B", at::zeros({4, 2})}};
  LocalTrainResult trained;
  TensorMap kept, residual;
  bool was_kept = false;
  const ClientUpdate up = synchronous_update(c, 1, trained, adapters, received, 0, kept, was_kept, residual);
  EXPECT_EQ(up.bytes, 8 + 4); // 8 int8 entries and one float32 scale
  // Scale 1/127: every entry on the int8 grid, within half a step of the trained value.
  const at::Tensor sent = up.tensors.at("fc.lora_B");
  EXPECT_LE((sent - adapters.at("fc.lora_B")).abs().max().item<double>(), 0.5 / 127 + 1e-7);
  EXPECT_TRUE(at::equal(up.measured.at("fc.lora_B"), sent)); // the aggregation error sees what arrived
  EXPECT_TRUE(residual.empty()); // no error feedback outside topk
}

TEST(ClientRound, ClippingBoundsTheChangeFromWhatWasReceived) {
  ClientSettings c;
  c.privacy.clip_norm = 1.0;
  TensorMap received = {{"fc.lora_B", at::zeros({2, 2})}};
  TensorMap update = {{"fc.lora_B", at::full({2, 2}, 3.0f)}}; // change of norm 6
  privatize_update(c, 1, received, update);
  EXPECT_NEAR(update.at("fc.lora_B").norm().item<double>(), 1.0, 1e-5);
}

TEST(StartingState, EachStrategyStartsFromItsOwnOrASharedA) {
  ExperimentConfig c;
  c.federation.clients = 3;
  c.lora.rank = 2;
  c.seed = 11;
  RunSetup setup;
  setup.targets = {{"fc", AdaptableLayer{4, 3}}};
  c.strategy = StrategyKind::plora;
  const TensorMap a0 = initial_adapters(c, setup, 0), a1 = initial_adapters(c, setup, 1);
  EXPECT_FALSE(at::equal(a0.at("fc.lora_A"), a1.at("fc.lora_A"))); // own A per client
  EXPECT_TRUE(at::equal(a0.at("fc.lora_B"), at::zeros({4, 2})));   // B = 0
  EXPECT_TRUE(at::equal(a0.at("fc.lora_A"), initial_adapters(c, setup, 0).at("fc.lora_A"))); // seeded
  c.strategy = StrategyKind::ffa_lora;
  EXPECT_TRUE(at::equal(initial_adapters(c, setup, 0).at("fc.lora_A"), initial_adapters(c, setup, 2).at("fc.lora_A")));
  ClientCheckpoint central;
  const auto states = starting_states(c, setup, RunCheckpoint{}, central);
  ASSERT_EQ(states.size(), 3u);
  EXPECT_EQ(states[2].id, 2);
  EXPECT_EQ(central.id, kSharedInit);
}

TEST(StartingState, ACheckpointMissingAClientOrOfAnotherShapeIsRefused) {
  ExperimentConfig c;
  c.federation.clients = 2;
  c.lora.rank = 2;
  RunSetup setup;
  setup.targets = {{"fc", AdaptableLayer{8, 6}}};
  RunCheckpoint ck;
  ck.round = 3;
  ck.clients = {{0, initial_adapters(c, setup, 0), {}}};
  ClientCheckpoint central;
  try {
    (void)starting_states(c, setup, ck, central);
    FAIL() << "a checkpoint without client 1 was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("lacks client 1"), std::string::npos) << e.what();
  }
  ck.clients.push_back({1, initial_adapters(c, setup, 1), {}});
  EXPECT_NO_THROW((void)starting_states(c, setup, ck, central));
  c.lora.rank = 3; // the saved adapters have rank 2
  try {
    (void)starting_states(c, setup, ck, central);
    FAIL() << "rank-2 adapters were taken for a rank-3 run";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
}

TEST(ClientRound, SettingsComeFromTheExperimentInOnePlace) {
  ExperimentConfig c;
  c.seed = 77;
  c.strategy = StrategyKind::flora;
  c.lora.alpha = 12;
  c.faults.failing_clients = {1};
  c.privacy.clip_norm = 0.5;
  std::vector<LocalSplit> splits(3);
  splits[0].train = {7, 2};
  splits[1].train = {5, 9};
  splits[1].test = {3};
  splits[2].train = {1};
  const ClientSettings one = client_settings(c, splits, 1, /*on_node=*/true);
  EXPECT_EQ(one.id, 1);
  EXPECT_EQ(one.split.train, (std::vector<int64_t>{5, 9}));
  EXPECT_EQ(one.split.test, (std::vector<int64_t>{3}));
  EXPECT_EQ(one.strategy, StrategyKind::flora);
  EXPECT_EQ(one.run_seed, 77u);
  EXPECT_DOUBLE_EQ(one.lora_alpha, 12);
  EXPECT_EQ(one.faults.failing_clients, (std::vector<int>{1}));
  EXPECT_DOUBLE_EQ(one.privacy.clip_norm, 0.5);
  EXPECT_TRUE(one.keeps_factors);
  // The centralized trainer: every client's training samples, sorted; no faults, no privacy.
  const ClientSettings central = client_settings(c, splits, kSharedInit, false);
  EXPECT_EQ(central.split.train, (std::vector<int64_t>{1, 2, 5, 7, 9}));
  EXPECT_TRUE(central.split.test.empty());
  EXPECT_TRUE(central.faults.failing_clients.empty());
  EXPECT_DOUBLE_EQ(central.privacy.clip_norm, 0);
  EXPECT_FALSE(central.keeps_factors);
  EXPECT_THROW((void)client_settings(c, splits, 3, false), std::out_of_range);
}

} // namespace
TEST(Round, P10AndWorstClientAccuracy) {
  // numpy.percentile([1, 2, 3, 4, 5], 10) = 1.4; of one value, the value.
  EXPECT_DOUBLE_EQ(percentile({5, 1, 4, 2, 3}, 0.1), 1.4);
  EXPECT_DOUBLE_EQ(percentile({0.7}, 0.1), 0.7);
  EXPECT_TRUE(std::isnan(percentile({}, 0.1)));
  RoundSettings s;
  RoundInFlight r;
  r.round = 1;
  std::vector<ClientRoundRecord> records;
  for (int k = 0; k < 11; ++k) {
    ClientRoundRecord rec;
    rec.client = k;
    rec.accuracy = 0.1 * (10 - k); // 1.0, 0.9, ..., 0.0
    rec.test_samples = 10;
    records.push_back(rec);
  }
  records.back().test_samples = 0; // not scored: left out (accuracies 0.1 .. 1.0 remain)
  const RoundSummary sum = round_summary(s, r, records, nullptr, 0, std::nullopt);
  EXPECT_NEAR(sum.p10_accuracy, 0.19, 1e-12); // 0.1 + 0.9 x (0.2 - 0.1)
  EXPECT_NEAR(sum.min_accuracy, 0.1, 1e-12);
}

} // namespace fedvlm
