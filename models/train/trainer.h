// models/train/trainer.h — the training step shared by the tools (train, finetune,
// gradflow; models/train/train_loop.h drives it): one optimizer step over `accum`
// micro-batches of a Dataset, validation loss, the timing of each step, non-finite losses
// and gradients caught before they reach the parameters, and the training state saved and
// restored. What is trained is whatever ParamStore is given: the model's base store for
// pretraining, an adapter store for fine-tuning (the base stays frozen).
//
// Data parallel (TrainOptions::comm with N ranks): `batch` stays the global micro-batch
// (N must divide it); rank r reads samples [pos + r·B/N, pos + (r+1)·B/N) of each global
// micro-batch, so the samples of a step do not depend on N. Each rank backpropagates the
// mean loss of its shard scaled by 1/(accum·N); then ONE all-reduce sums the trainable
// store's flat gradient buffer together with the ranks' loss sums, so every rank holds the
// gradient of the mean loss over the global batch (what one process would compute, up to
// float summation order) and applies the same optimizer step (clipping included, which
// therefore sees the global gradient).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "models/io/train_state.h"
#include "models/llama/llama.h"
#include "models/text/data.h"
#include "nn/adapters.h"
#include "nn/dist/dist.h"
#include "nn/optim.h"
#include "nn/params.h"

namespace cg::models {

struct StepStats {
  int64_t step = 0;  // optimizer steps taken, this one included
  double loss = 0;   // mean training loss over the step's micro-batches (and ranks)
  double lr = 0;
  double grad_norm = 0;             // before clipping
  double ms = 0;                    // wall time of the step
  double comm_ms = 0;               // of which in the all-reduce (waiting for the slowest rank included); 0 alone
  double tok_s = 0;                 // tokens of the global batch per second
  bool stop = false;                // some rank asked to stop (step(want_stop)): all ranks see the same
  const char* nonfinite = nullptr;  // "loss" or "gradient norm" when one was NaN/inf, else null
  bool skipped = false;             // with skip_nonfinite: that update was skipped
};

// Watches the training steps from inside (models/study/flow_recorder.h records gradient
// flow with it): before_forward comes before the step's first forward, after_backward sees
// the step's gradients (summed over micro-batches and ranks) before the optimizer step,
// after_update the updated parameters. `step` is the
// 0-based index of the optimizer step (StepStats::step − 1). Null in TrainOptions: nothing
// is called and nothing is measured.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void before_forward(int64_t /*step*/) {}  // before the step's first micro-batch
  virtual void after_backward(int64_t step) = 0;
  virtual void after_update(int64_t step, const StepStats& stats) = 0;
};

struct TrainOptions {
  int64_t batch = 8;  // sequences per micro-batch, over all ranks
  int64_t accum = 1;  // micro-batches per optimizer step
  uint64_t data_seed = 0;
  nn::Communicator* comm = nullptr;  // the data-parallel group; null: this process alone
  StepObserver* observer = nullptr;  // e.g. finetune --flow; null: off
  // The adapters being trained: their dropout (AdapterConfig::dropout) is on during each
  // micro-batch's forward, with masks keyed by (data_seed, the rank's first sample of the
  // micro-batch), so a resumed run draws the same ones; null or dropout 0: none.
  nn::AdapterSet* adapters = nullptr;
  // A non-finite loss or gradient norm: false → the update is not taken and the step is
  // reported (StepStats::nonfinite) for the caller to stop; true → it is skipped and
  // counted as taken (Optimizer::skip), StepStats::skipped.
  bool skip_nonfinite = false;
};

class Trainer {
 public:
  Trainer(LlamaModel& model, nn::ParamStore& trainable, const nn::OptimConfig& opt, const Dataset& data,
          const TrainOptions& options);
  // One optimizer step. want_stop (e.g. a signal arrived) travels in the step's one
  // all-reduce, so every rank learns in the same step that one of them wants to stop.
  StepStats step(bool want_stop = false);
  // Mean loss over up to max_batches validation batches (no tape); needs has_val().
  bool has_val() const { return data_.val_windows() > 0; }
  double val_loss(int64_t max_batches) const;

  // The training state (the trained store, the optimizer's moments and step count, the data
  // position) to a checkpoint with the caller's strings, and back bit-exactly
  // (models/io/train_state.h); load_state returns what was saved (its meta included).
  void save_state(const std::string& path, const std::map<std::string, std::string>& meta);
  TrainState load_state(const std::string& path);

  int64_t steps_taken() const { return opt_.step_count(); }  // optimizer steps, skipped ones included
  int64_t data_position() const { return position_; }        // training samples consumed
  void set_data_position(int64_t p) { position_ = p; }
  int64_t samples_per_step() const { return options_.batch * options_.accum; }  // data positions per step
  int64_t tokens_per_step() const { return options_.batch * options_.accum * data_.seq_len(); }  // all ranks
  bool lead() const { return comm_->lead(); }  // the rank that logs and writes files
  int ranks() const { return comm_->size(); }  // processes of the data-parallel group

 private:
  LlamaModel& model_;
  nn::ParamStore& store_;
  nn::Optimizer opt_;
  const Dataset& data_;
  TrainOptions options_;
  nn::SingleProcess alone_;
  nn::Communicator* comm_;
  int64_t position_ = 0;
};

}  // namespace cg::models
