// models/train/interrupt.h — Ctrl-C and SIGTERM for the training tools: the first signal
// only sets a flag (the loop finishes the step in flight, saves, writes its outputs and
// exits 128 + signal); a second one of the same kind (Ctrl-C twice) removes the temp file of a write in progress and the
// checkpoint lock file and exits at once with 128 + signal. (One of another kind is ignored:
// under mpirun a Ctrl-C reaches a rank as SIGINT from the terminal and SIGTERM from mpirun.) Every file is written by
// temp + rename, so the last complete checkpoint is never harmed.
#pragma once

namespace cg::models {

// Installs the handlers for SIGINT and SIGTERM (idempotent).
void install_interrupt_handlers();
// The first signal received (SIGINT, SIGTERM), or 0.
int interrupted();
// "SIGINT" / "SIGTERM".
const char* signal_name(int sig);

}  // namespace cg::models
