// ops/chain_matmul.h — ChainMatmul, the first-class op of chaingrad:
//   y[..., d_k] = x[..., d_0] · op(F_1) · op(F_2) ⋯ op(F_k)
// Forward picks the association by the matrix-chain dynamic program on the real shapes
// (x's row count included) and keeps the partial products that backward needs. Backward
// walks the same product tree: a node L·R hands G·Rᵀ to L and Lᵀ·G to R, so each factor
// gets ∂L/∂F_i = (x F_1⋯F_{i−1})ᵀ · G · (F_{i+1}⋯F_k)ᵀ with O(k) matmuls and no product
// computed twice; subtrees holding only frozen factors cost nothing.
//
// An affine chain: a factor may carry a bias, added after it, h ← h·op(F_i) + b_i (the
// authors' LinChain builds its chain from nn.Linear(r, r) with biases). Since the chain is
// linear in x, y = x·op(F_1)⋯op(F_k) + c with the input-independent row
//   c[d_k] = Σ_i b_i · op(F_{i+1}) ⋯ op(F_k),
// formed once per call as a recurrence of vector–matrix products (h̄ ← h̄·op(F_i) + b_i),
// and added to every row of y as one rank-1 GEMM; the product tree (and its association)
// is the linear chain's. Backward: ḡ_k = Σ_rows ∂L/∂y, ∂L/∂b_i = ḡ_i,
// ∂L/∂op(F_i) += h̄_{i−1}ᵀ·ḡ_i, ḡ_{i−1} = ḡ_i·op(F_i)ᵀ.
//
// A ChainProbe makes the chain observable: name a contiguous span of factors (the r×r
// middle W_1⋯W_n of a LinChain) and the op forms their product P as one block, reports
// P, and after backward ∂L/∂P and each factor's share
//   ∂L/∂W_i = (W_1⋯W_{i−1})ᵀ · ∂L/∂P · (W_{i+1}⋯W_n)ᵀ.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cg::ops {

// The longest chain, in factors (x not counted). The planner and the product tree live in
// fixed-size tables so that a call takes nothing from the heap; a longer chain is a
// ShapeError. (A LinChain adapter is n + 2 factors: A, the n mixers, Bᵀ.)
constexpr int kMaxChainFactors = 30;

// A factor of the chain: a rank-2 tensor, used transposed when `transposed`, and an
// optional bias [cols of op(t)] added after it.
struct ChainFactor {
  Tensor t;
  bool transposed = false;
  Tensor bias;
  ChainFactor(const Tensor& tensor, bool tr = false, const Tensor& b = Tensor())  // NOLINT: implicit on purpose
      : t(tensor), transposed(tr), bias(b) {}
};
inline ChainFactor transposed_factor(const Tensor& t) { return ChainFactor(t, true); }  // op(t) = tᵀ
inline ChainFactor affine(const Tensor& t, const Tensor& bias) { return ChainFactor(t, false, bias); }

struct ChainProbe {
  // In: the factors [span_begin, span_end) (0-based into the factor list) form P.
  // Leave span_begin < 0 for no span.
  int span_begin = -1;
  int span_end = -1;

  // Out, after forward:
  std::string order;         // the association used, e.g. "((x·F1)·(F2·F3))"
  double forward_flops = 0;  // 2·m·n·k summed over the products formed
  Tensor product;            // P (when a span was given)
  // With biases: the chain's input-independent term after the span, h̄ at its last factor,
  // e.g. β = Σ_i b_i·W_{i+1}⋯W_n for a LinChain middle ([r]); undefined without biases.
  Tensor beta;
  // Out, after backward:
  double backward_flops = 0;         // FLOPs of the gradient products
  Tensor grad_product;               // ∂L/∂P (through x·…·P·…; the bias path does not see P)
  std::vector<Tensor> grad_factors;  // ∂L/∂F_i for i in the span through P (this call's share)
  // With biases, for i in the span: the bias path's share of ∂L/∂F_i (the whole gradient is
  // grad_factors[i] + grad_factors_bias[i]) and ∂L/∂b_i; undefined where none.
  std::vector<Tensor> grad_factors_bias;
  std::vector<Tensor> grad_biases;
};

// The optimal association's cost in multiplications (m·n·k per product) for matrices
// with dims p[0]×p[1], p[1]×p[2], … (at most kMaxChainFactors + 1 matrices); and that
// association as a string over names.
double chain_order_cost(const std::vector<int64_t>& dims, std::string* order = nullptr,
                        const std::vector<std::string>& names = {});

// The probe, when given, must outlive the backward pass that fills it.
Tensor chain_matmul(const Tensor& x, const std::vector<ChainFactor>& factors, ChainProbe* probe = nullptr);

// A Linear (HF layout, w[out, in]) with a chain added to its output, as one op — the
// adapted projection of a LoRA / MoSLoRA / LinChain module (ops/adapted_linear.cpp):
//   y[..., out] = x[..., in] · wᵀ + s · (x · op(F_1) ⋯ op(F_k) + c)   (c: the biases' row)
// The chain is planned, formed and probed as by chain_matmul, but its last product
// accumulates straight into y (alpha = s, beta = 1), and in backward its share of ∂L/∂x
// is added into the buffer that holds gy·w: no separate [..., out] term, no add or scaling
// pass, forward or backward.
// With dropout p > 0 (PEFT's lora_dropout) the chain reads x̃ = x ⊙ keep / (1 − p) instead of x,
// keep[i] = dropout_keep(seed, i, p) (engine/backend.h), while the base GEMM reads x itself:
// one elementwise pass forms x̃ (forward) and masks the chain's share of ∂L/∂x (backward).
// p = 0 is the path without dropout, bit for bit.
Tensor adapted_linear(const Tensor& x, const Tensor& w, const std::vector<ChainFactor>& factors, double scale,
                      ChainProbe* probe = nullptr, double dropout = 0.0, uint64_t dropout_seed = 0);

}  // namespace cg::ops
