// nn/optim.h — optimizers over a ParamStore's flat buffers (AdamW with decoupled weight
// decay, SGD with optional momentum), global-norm gradient clipping and the learning-rate
// schedule (linear warmup, then cosine, linear or no decay). Training loops and checkpoint files live
// elsewhere (tools/, models/io/train_state.h); this file only updates parameters.
//
// Schedule, lr_at(step) for the 0-based index `step` of the update about to be taken:
//   step < warmup:               lr · (step + 1) / warmup        (the first update uses lr/warmup,
//                                                                 update warmup−1 uses the full lr)
//   schedule "constant", or total_steps == 0:  lr
//   schedule "cosine":           min_lr + (lr − min_lr) · ½(1 + cos(π·p))
//   schedule "linear":           min_lr + (lr − min_lr) · (1 − p)
//                                p = clamp((step − warmup) / (total_steps − warmup), 0, 1),
//                                min_lr = min_lr_frac · lr
// Every feature can be turned off, giving plain SGD/AdamW: schedule constant, warmup 0,
// clip ≤ 0, weight_decay 0 (and momentum 0 for plain SGD).
//
// Gradient accumulation is the caller's loop: for k micro-batches, zero_grad() once, then
// for each micro-batch backward(loss · 1/k) (scale the loss, or ParamStore::scale_grad(1/k)
// at the end), then one Optimizer::step(). Gradients add up in the flat buffer, so the
// step sees the mean gradient over the k micro-batches.
#pragma once
#include <cstdint>
#include <string>

#include "nn/params.h"

namespace cg::nn {

struct OptimConfig {
  std::string name = "adamw";  // "adamw" | "sgd"
  double lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0, momentum = 0.0, clip = 1.0;
  std::string schedule = "cosine";  // "cosine" | "linear" | "constant"
  int64_t warmup = 0;
  int64_t total_steps = 0;
  double min_lr_frac = 0.0;
};

// Scales the store's gradients so their global L2 norm is at most max_norm (PyTorch's
// clip_grad_norm_: factor max_norm / (norm + 1e-6) when that is < 1). Returns the norm
// before clipping. max_norm ≤ 0: no clipping (the norm is still returned).
double clip_grad_norm(ParamStore& store, double max_norm);

class Optimizer {
 public:
  // The store must be finalized and trainable. Throws FormatError on an unknown name or
  // bad hyper-parameters.
  Optimizer(ParamStore& store, OptimConfig cfg);

  struct StepInfo {
    double lr = 0;         // the learning rate used
    double grad_norm = 0;  // global gradient norm before clipping
    bool finite = true;    // false: the gradient norm was NaN/inf and nothing was updated
  };
  // One update from the current gradients: clip (cfg.clip > 0), lr = lr_at(step()),
  // one Backend::adamw / Backend::sgd call over the flat buffer, step() += 1.
  // Does not zero the gradients.
  // A non-finite gradient norm (before clipping) leaves the parameters untouched: the
  // update is not taken (step() does not advance) and StepInfo::finite is false.
  StepInfo step();
  // Counts an update as taken without changing anything (skipping a bad batch, so the
  // schedule and the step numbering go on as if it had been taken).
  void skip() { ++step_; }
  double lr_at(int64_t step) const;

  // ---- state, for checkpoints ------------------------------------------------------------
  int64_t step_count() const { return step_; }  // updates taken so far
  void set_step_count(int64_t s) { step_ = s; }
  // AdamW: first and second moments, flat like the parameters. SGD with momentum: m() is
  // the momentum buffer and v() is undefined. Plain SGD: both undefined.
  Tensor& m() { return m_; }
  Tensor& v() { return v_; }
  const OptimConfig& config() const { return cfg_; }
  ParamStore& store() { return store_; }

 private:
  ParamStore& store_;
  OptimConfig cfg_;
  bool adamw_ = true;
  int64_t step_ = 0;
  Tensor m_, v_;
};

}  // namespace cg::nn
