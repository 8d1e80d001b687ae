// nn/linear.h — Linear: a base weight in Hugging Face's [out, in] layout (y = x·Wᵀ + b, the
// bias optional) with an optional low-rank Adapter added to its output. The adapter kinds
// (LoRA, MoSLoRA, LinChain) live in nn/adapters.h; this file only knows the interface: an
// unmerged adapter computes the whole adapted projection, so that it can fuse its share into
// the base GEMM's output (ops::adapted_linear).
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
  Tensor bias;                       // [out], or undefined: no bias (the usual Llama projection)
  bool bias_from_merge = false;      // merge() created `bias` (unmerge() drops it again)

  int64_t in_features() const { return weight.dim(1); }
  int64_t out_features() const { return weight.dim(0); }
  // y[..., out] = x[..., in] · Wᵀ (+ adapter) (+ b)
  Tensor forward(const Tensor& x) const;
  // W ← W + ΔW (and b ← b + Δb for an affine adapter) and mark the adapter merged; unmerge
  // subtracts them again. A bias-free Linear merging an affine adapter gains a bias (zeros
  // + Δb) that unmerge removes again, so the base comes back bias-free. Both are exact up
  // to float rounding: each element of W is rounded once by the add and once by the
  // subtract (ΔW is recomputed identically), so |W_after − W| ≤ 2⁻²³·(|W| + |ΔW|).
  void merge();
  void unmerge();
};

}  // namespace cg::nn
