// models/train/train_loop.h — TrainLoop, which drives a Trainer (train, finetune, gradflow):
// progress lines, JSONL metrics, validation and task accuracy at a cadence, keep-best and
// patience, samples, atomic checkpoints and resume. Under mpirun every rank runs the loop;
// rank 0 alone prints, evaluates, samples and writes metrics and checkpoints. The loop stops
// cleanly on SIGINT/SIGTERM (saves, the tool writes its outputs, exit 128 + signal;
// models/train/interrupt.h) and on a non-finite loss or gradient (one line, exit 3, the last
// checkpoint kept); a checkpoint records what run it belongs to (TrainLoop::describe) and
// resume refuses another run's. The tools fill LoopOptions from their flags
// (tools/common/train_flags.h); messages name the flags (--resume, --checkpoint, ...).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "models/train/trainer.h"

namespace cg::models {

// The loop's cadence and files (the run flags of the training tools).
struct LoopOptions {
  int64_t steps = 200;
  int64_t stop_after = 0;  // 0: run to steps
  int64_t eval_every = 50, eval_batches = 8, sample_every = 0, log_every = 10;
  int64_t checkpoint_every = 100;
  std::string metrics, checkpoint, resume;  // empty: none
};

class TrainLoop {
 public:
  TrainLoop(Trainer& trainer, const LoopOptions& options, std::string tool);
  std::function<std::string(int64_t step)> sample;  // optional: a line of generated text (rank 0 only)
  std::function<void(nlohmann::json& row)> extra;   // optional: add fields to each metrics row (rank 0 only)
  // Optional: task accuracy, computed (rank 0) at each evaluation beside the validation loss.
  std::function<double()> accuracy;
  // keep_best "val_loss" or "accuracy": at each evaluation after a training step, a better
  // value (lower loss, higher accuracy; strictly) becomes the best and save_best writes the
  // parameters; patience > 0 stops the run after that many evaluations in a row without one
  // (the checkpoint is saved). The record travels in the checkpoint, so --resume keeps it.
  std::string keep_best;
  std::function<void()> save_best;
  int64_t patience = 0;
  // What run a checkpoint belongs to (model, base hash, adapter, optimizer, schedule,
  // data): saved with it, and --resume refuses a checkpoint whose entries differ.
  std::map<std::string, std::string> describe;
  // Before the first step of a fresh run (not a resume), rank 0 logs the validation loss of
  // the untrained parameters as step 0 (the base model's, for a fine-tune).
  void run();

  // After run(): what the summary table needs.
  double last_loss = 0, last_val_loss = -1, mean_ms = 0, last_accuracy = -1;
  int64_t best_step = -1, bad_evals = 0;  // best_step −1: no evaluation yet
  double best_value = 0;
  bool stopped_early = false;  // --patience ran out
  int64_t steps_done = 0, skipped = 0;
  int signal = 0;     // SIGINT/SIGTERM stopped the run after steps_done (checkpoint saved)
  int exit_code = 0;  // 0, or 3 after a non-finite loss/gradient (its line already printed)
  // The one line a tool prints when a signal stopped the run; `outputs` lists what it wrote.
  std::string stop_line(const std::string& outputs) const;

 private:
  void save();  // the checkpoint of the current step (--checkpoint)
  void check_resume(const TrainState& st, int64_t step) const;
  Trainer& trainer_;
  const LoopOptions run_;
  std::string tool_;
};

}  // namespace cg::models
