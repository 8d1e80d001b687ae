// nn/linear.h — Linear: a base weight in Hugging Face's [out, in] layout (y = x·Wᵀ) with
// an optional low-rank Adapter added to its output. The adapter kinds (LoRA, MoSLoRA,
// LinChain) live in nn/adapters.h; this file only knows the interface: an unmerged
// adapter computes the whole adapted projection, so that it can fuse its share into the
// base GEMM's output (ops::adapted_linear).
#pragma once
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace cg::nn {

class Adapter {
 public:
  virtual ~Adapter() = default;
  // y[..., out] = x[..., in] · Wᵀ + Δy, Δy = s · x · A · (mixers) · Bᵀ: the base weight's
  // output with the adapter's share added (W[out, in] is the Linear's weight).
  virtual Tensor forward(const Tensor& x, const Tensor& weight) = 0;
  // ΔW[out, in] in the base weight's layout (for merging), computed without recording.
  virtual Tensor delta_weight() = 0;
  // Δb[out] (an output bias the update adds, e.g. a LinChain with chain biases), or an
  // undefined tensor when the update is linear.
  virtual Tensor delta_bias() { return Tensor(); }
  bool merged = false;  // folded into the base weight: forward() of Linear skips it
};

struct Linear {
  Tensor weight;                     // [out, in]
  std::shared_ptr<Adapter> adapter;  // optional

  int64_t in_features() const { return weight.dim(1); }
  int64_t out_features() const { return weight.dim(0); }
  // y[..., out] = x[..., in] · Wᵀ (+ adapter)
  Tensor forward(const Tensor& x) const;
  // W ← W + ΔW and mark the adapter merged; unmerge subtracts it again. An adapter with an
  // output bias (delta_bias) cannot merge into a bias-free Linear: Error.
  void merge();
  void unmerge();
};

}  // namespace cg::nn
