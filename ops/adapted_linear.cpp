// ops/adapted_linear.cpp — AdaptedLinear: a Linear and its low-rank adapter as one op,
//   y = x·wᵀ + s · (x·op(F_1)⋯op(F_k) + c)   (c: the factors' biases as one row),
// on ChainMatmul's product tree (ops/chain_tree.h). The chain's last GEMM adds into the
// base GEMM's output, and its share of ∂L/∂x into the base's gy·w, so the adapter costs its
// thin GEMMs and nothing that touches a full [rows, out] or [rows, in] tensor on its own
// (with adapter dropout: one elementwise pass over x forward, one over ∂L/∂x backward).
#include "ops/chain_matmul.h"
#include "ops/chain_tree.h"
#include "ops/detail.h"

namespace cg::ops {

// y[..., out] = x[..., in] · w[out, in]ᵀ + s · (x · op(F_1) ⋯ op(F_k) + c)
Tensor adapted_linear(const Tensor& x, const Tensor& w, const std::vector<ChainFactor>& factors, double scale,
                      ChainProbe* probe, double dropout, uint64_t dropout_seed) {
  detail::check_weight("adapted_linear", x, w);  // w may be a bf16-stored frozen weight
  detail::check_rank("adapted_linear", w, 2, 2, "weight");
  if (x.rank() < 1 || x.dim(-1) != w.dim(1))
    throw ShapeError("adapted_linear: input " + x.desc() + " does not fit weight " + w.desc() + " (need [..., " +
                     std::to_string(w.dim(1)) + "])");
  if (!(dropout >= 0 && dropout < 1))
    throw ShapeError("adapted_linear: dropout must be in [0, 1), got " + std::to_string(dropout));
  Tensor xd;  // x̃[..., in] = x ⊙ keep / (1 − p): what the chain reads under dropout
  if (dropout > 0) {
    xd = detail::empty_like(x);
    backend(x).dropout(x, xd, dropout, dropout_seed);
  }
  std::shared_ptr<detail::ChainTree> tree =
      detail::chain_plan("adapted_linear", x, factors, probe, xd.defined() ? &xd : nullptr);
  const int64_t N = x.shape().rows(), out = w.dim(0);
  if (detail::chain_cols(*tree) != out)
    throw ShapeError("adapted_linear: the chain ends in " + std::to_string(detail::chain_cols(*tree)) +
                     " columns, the weight " + w.desc() + " in " + std::to_string(out));
  Tensor y = detail::empty_as(x, detail::with_last_dim(x.shape(), out));
  // y[N, out] = x[N, in] · wᵀ, then y += s · x·op(F_1)⋯op(F_k) (the chain's last GEMM, beta = 1)
  // and, with biases, y += s · 1·c (one rank-1 GEMM)
  detail::gemm2d(x, false, w, true, y);
  detail::chain_forward(*tree, y.view({N, out}), scale, 1.0);

  Tensor rec_inputs[2 * kMaxChainFactors + 2] = {x, w};  // x, w, the factors, their biases (no vector: no heap)
  const size_t n_in = detail::chain_inputs(factors, rec_inputs, 2);
  record("adapted_linear", y, std::span<const Tensor>(rec_inputs, n_in),
         [tree, x, w, N, out, scale, dropout, dropout_seed](const Tensor& gy) {  // gy[..., out]
           Tensor gx;
           if (needs_grad(x)) gx = detail::empty_like(x);
           if (gx.defined() && dropout > 0) {  // gx = (s·gy·(…)ᵀ) ⊙ keep / (1 − p), then += gy · w
             detail::chain_backward(*tree, gy.view({N, out}), scale, &gx, 0.0);
             backend(gx).dropout(gx, gx, dropout, dropout_seed);
             detail::gemm2d(gy, false, w, false, gx, 1.0, 1.0);
           } else if (gx.defined()) {  // gx[N, in] = gy · w; the chain adds s·gy·(…)ᵀ into it below
             detail::gemm2d(gy, false, w, false, gx);
           }
           if (needs_grad(w)) {  // gw[out, in] = gyᵀ · x
             Tensor gw = detail::empty_like(w);
             detail::gemm2d(gy, true, x, false, gw);
             accumulate(w, gw);
           }
           // The factors (and biases) get their gradients of s·chain (s on the root's GEMMs), x its share into gx.
           if (!(gx.defined() && dropout > 0))
             detail::chain_backward(*tree, gy.view({N, out}), scale, gx.defined() ? &gx : nullptr);
           if (gx.defined()) accumulate(x, gx);
         });
  return y;
}

}  // namespace cg::ops
