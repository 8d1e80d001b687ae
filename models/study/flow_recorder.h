// models/study/flow_recorder.h — gradient flow of a real training run: a models::StepObserver
// that the Trainer calls around each optimizer step (finetune --flow, gradflow --model), and
// that writes nn::GradFlowLogger's per-module rows (models/study/gradflow.h) for the adapters
// being trained. Off means no recorder at all: the Trainer's observer pointer stays null.
#pragma once
#include <cstdint>
#include <string>

#include "models/study/gradflow.h"
#include "models/train/trainer.h"

namespace cg::models {

struct FlowOptions {
  std::string path;     // JSONL file (written atomically, see GradFlowLogger)
  int every = 10;       // a row per module every N steps (0-based step % N == 0) and the last
  std::string modules;  // regex over module names; empty: every adapted module
  int top_k = 8;        // singular values of ΔW per row
};

class FlowRecorder : public StepObserver {
 public:
  // `last_step`: the 0-based index of the run's last step (always logged).
  FlowRecorder(const nn::AdapterSet& set, const FlowOptions& options, int64_t last_step);
  void before_forward(int64_t step) override { logger_.before_forward(step); }
  void after_backward(int64_t step) override { logger_.before_step(step); }
  // Row fields beyond the adapter's: the step's training loss, lr and global gradient norm.
  void after_update(int64_t step, const StepStats& s) override;
  void close() { logger_.close(); }
  int64_t rows_written() const { return rows_; }
  size_t modules() const { return logger_.monitors().size(); }

 private:
  nn::GradFlowLogger logger_;
  int64_t rows_ = 0;
};

}  // namespace cg::models
