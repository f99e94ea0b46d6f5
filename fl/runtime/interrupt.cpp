// fl/runtime/interrupt.cpp — the signal handlers behind interrupt.hpp (async-signal-safe: atomics, _exit).
#include "fl/runtime/interrupt.hpp"

#include <atomic>
#include <csignal>

#include <unistd.h>

namespace fedvlm {

namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_exit_at_once{false};
static_assert(std::atomic<int>::is_always_lock_free, "the handler may only touch lock-free atomics");

extern "C" void on_stop_signal(int sig) {
  if (g_exit_at_once.load()) {
    static const char msg[] = "\nfedvlm-sim: interrupted\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(128 + sig);
  }
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // Second signal: the user wants out now. Files on disk are complete (atomic renames).
    static const char msg[] = "\nfedvlm-sim: second interrupt, exiting at once\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(128 + sig);
  }
  static const char msg[] =
      "\nfedvlm-sim: interrupted: abandoning the round in flight and writing the finished rounds "
      "(interrupt again to exit at once)\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

} // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int interrupt_signal() { return g_signal.load(std::memory_order_relaxed); }

void request_interrupt(int signal_number) { g_signal.store(signal_number); }

void clear_interrupt() { g_signal.store(0); }

void exit_at_once_on_interrupt(bool on) {
  g_exit_at_once.store(on);
  if (const int sig = g_signal.load(); on && sig != 0) ::_exit(128 + sig);
}

void throw_if_interrupted() {
  if (const int sig = interrupt_signal()) throw Interrupted{sig};
}

} // namespace fedvlm
