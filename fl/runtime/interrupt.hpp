// fl/runtime/interrupt.hpp — Ctrl-C / SIGTERM as a flag the engine polls, so a run stops between steps.
//
// The first SIGINT or SIGTERM only sets the flag: the run driver abandons the round in flight,
// training loops stop at their next batch, and the results of the finished rounds are written
// whole. A second signal exits at once (status 128 + signal); every results file is written by
// rename, so even then none is left half-written.
#pragma once

namespace fedvlm {

/// Installs the handlers (idempotent). Called by the experiment driver, not by library users.
void install_interrupt_handlers();

/// The signal that asked the run to stop (SIGINT, SIGTERM), or 0.
[[nodiscard]] int interrupt_signal();
[[nodiscard]] inline bool interrupt_requested() { return interrupt_signal() != 0; }

/// While a phase holds nothing to save (reading the experiment file, a dry run that writes
/// nothing), a stop signal ends the process at once with status 128 + signal instead of only
/// setting the flag: such phases do not poll it. Turning it on with a signal already received
/// exits there and then. Off by default; the experiment driver's phases poll the flag.
void exit_at_once_on_interrupt(bool on);

/// Sets the flag as a signal would (tests, and a programmatic stop).
void request_interrupt(int signal_number);
/// Clears the flag (tests; a new command).
void clear_interrupt();

/// Thrown by training and evaluation loops that see the flag.
struct Interrupted {
  int signal_number = 0;
};

/// Throws Interrupted when a stop was asked for.
void throw_if_interrupted();

} // namespace fedvlm
