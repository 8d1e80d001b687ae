// nn/linear.cpp — Linear forward, merge and unmerge.
#include "nn/linear.h"

#include "engine/backend.h"
#include "engine/tape.h"
#include "ops/ops.h"

namespace cg::nn {

// y[..., out] = x[..., in] · W[out,in]ᵀ (+ the unmerged adapter's Δy) (+ b[out], broadcast over rows)
Tensor Linear::forward(const Tensor& x) const {
  Tensor y = adapter && !adapter->merged ? adapter->forward(x, weight) : ops::linear(x, weight);
  return bias.defined() ? ops::add(y, bias) : y;
}

void Linear::merge() {
  if (!adapter || adapter->merged) return;
  NoGrad ng;
  Tensor dw = adapter->delta_weight();
  backend(weight).axpy(1.0, dw, weight);
  if (Tensor db = adapter->delta_bias(); db.defined()) {  // b ← b + Δb, Δb = s·B·β
    if (!bias.defined()) {
      bias = Tensor::zeros({out_features()}, weight.dtype(), weight.device());
      bias_from_merge = true;
    }
    backend(bias).axpy(1.0, db, bias);
  }
  adapter->merged = true;
}

void Linear::unmerge() {
  if (!adapter || !adapter->merged) return;
  NoGrad ng;
  Tensor dw = adapter->delta_weight();
  backend(weight).axpy(-1.0, dw, weight);
  if (Tensor db = adapter->delta_bias(); db.defined()) {
    if (bias_from_merge) {
      bias = Tensor();
      bias_from_merge = false;
    } else {
      backend(bias).axpy(-1.0, db, bias);
    }
  }
  adapter->merged = false;
}

}  // namespace cg::nn
