// fl/runtime/memory_admission.cpp — the admission rule: shared + Σ cost(running) + cost(new) ≤ budget.
#include "fl/runtime/memory_admission.hpp"

#include "support/byte_size.hpp"

#include <algorithm>
#include <stdexcept>

namespace fedvlm {

MemoryAdmission::MemoryAdmission(int64_t budget_bytes, int64_t shared_bytes)
    : budget_(budget_bytes), shared_(shared_bytes) {
  if (budget_ < 0) throw std::invalid_argument("memory budget must be >= 0 bytes, got " + std::to_string(budget_));
  if (budget_ > 0 && shared_ > budget_)
    throw std::invalid_argument("scheduler.memory_budget = " + byte_size_text(budget_) +
                                " is smaller than what every job shares (the frozen base and caches, " +
                                byte_size_text(shared_) + "); raise the budget or use a smaller model");
}

int64_t MemoryAdmission::cost(const std::string& kind) const {
  const auto it = cost_.find(kind);
  return it == cost_.end() ? -1 : it->second;
}

int64_t MemoryAdmission::projected(const std::vector<std::string>& running) const {
  int64_t total = shared_;
  for (const auto& kind : running) total += std::max<int64_t>(0, cost(kind));
  return total;
}

bool MemoryAdmission::admit(const std::string& kind, const std::vector<std::string>& running) const {
  if (running.empty() || budget_ == 0) return true;
  if (cost(kind) < 0) return false;
  for (const auto& k : running)
    if (cost(k) < 0) return false; // that one is being measured: it runs alone
  return projected(running) + cost(kind) <= budget_;
}

void MemoryAdmission::observe_job(const std::string& kind, int64_t bytes) {
  cost_[kind] = std::max(cost(kind), std::max<int64_t>(bytes, 0));
}

} // namespace fedvlm
