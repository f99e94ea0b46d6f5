// fl/results/incremental_checkpoint.cpp — deltas over the last full checkpoint, their resolution, the writer.
#include "fl/results/incremental_checkpoint.hpp"

#include "fl/results/run_state_mirror.hpp"
#include "support/atomic_file.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace fedvlm {

void share_unchanged(TensorMap& fresh, const TensorMap& previous, const TensorMap* global) {
  for (auto& [name, t] : fresh) {
    auto p = previous.find(name);
    if (p != previous.end() && same_bytes(t, p->second)) {
      t = p->second;
      continue;
    }
    if (!global) continue;
    auto g = global->find(name);
    if (g != global->end() && same_bytes(t, g->second)) t = g->second;
  }
}

namespace {

/// `current` less the tensors equal to `base`'s (named in `from_base`) or, where `global` is
/// given, to global's of the same name (named in `from_global`).
TensorMap strip(const TensorMap& current, const TensorMap& base, const TensorMap* global,
                std::vector<std::string>& from_base, std::vector<std::string>* from_global) {
  TensorMap stored;
  for (const auto& [name, t] : current) {
    auto b = base.find(name);
    if (b != base.end() && same_bytes(t, b->second)) {
      from_base.push_back(name);
      continue;
    }
    if (global) {
      auto g = global->find(name);
      if (g != global->end() && same_bytes(t, g->second)) {
        from_global->push_back(name);
        continue;
      }
    }
    stored.emplace(name, t);
  }
  return stored;
}

/// `stored` with the named tensors put back from `base` (and `global`).
TensorMap unstrip(TensorMap stored, const TensorMap& base, const TensorMap* global,
                  const std::vector<std::string>& from_base, const std::vector<std::string>* from_global,
                  const std::string& what) {
  for (const auto& name : from_base) {
    auto b = base.find(name);
    if (b == base.end()) throw std::runtime_error(what + ": tensor " + name + " is not in the base checkpoint");
    stored[name] = b->second;
  }
  if (global)
    for (const auto& name : *from_global) {
      auto g = global->find(name);
      if (g == global->end()) throw std::runtime_error(what + ": tensor " + name + " is not in the global matrices");
      stored[name] = g->second;
    }
  return stored;
}

/// A delta over the checkpoint of `base_round` holding `head`'s every field but the clients (those
/// are added one by one); clients left out are the base's with the global's tensors taken.
StoredCheckpoint delta_head(int base_round, const RunCheckpoint& head) {
  StoredCheckpoint out;
  out.info.base_round = base_round;
  out.info.same_clients_as_base = true;
  out.info.left_out_take_global = true;
  out.state.run = head.run;
  out.state.config_hash = head.config_hash;
  out.state.round = head.round;
  out.state.total_rounds = head.total_rounds;
  out.state.rounds_without_quorum = head.rounds_without_quorum;
  out.state.global = head.global;
  out.state.crashes = head.crashes;
  return out;
}

/// Client `now` into the delta: its tensors less those equal to `then`'s (named) or to the global's.
void add_changed(StoredCheckpoint& out, const ClientCheckpoint& now, const ClientCheckpoint& then, const TensorMap& global) {
  KeptTensors kept;
  kept.id = now.id;
  ClientCheckpoint changed;
  changed.id = now.id;
  changed.adapters = strip(now.adapters, then.adapters, &global, kept.adapters_from_base, &kept.adapters_from_global);
  changed.optimizer_state = strip(now.optimizer_state, then.optimizer_state, nullptr, kept.optimizer_from_base, nullptr);
  changed.residual = now.residual; // whole: it changes whenever the client sends
  out.state.clients.push_back(std::move(changed));
  out.info.kept.push_back(std::move(kept));
}

} // namespace

StoredCheckpoint checkpoint_delta(const RunCheckpoint& base, const RunCheckpoint& current) {
  if (base.clients.size() != current.clients.size())
    throw std::invalid_argument("checkpoint_delta: " + std::to_string(current.clients.size()) + " clients, the base has " +
                                std::to_string(base.clients.size()));
  StoredCheckpoint out = delta_head(base.round, current);
  for (std::size_t i = 0; i < current.clients.size(); ++i) {
    const ClientCheckpoint& now = current.clients[i];
    const ClientCheckpoint& then = base.clients[i];
    if (now.id != then.id)
      throw std::invalid_argument("checkpoint_delta: client " + std::to_string(now.id) + " where the base has " +
                                  std::to_string(then.id));
    if (only_took_global(then, now, current.global)) continue;
    add_changed(out, now, then, current.global);
  }
  return out;
}

StoredCheckpoint checkpoint_delta_over(int previous_round, std::size_t previous_clients, const RunCheckpoint& head,
                                       std::size_t clients, const std::function<const ClientCheckpoint&(std::size_t)>& client_at,
                                       const std::vector<std::size_t>& changed) {
  if (previous_clients != clients)
    throw std::invalid_argument("checkpoint_delta_over: " + std::to_string(clients) + " clients, the previous checkpoint has " +
                                std::to_string(previous_clients));
  StoredCheckpoint out = delta_head(previous_round, head);
  const ClientCheckpoint nothing; // their state then is not at hand: every tensor stored but the global's
  for (const std::size_t i : changed) add_changed(out, client_at(i), nothing, head.global);
  return out;
}

RunCheckpoint checkpoint_resolve(const RunCheckpoint& base, const StoredCheckpoint& delta, const std::string& origin) {
  if (delta.info.base_round == 0) return delta.state;
  if (base.round != delta.info.base_round)
    throw std::runtime_error(origin + ": a delta over round " + std::to_string(delta.info.base_round) +
                             ", given the checkpoint of round " + std::to_string(base.round));
  if (delta.info.kept.size() != delta.state.clients.size())
    throw std::runtime_error(origin + ": " + std::to_string(delta.state.clients.size()) + " clients stored, " +
                             std::to_string(delta.info.kept.size()) + " lists of kept tensors");
  std::map<int, const ClientCheckpoint*> in_base;
  for (const auto& cs : base.clients) in_base[cs.id] = &cs;
  std::map<int, std::size_t> changed;
  for (std::size_t i = 0; i < delta.state.clients.size(); ++i) changed[delta.state.clients[i].id] = i;
  RunCheckpoint out = delta.state;
  out.clients.clear();
  std::vector<int> ids = delta.info.client_ids;
  if (delta.info.same_clients_as_base)
    for (const auto& cs : base.clients) ids.push_back(cs.id);
  for (const int id : ids) {
    auto b = in_base.find(id);
    if (b == in_base.end())
      throw std::runtime_error(origin + ": client " + std::to_string(id) + " is not in the checkpoint of round " +
                               std::to_string(base.round));
    auto c = changed.find(id);
    if (c == changed.end()) {
      out.clients.push_back(*b->second);
      if (delta.info.left_out_take_global)
        for (auto& [name, t] : out.clients.back().adapters)
          if (auto g = delta.state.global.find(name); g != delta.state.global.end()) t = g->second;
      continue;
    }
    const ClientCheckpoint& stored = delta.state.clients[c->second];
    const KeptTensors& kept = delta.info.kept[c->second];
    const std::string what = origin + ": client " + std::to_string(id);
    ClientCheckpoint cs;
    cs.id = id;
    cs.adapters = unstrip(stored.adapters, b->second->adapters, &delta.state.global, kept.adapters_from_base,
                          &kept.adapters_from_global, what);
    cs.optimizer_state = unstrip(stored.optimizer_state, b->second->optimizer_state, nullptr, kept.optimizer_from_base,
                                 nullptr, what);
    cs.residual = stored.residual;
    out.clients.push_back(std::move(cs));
  }
  return out;
}

namespace {

StoredCheckpoint read_stored(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open checkpoint " + file.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return stored_checkpoint_decode(ss.str(), file.string());
}

/// The round of a checkpoint file name round_NNNNNN.ckpt.
int round_of(const std::filesystem::path& file) { return std::stoi(file.stem().string().substr(6)); }

} // namespace

RunCheckpoint checkpoint_load(const std::filesystem::path& file) {
  StoredCheckpoint stored = read_stored(file);
  if (stored.info.base_round == 0) return std::move(stored.state);
  if (stored.info.base_round >= stored.state.round)
    throw std::runtime_error(file.string() + ": a delta of round " + std::to_string(stored.state.round) +
                             " over the checkpoint of round " + std::to_string(stored.info.base_round) +
                             " (a base must be older)");
  const std::filesystem::path base_file = file.parent_path() / checkpoint_path("", stored.info.base_round).filename();
  if (!std::filesystem::exists(base_file))
    throw std::runtime_error(file.string() + ": a delta over the checkpoint of round " +
                             std::to_string(stored.info.base_round) + ", and " + base_file.string() + " is missing");
  // A base may be a delta itself (over the checkpoint before it), back to a full one.
  return checkpoint_resolve(checkpoint_load(base_file), stored, file.string());
}

CheckpointWriter::CheckpointWriter(std::filesystem::path run_dir, int keep, int full_every)
    : run_dir_(std::move(run_dir)), keep_(std::max(1, keep)), full_every_(std::max(1, full_every)) {}

void CheckpointWriter::save(const RunCheckpoint& state) {
  RunStateMirror mirror;
  mirror.apply(RoundStateChange{state, true, {}, 0});
  save(mirror);
}

void CheckpointWriter::save(RunStateMirror& state) {
  const auto file = checkpoint_path(run_dir_, state.round());
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) throw std::runtime_error("cannot create " + file.parent_path().string() + ": " + ec.message());
  bool full = !have_previous_ || deltas_since_full_ + 1 >= full_every_ || previous_clients_ != state.size();
  StoredCheckpoint stored;
  if (full) {
    stored.state = state.whole();
  } else {
    stored = checkpoint_delta_over(previous_round_, previous_clients_, state.head(), state.size(),
                                   [&state](std::size_t i) -> const ClientCheckpoint& { return state.client(i); },
                                   state.changed_after(previous_round_));
  }
  last_bytes_ = checkpoint_write(file, stored);
  deltas_since_full_ = full ? 0 : deltas_since_full_ + 1;
  bases_[state.round()] = full ? 0 : previous_round_;
  have_previous_ = true;
  previous_round_ = state.round();
  previous_clients_ = state.size();
  remove_unneeded();
}

void CheckpointWriter::remove_unneeded() {
  // Keep the `keep` newest and every file they are deltas over, back to a full one. A file an
  // earlier process wrote may need any older one: while one is kept, nothing older goes.
  const auto files = checkpoint_files(run_dir_);
  if (files.size() <= static_cast<std::size_t>(keep_)) return;
  const std::size_t first_kept = files.size() - static_cast<std::size_t>(keep_);
  std::set<int> needed;
  for (std::size_t i = first_kept; i < files.size(); ++i) {
    for (int round = round_of(files[i]);;) {
      auto it = bases_.find(round);
      if (it == bases_.end()) return; // not written here: its chain is not known
      if (it->second == 0) break;
      round = it->second;
      needed.insert(round);
    }
  }
  std::error_code ec;
  for (std::size_t i = 0; i < first_kept; ++i) {
    const int round = round_of(files[i]);
    if (needed.count(round)) continue;
    std::filesystem::remove(files[i], ec);
    bases_.erase(round);
  }
}

} // namespace fedvlm
