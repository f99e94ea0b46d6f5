// tests/actors/client_restore_test.cpp — a client takes back a saved state (restore_atom) when a served run rolls back.
#include "actors/client_actor.hpp"
#include "actors/messages.hpp"

#include <ATen/ATen.h>
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <optional>

namespace fedvlm {
namespace {

/// What the client answers (restore_atom, round); nullopt when it answered with an error.
std::optional<bool> restore(caf::scoped_actor& self, const client_actor& client, int round) {
  std::optional<bool> out;
  self->request(client, caf::infinite, restore_atom::value, round)
      .receive([&](bool restored) { out = restored; }, [&](caf::error&) {});
  return out;
}

AdapterSnapshot snapshot(caf::scoped_actor& self, const client_actor& client) {
  AdapterSnapshot out;
  self->request(client, caf::infinite, snapshot_atom::value)
      .receive([&](AdapterSnapshot& s) { out = std::move(s); }, [&](caf::error& err) { ADD_FAILURE() << caf::to_string(err); });
  return out;
}

// The state saved after round 4 replaces the client's; a round without a saved state changes
// nothing and answers false; round 0 is the state it was spawned with; a node without --state
// (no load_state) has nothing to restore but round 0.
TEST(ClientRestore, TakesBackTheSavedStateOfARoundOrItsInitialOne) {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  caf::scoped_actor self{system};
  ClientConfig cc;
  cc.id = 3;
  cc.initial_adapters = {{"fc1.lora_A", at::zeros({2, 3})}};
  const ClientCheckpoint saved{3, {{"fc1.lora_A", at::full({2, 3}, 1.5)}}, {{"fc1.lora_A.exp_avg", at::full({2, 3}, 2.0)}}};
  int asked = -1;
  cc.load_state = [&](int round) -> std::optional<ClientCheckpoint> {
    asked = round;
    if (round == 4) return saved;
    return std::nullopt;
  };
  const client_actor client = spawn_client(system, cc);

  EXPECT_EQ(restore(self, client, 4), std::optional<bool>(true));
  EXPECT_EQ(asked, 4);
  AdapterSnapshot s = snapshot(self, client);
  ASSERT_EQ(s.adapters.count("fc1.lora_A"), 1u);
  EXPECT_TRUE(at::equal(s.adapters.at("fc1.lora_A"), at::full({2, 3}, 1.5)));
  ASSERT_EQ(s.optimizer_state.count("fc1.lora_A.exp_avg"), 1u);
  EXPECT_TRUE(at::equal(s.optimizer_state.at("fc1.lora_A.exp_avg"), at::full({2, 3}, 2.0)));

  EXPECT_EQ(restore(self, client, 5), std::optional<bool>(false)); // nothing saved after round 5
  s = snapshot(self, client);
  EXPECT_TRUE(at::equal(s.adapters.at("fc1.lora_A"), at::full({2, 3}, 1.5))) << "a failed restore changes nothing";

  EXPECT_EQ(restore(self, client, 0), std::optional<bool>(true));
  EXPECT_EQ(asked, 5) << "round 0 is the state it was spawned with, not a file";
  s = snapshot(self, client);
  EXPECT_TRUE(at::equal(s.adapters.at("fc1.lora_A"), at::zeros({2, 3})));
  EXPECT_TRUE(s.optimizer_state.empty());

  ClientConfig without = cc;
  without.load_state = nullptr;
  const client_actor bare = spawn_client(system, without);
  EXPECT_EQ(restore(self, bare, 4), std::optional<bool>(false));
  EXPECT_EQ(restore(self, bare, 0), std::optional<bool>(true));
  self->send_exit(client, caf::exit_reason::user_shutdown);
  self->send_exit(bare, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace fedvlm
