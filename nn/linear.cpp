// nn/linear.cpp — Linear forward, merge and unmerge.
#include "nn/linear.h"

#include "engine/backend.h"
#include "engine/tape.h"
#include "ops/ops.h"

namespace cg::nn {

Tensor Linear::forward(const Tensor& x) const {
  if (adapter && !adapter->merged) return adapter->forward(x, weight);
  return ops::linear(x, weight);
}

void Linear::merge() {
  if (!adapter || adapter->merged) return;
  NoGrad ng;
  if (adapter->delta_bias().defined())
    throw Error("Linear::merge: the adapter adds an output bias (a LinChain with chain biases) and this projection "
                "has no bias to fold it into; run it unmerged");
  Tensor dw = adapter->delta_weight();
  backend(weight).axpy(1.0, dw, weight);
  adapter->merged = true;
}

void Linear::unmerge() {
  if (!adapter || !adapter->merged) return;
  NoGrad ng;
  Tensor dw = adapter->delta_weight();
  backend(weight).axpy(-1.0, dw, weight);
  adapter->merged = false;
}

}  // namespace cg::nn
