// ops/chain_tree.h — ChainMatmul's product tree as three pieces (plan, forward, backward)
// that ops build on (not a public header): chain_matmul writes the product into a fresh
// tensor, adapted_linear accumulates it into a Linear's output. Defined in
// ops/chain_matmul.cpp.
#pragma once
#include <memory>
#include <vector>

#include "ops/chain_matmul.h"

namespace cg::ops::detail {

struct ChainTree;

// Checks x[..., d_0] and the factors (errors name `op`) and plans the association of
// x·op(F_1)⋯op(F_k), the probe's span as one block. Which leaves need a gradient is
// decided here (grad mode and requires_grad now). x_chain, when given, is what the chain
// multiplies in place of x (adapted_linear's dropped-out input, shaped like x); whether it
// needs a gradient is still x's.
std::shared_ptr<ChainTree> chain_plan(const char* op, const Tensor& x, const std::vector<ChainFactor>& factors,
                                      ChainProbe* probe, const Tensor* x_chain = nullptr);
int64_t chain_cols(const ChainTree& t);  // d_k
// Writes the factors' tensors, then their biases, into out[at…] (an op's recorded inputs);
// returns the index after the last.
size_t chain_inputs(const std::vector<ChainFactor>& factors, Tensor* out, size_t at);

// out[rows, d_k] = alpha · (x·op(F_1)⋯op(F_k) + c) + beta · out, rows = x's rows, c the
// biases' row (when a factor has a bias). The root's product goes straight into out (a 2-d
// view); the partial products below it stay in the tree for backward. Fills the probe's
// forward fields.
void chain_forward(ChainTree& t, const Tensor& out, double alpha, double beta);

// g[rows, d_k] = ∂L/∂out. Every factor (and bias) that needs grad gets its gradient of
// alpha·(product + c) (alpha
// rides on the root's two GEMMs, g is never scaled); x's share goes into gx (gx = share +
// gx_beta·gx; x's shape, read as [rows, d_0]) when gx is given, else accumulated into
// x.grad. Fills the probe's backward fields.
void chain_backward(const ChainTree& t, const Tensor& g, double alpha, const Tensor* gx, double gx_beta = 1.0);

}  // namespace cg::ops::detail
