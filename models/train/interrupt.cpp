// models/train/interrupt.cpp — the SIGINT/SIGTERM handlers (async-signal-safe only).
#include "models/train/interrupt.h"

#include <unistd.h>

#include <csignal>

#include "models/io/file_io.h"

namespace cg::models {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int sig) {
  if (g_signal == 0) {
    g_signal = sig;
    return;
  }
  // Another kind of signal after the first (mpirun forwards a terminal's SIGINT to its ranks
  // as SIGTERM, so a rank sees both for one Ctrl-C): keep stopping cleanly.
  if (sig != g_signal) return;
  remove_temp_in_flight();
  CheckpointLock::remove_on_signal();
  const char msg[] = "\ninterrupted again: exiting now (the last complete checkpoint is kept)\n";
  [[maybe_unused]] const ssize_t w = ::write(2, msg, sizeof msg - 1);
  ::_exit(128 + sig);
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int interrupted() { return g_signal; }

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

}  // namespace cg::models
