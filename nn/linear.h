// nn/linear.h — Linear: a base weight in Hugging Face's [out, in] layout (y = x·Wᵀ) with
// an optional low-rank Adapter added to its output. The adapter kinds (LoRA, MoSLoRA,
// LinChain) live in nn/adapters.h; this file only knows the interface.
#pragma once
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace cg::nn {

class Adapter {
 public:
  virtual ~Adapter() = default;
  // Δy[..., out] = s · x[..., in] · A · (mixers) · Bᵀ — the adapter's share of the output.
  virtual Tensor forward(const Tensor& x) = 0;
  // ΔW[out, in] in the base weight's layout (for merging), computed without recording.
  virtual Tensor delta_weight() = 0;
  bool merged = false;  // folded into the base weight: forward() of Linear skips it
};

struct Linear {
  Tensor weight;                     // [out, in]
  std::shared_ptr<Adapter> adapter;  // optional

  int64_t in_features() const { return weight.dim(1); }
  int64_t out_features() const { return weight.dim(0); }
  // y[..., out] = x[..., in] · Wᵀ (+ adapter)
  Tensor forward(const Tensor& x) const;
  // W ← W + ΔW and mark the adapter merged; unmerge subtracts it again.
  void merge();
  void unmerge();
};

}  // namespace cg::nn
