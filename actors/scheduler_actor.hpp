// actors/scheduler_actor.hpp — the device scheduler: owns the one frozen base, runs jobs under a limit.
#pragma once

#include "actors/messages.hpp"
#include "fl/config/experiment_config.hpp"
#include "fl/tasks/federated_task.hpp"
#include "fl/results/run_records.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace fedvlm {

struct SchedulerConfig {
  std::shared_ptr<const FederatedTask> task; ///< the one frozen base model and the sample pool
  TrainSettings train;
  LoraSettings lora;
  /// Workers, memory budget and clients per pass, as the experiment's [scheduler] says. A budget
  /// (0 = no limit) bounds the task's shared part plus the running jobs
  /// (fl/runtime/memory_admission.hpp: jobs of a kind not yet measured run alone); groups of
  /// batch_clients are consecutive chunks of the round's plan (plan_atom), complete before they start.
  SchedulerSettings limits;
  RunObserver* observer = nullptr; ///< outlives the actor system
};

/// Spawns the scheduler and its `concurrency` detached workers (one thread each, so a long
/// training step never blocks CAF's cooperative scheduler). Accepts TrainJobMsg → TrainDoneMsg,
/// EvalJobMsg → EvalResult and NewcomerJob → NewcomerScore (fl/federation/holdout.hpp); queues
/// jobs beyond the limit in arrival order. With a memory
/// budget, the job at the head of the queue starts only when MemoryAdmission admits it, and
/// each job that runs alone is measured (its peak resident memory above the start).
/// Throws std::invalid_argument when the task's shared part alone is over the budget.
scheduler_actor spawn_scheduler(caf::actor_system& system, SchedulerConfig config);

} // namespace fedvlm
