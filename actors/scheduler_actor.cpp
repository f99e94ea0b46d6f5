// actors/scheduler_actor.cpp — job queue, worker pool, and the scheduler's metrics.
#include "actors/scheduler_actor.hpp"

#include "actors/engine_errors.hpp"
#include "actors/messages.hpp"
#include "fl/interrupt.hpp"
#include "fl/local_training.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <functional>

namespace fedvlm {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// Resident memory of this process: where the frozen base and all adapters live on CPU.
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
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
  static inline const char* name = "fedvlm.scheduler";
};

using scheduler_actor_t = caf::stateful_actor<scheduler_state>;

void dispatch(scheduler_actor_t* self) {
  auto& st = self->state;
  while (!st.idle.empty() && !st.queue.empty()) {
    caf::actor w = st.idle.back();
    st.idle.pop_back();
    PendingJob job = std::move(st.queue.front());
    st.queue.pop_front();
    const double waited = seconds_since(job.queued_at);
    const auto started = clock_type::now();
    const std::string kind = job.kind;
    job.start(w, [self, w, waited, started, kind] {
      auto& s = self->state;
      if (s.cfg.observer) {
        s.cfg.observer->scheduler_job(kind, waited, seconds_since(started));
        s.cfg.observer->device_memory(resident_bytes());
      }
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
  return system.spawn(scheduler, std::move(config));
}

} // namespace fedvlm
