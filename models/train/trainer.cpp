// models/train/trainer.cpp — one training step, validation loss, the training state.
#include "models/train/trainer.h"

#include <chrono>
#include <cmath>
#include <string>

#include "engine/backend.h"
#include "engine/tape.h"
#include "ops/ops.h"

namespace cg::models {

Trainer::Trainer(LlamaModel& model, nn::ParamStore& trainable, const nn::OptimConfig& opt, const Dataset& data,
                 const TrainOptions& options)
    : model_(model),
      store_(trainable),
      opt_(trainable, opt),
      data_(data),
      options_(options),
      comm_(options.comm ? options.comm : &alone_) {
  if (options.batch < 1 || options.accum < 1) throw FormatError("trainer: batch and accumulation must be ≥ 1");
  const int64_t n = comm_->size();
  if (options.batch % n != 0)
    throw FormatError("data parallel: the global batch " + std::to_string(options.batch) + " is not divisible by " +
                      std::to_string(n) + " processes (give --batch a multiple of " + std::to_string(n) + ")");
}

StepStats Trainer::step(bool want_stop) {
  const auto t0 = std::chrono::steady_clock::now();
  store_.zero_grad();
  const int64_t ranks = comm_->size(), shard = options_.batch / ranks;
  double loss_sum = 0;
  if (options_.observer) options_.observer->before_forward(opt_.step_count());
  for (int64_t micro = 0; micro < options_.accum; ++micro) {
    // This rank's slice of the global micro-batch [position_, position_ + batch).
    const int64_t first = position_ + comm_->rank() * shard;
    Batch b = data_.train_batch(options_.data_seed, first, shard, model_.device());
    position_ += options_.batch;
    if (options_.adapters)
      options_.adapters->dropout_on(dropout_hash(options_.data_seed, static_cast<uint64_t>(first)));
    Tensor loss = model_.loss(b.ids, b.targets, b.segments);  // mean over the shard
    if (options_.adapters) options_.adapters->dropout_off();  // the masks ride on the tape into backward
    loss_sum += loss.item();
    // Each (micro-batch, rank) contributes 1/(accum·ranks) of the mean gradient.
    const double scale = 1.0 / static_cast<double>(options_.accum * ranks);
    backward(scale == 1.0 ? loss : ops::mul_scalar(loss, scale));
  }
  double comm_ms = 0;
  StepStats s;
  s.stop = want_stop;
  if (ranks > 1) {
    backend_for(model_.device()).synchronize();
    const auto c0 = std::chrono::steady_clock::now();
    double extra[2] = {loss_sum, want_stop ? 1.0 : 0.0};
    comm_->allreduce_sum(store_.flat_grad(), extra);  // the one collective of the step
    loss_sum = extra[0] / static_cast<double>(ranks);
    s.stop = extra[1] > 0;
    comm_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
  }
  const int64_t index = opt_.step_count();  // 0-based index of this optimizer step
  if (options_.observer) options_.observer->after_backward(index);
  s.loss = loss_sum / static_cast<double>(options_.accum);
  nn::Optimizer::StepInfo info;
  if (std::isfinite(s.loss)) {
    info = opt_.step();  // clips the reduced (global) gradient; refuses a non-finite one
    if (!info.finite) s.nonfinite = "gradient norm";
  } else {
    info.lr = opt_.lr_at(opt_.step_count());
    info.grad_norm = std::nan("");
    s.nonfinite = "loss";
  }
  if (s.nonfinite && options_.skip_nonfinite) {
    opt_.skip();
    s.skipped = true;
  }
  backend_for(model_.device()).synchronize();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  s.step = opt_.step_count() + (s.nonfinite && !s.skipped ? 1 : 0);
  s.lr = info.lr;
  s.grad_norm = info.grad_norm;
  s.ms = ms;
  s.comm_ms = comm_ms;
  s.tok_s = static_cast<double>(tokens_per_step()) / (ms / 1000.0);
  if (options_.observer) options_.observer->after_update(index, s);  // outside the step's timing
  return s;
}

void Trainer::save_state(const std::string& path, const std::map<std::string, std::string>& meta) {
  TrainState st;
  st.data_position = position_;
  st.meta = meta;
  save_train_state(path, store_, opt_, st);
}

TrainState Trainer::load_state(const std::string& path) {
  TrainState st = load_train_state(path, store_, opt_);
  position_ = st.data_position;
  return st;
}

double Trainer::val_loss(int64_t max_batches) const {
  NoGrad ng;
  const int64_t windows = data_.val_windows();
  if (windows == 0) return 0.0;
  double sum = 0;
  int64_t n = 0;
  for (int64_t w = 0; w < windows && n < max_batches; w += options_.batch, ++n) {
    Batch b = data_.val_batch(w, options_.batch, model_.device());
    sum += model_.loss(b.ids, b.targets, b.segments).item();
  }
  return sum / static_cast<double>(n);
}

}  // namespace cg::models
