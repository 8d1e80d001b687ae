// nn/optim.cpp — AdamW / SGD steps on flat buffers, gradient clipping, the lr schedule.
#include "nn/optim.h"

#include <algorithm>
#include <cmath>

#include "engine/backend.h"

namespace cg::nn {

double clip_grad_norm(ParamStore& store, double max_norm) {
  const double norm = store.grad_norm();
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) store.scale_grad(coef);
  }
  return norm;
}

Optimizer::Optimizer(ParamStore& store, OptimConfig cfg) : store_(store), cfg_(std::move(cfg)) {
  if (cfg_.name == "adamw") {
    adamw_ = true;
  } else if (cfg_.name == "sgd") {
    adamw_ = false;
  } else {
    throw FormatError("optimizer: unknown name '" + cfg_.name + "' (expected adamw or sgd)");
  }
  if (!(cfg_.lr >= 0) || !std::isfinite(cfg_.lr)) throw FormatError("optimizer: lr must be ≥ 0");
  if (cfg_.schedule != "cosine" && cfg_.schedule != "linear" && cfg_.schedule != "constant")
    throw FormatError("optimizer: unknown schedule '" + cfg_.schedule + "' (expected cosine, linear or constant)");
  for (const double x : {cfg_.weight_decay, cfg_.clip, cfg_.momentum, cfg_.min_lr_frac, cfg_.eps})
    if (!std::isfinite(x)) throw FormatError("optimizer: hyper-parameters must be finite");
  if (cfg_.warmup < 0 || cfg_.total_steps < 0) throw FormatError("optimizer: warmup and total_steps must be ≥ 0");
  if (adamw_ && (cfg_.beta1 < 0 || cfg_.beta1 >= 1 || cfg_.beta2 < 0 || cfg_.beta2 >= 1))
    throw FormatError("optimizer: betas must be in [0, 1)");
  if (!store_.finalized()) throw Error("optimizer: store '" + store_.group() + "' is not finalized");
  if (!store_.trainable()) throw Error("optimizer: store '" + store_.group() + "' is frozen");
  const Tensor& p = store_.flat();
  if (adamw_) {
    m_ = Tensor::zeros({p.numel()}, p.dtype(), p.device());
    v_ = Tensor::zeros({p.numel()}, p.dtype(), p.device());
  } else if (cfg_.momentum != 0) {
    m_ = Tensor::zeros({p.numel()}, p.dtype(), p.device());
  }
}

double Optimizer::lr_at(int64_t step) const {
  if (step < cfg_.warmup) return cfg_.lr * static_cast<double>(step + 1) / static_cast<double>(cfg_.warmup);
  if (cfg_.total_steps <= 0 || cfg_.schedule == "constant") return cfg_.lr;
  const double min_lr = cfg_.min_lr_frac * cfg_.lr;
  const double span = static_cast<double>(std::max<int64_t>(1, cfg_.total_steps - cfg_.warmup));
  const double p = std::clamp(static_cast<double>(step - cfg_.warmup) / span, 0.0, 1.0);
  if (cfg_.schedule == "linear") return min_lr + (cfg_.lr - min_lr) * (1.0 - p);
  return min_lr + (cfg_.lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
}

Optimizer::StepInfo Optimizer::step() {
  StepInfo info;
  info.grad_norm = clip_grad_norm(store_, cfg_.clip);
  info.lr = lr_at(step_);
  if (!std::isfinite(info.grad_norm)) {
    info.finite = false;
    return info;
  }
  Tensor& p = store_.flat();
  const Tensor& g = store_.flat_grad();
  Backend& be = backend(p);
  if (adamw_) be.adamw(p, g, m_, v_, info.lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, step_ + 1);
  else be.sgd(p, g, m_, info.lr, cfg_.momentum, cfg_.weight_decay);
  ++step_;
  return info;
}

}  // namespace cg::nn
