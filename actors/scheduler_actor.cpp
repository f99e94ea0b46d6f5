// actors/scheduler_actor.cpp — job queue, worker pool, and the scheduler's metrics.
#include "actors/scheduler_actor.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "fl/byte_size.hpp"
#include "fl/interrupt.hpp"
#include "fl/local_training.hpp"
#include "fl/memory_admission.hpp"
#include "fl/resident_memory.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>

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
        const int client = msg.client, round = msg.round;
        return guarded(("client " + std::to_string(client) + ", round " + std::to_string(round) + ": training").c_str(),
                       [&] { return TrainDoneMsg{cfg.task->train(std::move(msg.job), cfg.train, cfg.lora)}; });
      },
      [cfg](EvalJobMsg& msg) {
        const std::string what = "client " + std::to_string(msg.client) + ", round " + std::to_string(msg.round) + ": evaluation";
        return guarded(what.c_str(), [&] {
          return cfg.task->evaluate(msg.adapters, msg.indices, cfg.lora, cfg.train.eval_batch_size);
        });
      },
  };
}

struct PendingJob {
  std::string kind;
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
  std::unique_ptr<PeakResidentSampler> sampler;
  uint64_t sampled_job = 0, next_job = 0;
  bool warned_over_budget = false;
  static inline const char* name = "fedvlm.scheduler";

  std::vector<std::string> running_kinds() const { return {running.begin(), running.end()}; }
};

using scheduler_actor_t = caf::stateful_actor<scheduler_state>;

void report_admission(scheduler_state& st) {
  if (!st.cfg.observer || !st.admission->limited()) return;
  st.cfg.observer->scheduler_memory(static_cast<int>(st.running.size()), st.admission->budget(),
                                    st.admission->projected(st.running_kinds()));
}

/// Starts queued jobs, in arrival order, while a worker is idle and the budget admits the next.
void dispatch(scheduler_actor_t* self) {
  auto& st = self->state;
  while (!st.idle.empty() && !st.queue.empty() && st.admission->admit(st.queue.front().kind, st.running_kinds())) {
    caf::actor w = st.idle.back();
    st.idle.pop_back();
    PendingJob job = std::move(st.queue.front());
    st.queue.pop_front();
    const double waited = seconds_since(job.queued_at);
    const auto started = clock_type::now();
    const std::string kind = job.kind;
    const uint64_t id = ++st.next_job;
    if (st.admission->limited()) {
      if (st.running.empty()) {
        st.sampler = std::make_unique<PeakResidentSampler>();
        st.sampled_job = id;
      } else {
        st.sampler.reset(); // two jobs now share the process: neither measurement is one job's
      }
      const int64_t projected = st.admission->projected(st.running_kinds()) + std::max<int64_t>(0, st.admission->cost(kind));
      if (projected > st.admission->budget() && !st.warned_over_budget) {
        st.warned_over_budget = true;
        spdlog::warn("scheduler.memory_budget = {}: one {} job alone is projected at {} (shared part {}); it runs "
                     "anyway, one job at a time",
                     byte_size_text(st.admission->budget()), kind, byte_size_text(projected),
                     byte_size_text(st.admission->shared()));
      }
    }
    st.running.insert(kind);
    report_admission(st);
    job.start(w, [self, w, waited, started, kind, id] {
      auto& s = self->state;
      if (s.sampler && s.sampled_job == id) {
        s.admission->observe_job(kind, s.sampler->stop());
        s.sampler.reset();
      }
      s.running.erase(s.running.find(kind));
      if (s.cfg.observer) {
        s.cfg.observer->scheduler_job(kind, waited, seconds_since(started));
        s.cfg.observer->device_memory(resident_bytes());
      }
      report_admission(s);
      s.idle.push_back(w);
      dispatch(self);
    });
  }
  if (st.cfg.observer) st.cfg.observer->scheduler_queue(static_cast<int>(st.queue.size()));
}

template <class Msg, class Reply>
void enqueue(scheduler_actor_t* self, const char* kind, Msg msg) {
  auto rp = self->make_response_promise<Reply>();
  self->state.queue.push_back(PendingJob{
      kind, clock_type::now(),
      [self, rp, msg = std::move(msg)](caf::actor w, std::function<void()> done) mutable {
        self->request(w, caf::infinite, std::move(msg))
            .then(
                [rp, done](Reply& reply) mutable {
                  rp.deliver(std::move(reply));
                  done();
                },
                [rp, done](caf::error& err) mutable {
                  rp.deliver(std::move(err));
                  done();
                });
      }});
  dispatch(self);
}

caf::behavior scheduler(scheduler_actor_t* self, SchedulerConfig cfg) {
  self->state.cfg = cfg;
  self->state.admission.emplace(cfg.memory_budget, cfg.task->shared_bytes());
  for (int i = 0; i < cfg.concurrency; ++i) {
    auto w = self->spawn<caf::detached + caf::linked>(worker, cfg);
    self->state.workers.push_back(w);
    self->state.idle.push_back(w);
  }
  return {
      [self](TrainJobMsg& msg) { enqueue<TrainJobMsg, TrainDoneMsg>(self, "train", std::move(msg)); },
      [self](EvalJobMsg& msg) { enqueue<EvalJobMsg, EvalResult>(self, "eval", std::move(msg)); },
  };
}

} // namespace

caf::actor spawn_scheduler(caf::actor_system& system, SchedulerConfig config) {
  (void)MemoryAdmission(config.memory_budget, config.task->shared_bytes()); // refuse before spawning
  return system.spawn(scheduler, std::move(config));
}

} // namespace fedvlm
