// actors/scheduler_actor.cpp — job queue, worker pool, and the scheduler's metrics.
#include "actors/scheduler_actor.hpp"
#include "support/join.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "support/byte_size.hpp"
#include "fl/runtime/compute_device.hpp"
#include "fl/runtime/interrupt.hpp"
#include "fl/tasks/local_training.hpp"
#include "fl/runtime/memory_admission.hpp"
#include "fl/runtime/resident_memory.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

namespace fedvlm {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// Runs `job`; exceptions become engine errors, so a failed job is an answer the aggregator can
/// act on (stop the run) instead of a dead worker.
template <class F>
auto guarded(const char* what, F job) -> caf::result<decltype(job())> {
  try {
    return job();
  } catch (const Interrupted& i) {
    return make_engine_error(EngineErrc::interrupted, std::string(what) + " interrupted by signal " +
                                                          std::to_string(i.signal_number));
  } catch (const NonFiniteLossError& e) {
    return make_engine_error(EngineErrc::non_finite_loss, e.what());
  } catch (const std::exception& e) {
    return make_engine_error(EngineErrc::job_failed, std::string(what) + " failed: " + e.what());
  }
}

caf::behavior worker(caf::event_based_actor* self, SchedulerConfig cfg) {
  return {
      [cfg](TrainJobMsg& msg) {
        use_own_stream(cfg.task->device()); // this worker's thread, its own CUDA stream
        const int client = msg.client, round = msg.round;
        return guarded(("client " + std::to_string(client) + ", round " + std::to_string(round) + ": training").c_str(),
                       [&] { return TrainDoneMsg{cfg.task->train(std::move(msg.job), cfg.train, cfg.lora)}; });
      },
      [cfg](TrainGroupMsg& msg) {
        use_own_stream(cfg.task->device());
        const std::string who = join_with(msg.jobs, ", ", [](const TrainJobMsg& m) { return std::to_string(m.client); });
        std::vector<LocalTrainJob> jobs;
        for (auto& m : msg.jobs) jobs.push_back(std::move(m.job));
        const std::string what = "clients " + who + " (one pass), round " + std::to_string(msg.jobs.front().round) + ": training";
        return guarded(what.c_str(), [&] { return TrainGroupDoneMsg{cfg.task->train_group(std::move(jobs), cfg.train, cfg.lora)}; });
      },
      [cfg](NewcomerJob& job) {
        use_own_stream(cfg.task->device());
        const std::string what = "holdout client " + std::to_string(job.start.client) + ", round " +
                                 std::to_string(job.start.round) + ": adaptation and evaluation";
        return guarded(what.c_str(), [&] { return evaluate_newcomer(*cfg.task, job, cfg.train, cfg.lora); });
      },
      [cfg](EvalJobMsg& msg) {
        use_own_stream(cfg.task->device());
        const std::string what = "client " + std::to_string(msg.client) + ", round " + std::to_string(msg.round) + ": evaluation";
        return guarded(what.c_str(), [&] {
          return cfg.task->evaluate(msg.adapters, msg.indices, cfg.lora, cfg.train.eval_batch_size);
        });
      },
      [cfg](EvalPartMsg& msg) {
        use_own_stream(cfg.task->device());
        const EvalJobMsg& job = msg.job;
        const std::string what = "client " + std::to_string(job.client) + ", round " + std::to_string(job.round) +
                                 ": evaluation of " + std::to_string(job.indices.size()) + " samples (a part)";
        return guarded(what.c_str(), [&] {
          return cfg.task->evaluate_part(job.adapters, job.indices, cfg.lora, cfg.train.eval_batch_size);
        });
      },
  };
}

struct PendingJob {
  std::string kind;
  int count = 1; ///< clients it trains: a group counts as that many jobs for memory admission
  clock_type::time_point queued_at;
  std::function<void(caf::actor worker, std::function<void()> done)> start;
};

struct scheduler_state {
  SchedulerConfig cfg;
  std::vector<caf::actor> workers;
  std::vector<caf::actor> idle;
  std::deque<PendingJob> queue;
  std::optional<MemoryAdmission> admission;
  std::multiset<std::string> running; ///< kinds of the jobs running now
  /// Watches the one job running alone; dropped when a second job joins it (no longer its own).
  std::unique_ptr<JobMemoryProbe> sampler;
  uint64_t sampled_job = 0, next_job = 0;
  bool warned_over_budget = false;
  static inline const char* name = "fedvlm.scheduler";

  /// scheduler.batch_clients: each planned round's client order, and the jobs held until their
  /// chunk of that order is complete (round → chunk → client → job).
  struct HeldTrain {
    TrainJobMsg msg;
    caf::response_promise rp;
  };
  std::map<int, std::vector<int>> plans;
  std::map<int, std::map<std::size_t, std::map<int, HeldTrain>>> held;

  std::vector<std::string> running_kinds() const { return {running.begin(), running.end()}; }
  /// May `count` more jobs of `kind` (a group of clients) start? With nothing running, always:
  /// the run must progress, and a group alone is how its cost gets measured.
  bool admits(const std::string& kind, int count) const {
    if (running.empty()) return true;
    std::vector<std::string> r = running_kinds();
    for (int i = 0; i < count; ++i) {
      if (!admission->admit(kind, r)) return false;
      r.push_back(kind);
    }
    return true;
  }
};

using scheduler_self = scheduler_actor::stateful_pointer<scheduler_state>;

void report_admission(scheduler_state& st) {
  if (!st.cfg.observer || !st.admission->limited()) return;
  st.cfg.observer->scheduler_memory(static_cast<int>(st.running.size()), st.admission->budget(),
                                    st.admission->projected(st.running_kinds()));
}

/// Starts queued jobs, in arrival order, while a worker is idle and the budget admits the next.
void dispatch(scheduler_self self) {
  auto& st = self->state;
  while (!st.idle.empty() && !st.queue.empty() && st.admits(st.queue.front().kind, st.queue.front().count)) {
    caf::actor w = st.idle.back();
    st.idle.pop_back();
    PendingJob job = std::move(st.queue.front());
    st.queue.pop_front();
    const double waited = seconds_since(job.queued_at);
    const auto started = clock_type::now();
    const std::string kind = job.kind;
    const int count = job.count;
    const uint64_t id = ++st.next_job;
    if (st.admission->limited()) {
      if (st.running.empty()) {
        st.sampler = std::make_unique<JobMemoryProbe>(st.cfg.task->device());
        st.sampled_job = id;
      } else {
        st.sampler.reset(); // two jobs now share the process: neither measurement is one job's
      }
      const int64_t projected = st.admission->projected(st.running_kinds()) + count * std::max<int64_t>(0, st.admission->cost(kind));
      if (projected > st.admission->budget() && !st.warned_over_budget) {
        st.warned_over_budget = true;
        spdlog::warn("scheduler.memory_budget = {}: one {} job alone is projected at {} (shared part {}); it runs "
                     "anyway, one job at a time",
                     byte_size_text(st.admission->budget()), kind, byte_size_text(projected),
                     byte_size_text(st.admission->shared()));
      }
    }
    for (int i = 0; i < count; ++i) st.running.insert(kind);
    report_admission(st);
    job.start(w, [self, w, waited, started, kind, count, id] {
      auto& s = self->state;
      if (s.sampler && s.sampled_job == id) {
        s.admission->observe_job(kind, s.sampler->stop() / count);
        s.sampler.reset();
      }
      for (int i = 0; i < count; ++i) s.running.erase(s.running.find(kind));
      if (s.cfg.observer) {
        s.cfg.observer->scheduler_job(kind, waited, seconds_since(started));
        const DeviceMemory gpu = device_memory(s.cfg.task->device());
        const int64_t rss = resident_bytes();
        // Where the models run: a GPU's allocator, or the process itself on the CPU.
        s.cfg.observer->device_memory(gpu.allocated >= 0 ? gpu.allocated : rss, gpu.peak);
        s.cfg.observer->process_memory(rss);
      }
      report_admission(s);
      s.idle.push_back(w);
      dispatch(self);
      // The device went idle (a round's trainings or evaluations are done): hand the freed
      // tensors' pages back, or glibc keeps them and memory creeps up round after round.
      if (s.running.empty() && s.queue.empty()) return_free_memory();
    });
  }
  if (st.cfg.observer) st.cfg.observer->scheduler_queue(static_cast<int>(st.queue.size()));
}

/// Queues `msg` for a worker; its reply goes to `on_reply`, or its error to `on_error`.
template <class Msg, class Reply, class OnReply, class OnError>
void enqueue_then(scheduler_self self, const char* kind, Msg msg, OnReply on_reply, OnError on_error) {
  self->state.queue.push_back(PendingJob{
      kind, 1, clock_type::now(),
      [self, msg = std::move(msg), on_reply, on_error](caf::actor w, std::function<void()> done) mutable {
        self->request(w, caf::infinite, std::move(msg))
            .then(
                [on_reply, done](Reply& reply) mutable {
                  on_reply(reply);
                  done();
                },
                [on_error, done](caf::error& err) mutable {
                  on_error(err);
                  done();
                });
      }});
  dispatch(self);
}

/// Queues `msg` for a worker; its reply (or error) answers `rp`.
template <class Msg, class Reply>
void enqueue(scheduler_self self, const char* kind, Msg msg, caf::response_promise rp) {
  enqueue_then<Msg, Reply>(
      self, kind, std::move(msg), [rp](Reply& reply) mutable { rp.deliver(std::move(reply)); },
      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

/// An evaluation: as whole-batch parts, one a worker, where there are several workers, more
/// than one batch and a task that combines parts exactly (a global test set of 10,000 images
/// on one worker kept the others idle for a third of a FedAvg round); else one job.
void accept_eval(scheduler_self self, EvalJobMsg msg, caf::response_promise rp) {
  auto& st = self->state;
  const int64_t batch = st.cfg.train.eval_batch_size;
  const int workers = static_cast<int>(st.workers.size());
  if (workers < 2 || !st.cfg.task->evaluates_in_parts() || static_cast<int64_t>(msg.indices.size()) <= batch)
    return enqueue<EvalJobMsg, EvalResult>(self, "eval", std::move(msg), std::move(rp));
  std::vector<std::vector<int64_t>> runs = whole_batch_runs(msg.indices, batch, workers);
  struct Gather {
    std::vector<EvalPart> parts;
    std::size_t left = 0;
    bool answered = false;
    caf::response_promise rp;
  };
  auto gather = std::make_shared<Gather>();
  gather->parts.resize(runs.size());
  gather->left = runs.size();
  gather->rp = std::move(rp);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    EvalPartMsg part{EvalJobMsg{msg.client, msg.round, msg.adapters, std::move(runs[i])}};
    enqueue_then<EvalPartMsg, EvalPart>(
        self, "eval", std::move(part),
        [gather, i](EvalPart& p) {
          gather->parts[i] = std::move(p);
          if (--gather->left == 0 && !gather->answered) {
            gather->answered = true;
            gather->rp.deliver(combine_eval_parts(gather->parts));
          }
        },
        [gather](caf::error& err) {
          if (gather->answered) return;
          gather->answered = true; // the first failed part answers; the others' outcomes are dropped
          gather->rp.deliver(std::move(err));
        });
  }
}

/// Queues one pass over the held jobs of `chunk` (sorted by client), answering each client.
void enqueue_group(scheduler_self self, std::map<int, scheduler_state::HeldTrain> chunk) {
  if (chunk.size() == 1) { // a chunk of one: the ordinary job
    auto& h = chunk.begin()->second;
    return enqueue<TrainJobMsg, TrainDoneMsg>(self, "train", std::move(h.msg), h.rp);
  }
  TrainGroupMsg group;
  std::vector<caf::response_promise> rps;
  for (auto& [client, h] : chunk) {
    group.jobs.push_back(std::move(h.msg));
    rps.push_back(h.rp);
  }
  const int count = static_cast<int>(rps.size());
  self->state.queue.push_back(PendingJob{
      "train", count, clock_type::now(),
      [self, rps, group = std::move(group)](caf::actor w, std::function<void()> done) mutable {
        self->request(w, caf::infinite, std::move(group))
            .then(
                [rps, done](TrainGroupDoneMsg& reply) mutable {
                  for (std::size_t i = 0; i < rps.size(); ++i) rps[i].deliver(TrainDoneMsg{std::move(reply.results.at(i))});
                  done();
                },
                [rps, done](caf::error& err) mutable {
                  for (auto& rp : rps) rp.deliver(err);
                  done();
                });
      }});
  dispatch(self);
}

/// A training job: held for its chunk of the round's plan when grouping applies, else queued.
void accept_train(scheduler_self self, TrainJobMsg msg, caf::response_promise rp) {
  auto& st = self->state;
  const int k = st.cfg.limits.batch_clients;
  const auto plan = st.plans.find(msg.round);
  const auto pos = plan == st.plans.end() ? std::vector<int>::const_iterator{}
                                          : std::find(plan->second.begin(), plan->second.end(), msg.client);
  if (k <= 1 || plan == st.plans.end() || pos == plan->second.end() ||
      !(groupable(msg.job) || stackable(msg.job))) // LoRA adapters share a pass; whole copies and probes stack
    return enqueue<TrainJobMsg, TrainDoneMsg>(self, "train", std::move(msg), std::move(rp));
  const auto index = static_cast<std::size_t>(pos - plan->second.begin());
  const std::size_t chunk = index / static_cast<std::size_t>(k);
  const std::size_t size = std::min(plan->second.size(), (chunk + 1) * static_cast<std::size_t>(k)) - chunk * static_cast<std::size_t>(k);
  const int round = msg.round, client = msg.client;
  auto& members = st.held[round][chunk];
  members.emplace(client, scheduler_state::HeldTrain{std::move(msg), std::move(rp)});
  if (members.size() < size) return;
  auto complete = std::move(members);
  st.held[round].erase(chunk);
  if (st.held[round].empty()) st.held.erase(round);
  enqueue_group(self, std::move(complete));
}

scheduler_actor::behavior_type scheduler(scheduler_self self, SchedulerConfig cfg) {
  self->state.cfg = cfg;
  self->state.admission.emplace(cfg.limits.memory_budget, cfg.task->shared_bytes());
  for (int i = 0; i < cfg.limits.concurrency; ++i) {
    auto w = self->spawn<caf::detached + caf::linked>(worker, cfg);
    self->state.workers.push_back(w);
    self->state.idle.push_back(w);
  }
  return {
      [self](TrainJobMsg& msg) -> caf::result<TrainDoneMsg> {
        auto rp = self->make_response_promise<TrainDoneMsg>();
        accept_train(self, std::move(msg), rp); // answered by a worker, now or once its group is complete
        return rp;
      },
      [self](plan_atom, int round, std::vector<int>& clients) {
        auto& st = self->state;
        st.plans.erase(st.plans.begin(), st.plans.lower_bound(round - 1)); // rounds long over
        st.plans[round] = std::move(clients);
        // A planned client whose job never comes (its actor died) must not hold the others.
        if (st.cfg.limits.batch_clients > 1) self->delayed_send(self, std::chrono::seconds(30), flush_atom::value, round);
      },
      [self](flush_atom, int round) {
        auto& st = self->state;
        auto it = st.held.find(round);
        if (it == st.held.end()) return;
        auto chunks = std::move(it->second);
        st.held.erase(it);
        for (auto& [chunk, members] : chunks) {
          spdlog::warn("scheduler: round {}: {} of a group's clients waited 30 s for the rest; they train without them",
                       round, members.size());
          enqueue_group(self, std::move(members));
        }
      },
      [self](EvalJobMsg& msg) -> caf::result<EvalResult> {
        auto rp = self->make_response_promise<EvalResult>();
        accept_eval(self, std::move(msg), rp);
        return rp;
      },
      [self](NewcomerJob& job) -> caf::result<NewcomerScore> {
        auto rp = self->make_response_promise<NewcomerScore>();
        enqueue<NewcomerJob, NewcomerScore>(self, "holdout", std::move(job), rp);
        return rp;
      },
  };
}

} // namespace

scheduler_actor spawn_scheduler(caf::actor_system& system, SchedulerConfig config) {
  (void)MemoryAdmission(config.limits.memory_budget, config.task->shared_bytes()); // refuse before spawning
  return system.spawn(scheduler, std::move(config));
}

} // namespace fedvlm
