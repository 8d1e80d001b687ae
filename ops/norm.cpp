// ops/norm.cpp — RMSNorm and LayerNorm over the last dim (fused forward and backward).
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {

// y[..., D] = x · rstd · w,  rstd = 1/√(mean(x²) + eps)
Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps) {
  detail::check_same("rmsnorm", {&x, &w});
  detail::check_float("rmsnorm", x);
  if (w.rank() != 1 || x.rank() < 1 || w.dim(0) != x.dim(-1))
    throw ShapeError("rmsnorm: weight " + w.desc() + " does not fit input " + x.desc());
  Tensor y = detail::empty_like(x);
  Tensor rstd = detail::empty_as(x, {x.shape().rows()});
  backend(x).rmsnorm(x, w, y, rstd, eps);
  record("rmsnorm", y, {x, w}, [x, w, rstd](const Tensor& gy) {
    Tensor gx, gw;
    if (needs_grad(x)) gx = detail::empty_like(x);                            // gx[..., D]
    if (needs_grad(w)) gw = Tensor::zeros(w.shape(), w.dtype(), w.device());  // gw[D]
    backend(x).rmsnorm_backward(x, w, rstd, gy, gx.defined() ? &gx : nullptr, gw.defined() ? &gw : nullptr);
    if (gx.defined()) accumulate(x, gx);
    if (gw.defined()) accumulate(w, gw);
  });
  return y;
}

// y[..., D] = (x − mean) · rstd · w + b
Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  detail::check_same("layernorm", {&x, &w, &b});
  detail::check_float("layernorm", x);
  if (w.rank() != 1 || b.shape() != w.shape() || x.rank() < 1 || w.dim(0) != x.dim(-1))
    throw ShapeError("layernorm: weight " + w.desc() + " / bias " + b.desc() + " do not fit input " + x.desc());
  Tensor y = detail::empty_like(x);
  Tensor mu = detail::empty_as(x, {x.shape().rows()});
  Tensor rstd = detail::empty_as(x, {x.shape().rows()});
  backend(x).layernorm(x, w, b, y, mu, rstd, eps);
  record("layernorm", y, {x, w, b}, [x, w, b, mu, rstd](const Tensor& gy) {
    Tensor gx, gw, gb;
    if (needs_grad(x)) gx = detail::empty_like(x);
    if (needs_grad(w)) gw = Tensor::zeros(w.shape(), w.dtype(), w.device());
    if (needs_grad(b)) gb = Tensor::zeros(b.shape(), b.dtype(), b.device());
    backend(x).layernorm_backward(x, w, mu, rstd, gy, gx.defined() ? &gx : nullptr, gw.defined() ? &gw : nullptr,
                                  gb.defined() ? &gb : nullptr);
    if (gx.defined()) accumulate(x, gx);
    if (gw.defined()) accumulate(w, gw);
    if (gb.defined()) accumulate(b, gb);
  });
  return y;
}

}  // namespace cg::ops
