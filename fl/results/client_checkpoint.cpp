// fl/results/client_checkpoint.cpp — a served run's client states in the nodes' own directories.
#include "fl/results/client_checkpoint.hpp"
#include "fl/results/incremental_checkpoint.hpp"

#include <cstdio>
#include <stdexcept>

namespace fedvlm {

bool checkpoint_due(int round, int every, int total_rounds) {
  return every > 0 && round > 0 && (round % every == 0 || round == total_rounds);
}

std::filesystem::path client_state_dir(const std::filesystem::path& state_dir, const std::string& run_id, int client) {
  char name[32];
  std::snprintf(name, sizeof name, "client_%06d", client);
  return state_dir / run_id / name;
}

void client_state_save(const std::filesystem::path& state_dir, const std::string& run_id, uint64_t config_hash,
                       int round, const ClientCheckpoint& state, int keep) {
  RunCheckpoint ck;
  ck.run = run_id;
  ck.config_hash = config_hash;
  ck.round = round;
  ck.clients.push_back(state);
  checkpoint_save(client_state_dir(state_dir, run_id, state.id), ck, keep);
}

std::optional<ClientCheckpoint> client_state_load(const std::filesystem::path& state_dir, const std::string& run_id,
                                                  int client, int round) {
  const auto file = checkpoint_path(client_state_dir(state_dir, run_id, client), round);
  if (!std::filesystem::is_regular_file(file)) return std::nullopt;
  RunCheckpoint ck = checkpoint_load(file);
  if (ck.run != run_id || ck.round != round || ck.clients.size() != 1 || ck.clients.front().id != client)
    throw std::runtime_error(file.string() + " holds another state than client " + std::to_string(client) +
                             " of run '" + run_id + "' after round " + std::to_string(round));
  return std::move(ck.clients.front());
}

} // namespace fedvlm
