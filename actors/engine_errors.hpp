// actors/engine_errors.hpp — the engine's own CAF error codes: simulated faults vs real failures.
//
// The aggregator must tell a client that dropped out (a simulated fault: the round goes on by
// quorum) from a job that failed for real (non-finite loss, an exception in the model: the run
// stops, it must never read "completed").
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <string>

namespace fedvlm {

enum class EngineErrc : uint8_t {
  simulated_fault = 1, ///< failing client, drop-out: counts as a failed client
  non_finite_loss = 2, ///< training produced inf / nan: stops the run
  job_failed = 3,      ///< an exception in training or evaluation: stops the run
  interrupted = 4,     ///< SIGINT / SIGTERM seen by a job
  node_lost = 5,       ///< a node keeping its clients' states was lost: the served run rolls back
};

constexpr caf::atom_value kEngineErrorCategory = caf::atom("fedvlm");

[[nodiscard]] caf::error make_engine_error(EngineErrc code, const std::string& message);
/// The code of an engine error, or 0 for any other error (CAF's own, e.g. a crashed actor).
[[nodiscard]] uint8_t engine_error_code(const caf::error& err);
/// The message of an engine error, or CAF's rendering of any other.
[[nodiscard]] std::string describe_error(const caf::error& err);
/// A job that failed for real (non-finite loss, an exception) or saw a stop signal: the round
/// must not be reported as if those clients had merely failed.
[[nodiscard]] bool stops_the_run(const caf::error& err);
/// CAF's request timeout (a client that did not answer in time).
[[nodiscard]] bool is_request_timeout(const caf::error& err);

} // namespace fedvlm
