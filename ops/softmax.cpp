// ops/softmax.cpp — softmax, log-softmax and the fused cross-entropy loss.
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {

// y[..., C] = softmax(x) over the last dim (optionally causal over [..., Tq, Tk])
Tensor softmax(const Tensor& x, bool causal) {
  detail::check_float("softmax", x);
  detail::check_rank("softmax", x, 1, 4, "input");
  if (causal && x.rank() < 2) throw ShapeError("softmax: causal needs [..., Tq, Tk], got " + x.desc());
  const int64_t tq = causal ? x.dim(-2) : 0, off = causal ? x.dim(-1) - x.dim(-2) : 0;
  if (causal && off < 0) throw ShapeError("softmax: causal needs Tk ≥ Tq, got " + x.desc());
  Tensor y = detail::empty_like(x);
  backend(x).softmax(x, y, false, tq, off);
  record("softmax", y, {x}, [x, y](const Tensor& gy) {  // gx = y ⊙ (gy − Σ gy⊙y)
    Tensor gx = detail::empty_like(x);
    backend(x).softmax_backward(y, gy, gx, false);
    accumulate(x, gx);
  });
  return y;
}

// y = x − logsumexp(x) over the last dim
Tensor log_softmax(const Tensor& x) {
  detail::check_float("log_softmax", x);
  detail::check_rank("log_softmax", x, 1, 4, "input");
  Tensor y = detail::empty_like(x);
  backend(x).softmax(x, y, true, 0, 0);
  record("log_softmax", y, {x}, [x, y](const Tensor& gy) {  // gx = gy − e^y · Σ gy
    Tensor gx = detail::empty_like(x);
    backend(x).softmax_backward(y, gy, gx, true);
    accumulate(x, gx);
  });
  return y;
}

// loss[1] = mean over kept rows r of (logsumexp(logits[r]) − logits[r, t_r])
Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  detail::check_float("cross_entropy", logits);
  detail::check_rank("cross_entropy", logits, 1, 4, "logits");
  if (targets.dtype() != DType::I32) throw DTypeError("cross_entropy: targets must be i32, got " + targets.desc());
  if (targets.device() != logits.device())
    throw DeviceError("cross_entropy: logits " + logits.desc() + " and targets " + targets.desc() +
                      " on different devices");
  if (targets.numel() != logits.shape().rows())
    throw ShapeError("cross_entropy: " + std::to_string(targets.numel()) + " targets for logits " + logits.desc() +
                     " (need one per row)");
  // Targets are read on the host once to validate them and count the kept rows (a CPU
  // tensor is read in place; no host vector, so a training step stays off the heap).
  const Tensor th = targets.to(Device::CPU);
  const int32_t* t = th.data<int32_t>();
  const int64_t V = logits.dim(-1);
  int64_t kept = 0;
  for (int64_t i = 0; i < th.numel(); ++i) {
    if (t[i] >= V)
      throw ShapeError("cross_entropy: target " + std::to_string(t[i]) + " out of range for " + std::to_string(V) +
                       " classes");
    kept += t[i] >= 0;
  }
  const int64_t rows = logits.shape().rows();
  Tensor losses = detail::empty_as(logits, {rows});
  Tensor lse = detail::empty_as(logits, {rows});
  backend(logits).cross_entropy(logits, targets, losses, lse);
  Tensor y = detail::empty_as(logits, {1});
  backend(logits).sum_to(losses, y);
  const double scale = kept > 0 ? 1.0 / static_cast<double>(kept) : 0.0;
  backend(logits).unary(UnaryOp::MulScalar, y, y, scale);
  record("cross_entropy", y, {logits, targets}, [logits, targets, lse, scale](const Tensor& gy) {
    // glogits[r] = gy · scale · (softmax(logits[r]) − onehot(t_r))
    Tensor g = detail::empty_like(logits);
    backend(logits).cross_entropy_backward(logits, lse, targets, scale * gy.item(), g);
    accumulate(logits, g);
  });
  return y;
}

}  // namespace cg::ops
