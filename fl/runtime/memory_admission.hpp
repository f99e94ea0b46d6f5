// fl/runtime/memory_admission.hpp — which queued jobs may start without the device running out of memory.
//
// The projected memory of the running jobs is the shared base plus the cost of each job, by
// kind ("train", "eval": an evaluation needs no gradients and costs less). A kind's cost is
// measured, not guessed: until one job of that kind has been measured, it only starts when no
// other job runs (so the measurement is that job's alone); afterwards jobs start while the
// projection stays under the budget. One job always may run: the run progresses even when a
// single job is projected over the budget (the scheduler says so).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fedvlm {

class MemoryAdmission {
public:
  /// `budget_bytes` 0: no limit (every job is admitted). `shared_bytes`: the frozen base and
  /// caches every job shares. Throws std::invalid_argument when the shared part alone is over
  /// the budget, saying both figures.
  MemoryAdmission(int64_t budget_bytes, int64_t shared_bytes);

  /// May a job of `kind` start while jobs of `running` kinds run?
  [[nodiscard]] bool admit(const std::string& kind, const std::vector<std::string>& running) const;
  /// A job of `kind` that ran alone used `bytes` more than before it started; a kind's cost is
  /// the largest such figure so far.
  void observe_job(const std::string& kind, int64_t bytes);

  [[nodiscard]] bool limited() const { return budget_ > 0; }
  [[nodiscard]] int64_t budget() const { return budget_; }
  [[nodiscard]] int64_t shared() const { return shared_; }
  /// The measured cost of one job of `kind`; -1 before its first measurement.
  [[nodiscard]] int64_t cost(const std::string& kind) const;
  /// shared + the cost of every job in `running` (unmeasured ones count 0).
  [[nodiscard]] int64_t projected(const std::vector<std::string>& running) const;

private:
  int64_t budget_;
  int64_t shared_;
  std::map<std::string, int64_t> cost_;
};

} // namespace fedvlm
