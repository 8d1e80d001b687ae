// ops/chain_matmul.cpp — ChainMatmul forward (matrix-chain DP) and backward (tree walk).
#include "ops/chain_matmul.h"

#include <functional>
#include <limits>
#include <memory>

#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

// A node of the product tree. A leaf is one matrix of the chain (x or a factor); an
// inner node is left·right. `value` holds the node's matrix (row-major [rows, cols],
// not transposed); for leaves it is the input tensor and `tr` says op() transposes it.
struct PNode {
  int leaf = -1;  // index into the chain (0 = x), or −1 for an inner node
  std::unique_ptr<PNode> left, right;
  Tensor value;
  bool tr = false;
  int64_t rows = 0, cols = 0;  // logical shape of op(value)
  bool needs = false;          // some leaf below requires grad
  bool is_span = false;        // the observed sub-product P
};

// Matrix-chain DP over dims p[0..n]; split[i][j] is the best split of matrices i..j.
struct ChainPlan {
  std::vector<std::vector<double>> cost;
  std::vector<std::vector<int>> split;
};
ChainPlan plan(const std::vector<int64_t>& p) {
  const int n = static_cast<int>(p.size()) - 1;
  ChainPlan pl{std::vector<std::vector<double>>(n, std::vector<double>(n, 0.0)),
               std::vector<std::vector<int>>(n, std::vector<int>(n, -1))};
  for (int len = 2; len <= n; ++len)
    for (int i = 0; i + len - 1 < n; ++i) {
      const int j = i + len - 1;
      pl.cost[i][j] = std::numeric_limits<double>::infinity();
      for (int s = i; s < j; ++s) {
        const double c = pl.cost[i][s] + pl.cost[s + 1][j] + static_cast<double>(p[i]) * p[s + 1] * p[j + 1];
        if (c < pl.cost[i][j]) {  // strict <: ties keep the leftmost split (deterministic)
          pl.cost[i][j] = c;
          pl.split[i][j] = s;
        }
      }
    }
  return pl;
}

// Builds the tree for matrices [i, j] of `blocks`, where each block is a subtree.
std::unique_ptr<PNode> build(const ChainPlan& pl, std::vector<std::unique_ptr<PNode>>& blocks, int i, int j) {
  if (i == j) return std::move(blocks[i]);
  auto node = std::make_unique<PNode>();
  const int s = pl.split[i][j];
  node->left = build(pl, blocks, i, s);
  node->right = build(pl, blocks, s + 1, j);
  node->rows = node->left->rows;
  node->cols = node->right->cols;
  node->needs = node->left->needs || node->right->needs;
  return node;
}

std::string order_str(const PNode& n, const std::vector<std::string>& names) {
  if (n.leaf >= 0) return names[static_cast<size_t>(n.leaf)];
  return "(" + order_str(*n.left, names) + "·" + order_str(*n.right, names) + ")";
}

// C = op(a)·op(b) for two nodes, counted into *flops.
Tensor multiply(const PNode& a, const PNode& b, double* flops) {
  Tensor c = Tensor::empty({a.rows, b.cols}, a.value.dtype(), a.value.device());
  backend(c).gemm(c.dtype(), a.tr, b.tr, a.rows, b.cols, a.cols, 1.0, a.value.raw(), a.value.shape().cols(), 0,
                  b.value.raw(), b.value.shape().cols(), 0, 0.0, c.raw(), b.cols, 0, 1);
  *flops += 2.0 * static_cast<double>(a.rows) * b.cols * a.cols;
  return c;
}

void forward(PNode& n, double* flops) {
  if (n.leaf >= 0) return;
  forward(*n.left, flops);
  forward(*n.right, flops);
  n.value = multiply(*n.left, *n.right, flops);
}

struct Ctx {
  std::vector<Tensor> inputs;  // x (2-d view) then the factors
  Tensor x_orig;
  ChainProbe* probe;
  int span_begin;  // chain indices (x = 0) of the span, or −1
};

// g is ∂L/∂op(n.value) as a [rows, cols] matrix. Gradients of leaves go to their tensors
// in the tensors' own layout.
void backward(const PNode& n, const Tensor& g, const Ctx& ctx, double* flops) {
  if (!n.needs) return;
  if (n.is_span && ctx.probe) ctx.probe->grad_product = g;
  if (n.leaf >= 0) {
    Tensor gl = g;
    if (n.tr) {  // the tensor is stored transposed: its gradient is gᵀ
      gl = Tensor::empty({n.cols, n.rows}, g.dtype(), g.device());
      const int64_t st[4] = {0, 0, 1, n.cols}, dt[4] = {0, 0, n.rows, 1}, sh[4] = {1, 1, n.cols, n.rows};
      backend(g).copy_box(g.dtype(), g.raw(), st, gl.raw(), dt, sh, false);
    }
    const Tensor& target = n.leaf == 0 ? ctx.x_orig : ctx.inputs[static_cast<size_t>(n.leaf)];
    if (ctx.probe && ctx.span_begin >= 0 && n.leaf >= ctx.span_begin &&
        n.leaf < ctx.span_begin + static_cast<int>(ctx.probe->grad_factors.size()))
      ctx.probe->grad_factors[static_cast<size_t>(n.leaf - ctx.span_begin)] = gl;
    accumulate(target, n.leaf == 0 ? gl.view(ctx.x_orig.shape()) : gl);
    return;
  }
  const PNode &L = *n.left, &R = *n.right;
  Backend& be = backend(g);
  if (L.needs) {  // gL[L.rows, L.cols] = g · op(R)ᵀ
    Tensor gl = Tensor::empty({L.rows, L.cols}, g.dtype(), g.device());
    be.gemm(g.dtype(), false, !R.tr, L.rows, L.cols, n.cols, 1.0, g.raw(), n.cols, 0, R.value.raw(),
            R.value.shape().cols(), 0, 0.0, gl.raw(), L.cols, 0, 1);
    *flops += 2.0 * static_cast<double>(L.rows) * L.cols * n.cols;
    backward(L, gl, ctx, flops);
  }
  if (R.needs) {  // gR[R.rows, R.cols] = op(L)ᵀ · g
    Tensor gr = Tensor::empty({R.rows, R.cols}, g.dtype(), g.device());
    be.gemm(g.dtype(), !L.tr, false, R.rows, R.cols, n.rows, 1.0, L.value.raw(), L.value.shape().cols(), 0, g.raw(),
            n.cols, 0, 0.0, gr.raw(), R.cols, 0, 1);
    *flops += 2.0 * static_cast<double>(R.rows) * R.cols * n.rows;
    backward(R, gr, ctx, flops);
  }
}

}  // namespace

double chain_order_cost(const std::vector<int64_t>& dims, std::string* order, const std::vector<std::string>& names) {
  if (dims.size() < 2) throw ShapeError("chain_order_cost: need at least one matrix");
  const int n = static_cast<int>(dims.size()) - 1;
  const ChainPlan pl = plan(dims);
  if (order) {
    std::vector<std::unique_ptr<PNode>> leaves;
    for (int i = 0; i < n; ++i) {
      leaves.push_back(std::make_unique<PNode>());
      leaves.back()->leaf = i;
    }
    auto root = build(pl, leaves, 0, n - 1);
    std::vector<std::string> nm = names;
    for (int i = static_cast<int>(nm.size()); i < n; ++i) nm.push_back("M" + std::to_string(i));
    *order = order_str(*root, nm);
  }
  return pl.cost[0][n - 1];
}

// y[..., d_k] = x[..., d_0] · op(F_1) ⋯ op(F_k)
Tensor chain_matmul(const Tensor& x, const std::vector<ChainFactor>& factors, ChainProbe* probe) {
  if (factors.empty()) throw ShapeError("chain_matmul: no factors");
  detail::check_float("chain_matmul", x);
  if (x.rank() < 1) throw ShapeError("chain_matmul: x must have rank ≥ 1, got " + x.desc());
  const int k = static_cast<int>(factors.size());
  // Chain matrices: 0 is x viewed as [rows, d0], 1..k the factors.
  Ctx ctx;
  ctx.probe = probe;
  ctx.x_orig = x;
  ctx.inputs.push_back(x.rank() == 1 ? x.view({1, x.dim(0)}) : x.view({x.shape().rows(), x.shape().cols()}));
  std::vector<int64_t> dims{ctx.inputs[0].dim(0), ctx.inputs[0].dim(1)};
  std::string names_err = "x" + x.shape().str();
  for (int i = 0; i < k; ++i) {
    const ChainFactor& f = factors[static_cast<size_t>(i)];
    detail::check_same("chain_matmul", {&x, &f.t});
    if (f.t.rank() != 2) throw ShapeError("chain_matmul: factor " + std::to_string(i + 1) + " must be 2-d, got " + f.t.desc());
    const int64_t r = f.transposed ? f.t.dim(1) : f.t.dim(0), c = f.transposed ? f.t.dim(0) : f.t.dim(1);
    names_err += " · F" + std::to_string(i + 1) + f.t.shape().str() + (f.transposed ? "ᵀ" : "");
    if (r != dims.back()) throw ShapeError("chain_matmul: dims do not chain: " + names_err);
    dims.push_back(c);
    ctx.inputs.push_back(f.t);
  }
  int sb = -1, se = -1;  // span in chain indices
  if (probe && probe->span_begin >= 0) {
    if (probe->span_begin >= probe->span_end || probe->span_end > k)
      throw ShapeError("chain_matmul: probe span [" + std::to_string(probe->span_begin) + ", " +
                       std::to_string(probe->span_end) + ") is not inside " + std::to_string(k) + " factors");
    sb = probe->span_begin + 1;
    se = probe->span_end + 1;
  }
  ctx.span_begin = sb;

  auto leaf = [&](int i) {
    auto n = std::make_unique<PNode>();
    n->leaf = i;
    n->value = ctx.inputs[static_cast<size_t>(i)];
    n->tr = i > 0 && factors[static_cast<size_t>(i - 1)].transposed;
    n->rows = dims[static_cast<size_t>(i)];
    n->cols = dims[static_cast<size_t>(i + 1)];
    n->needs = grad_enabled() && needs_grad(i == 0 ? x : ctx.inputs[static_cast<size_t>(i)]);
    return n;
  };
  // Blocks: each chain matrix, except that the span (if any) is one block planned alone.
  std::vector<std::unique_ptr<PNode>> blocks;
  std::vector<int64_t> bdims{dims[0]};
  for (int i = 0; i <= k; ++i) {
    if (i == sb) {
      std::vector<std::unique_ptr<PNode>> inner;
      std::vector<int64_t> idims{dims[static_cast<size_t>(sb)]};
      for (int j = sb; j < se; ++j) {
        inner.push_back(leaf(j));
        idims.push_back(dims[static_cast<size_t>(j + 1)]);
      }
      auto span = build(plan(idims), inner, 0, se - sb - 1);
      span->is_span = true;
      blocks.push_back(std::move(span));
      bdims.push_back(dims[static_cast<size_t>(se)]);
      i = se - 1;
      continue;
    }
    blocks.push_back(leaf(i));
    bdims.push_back(dims[static_cast<size_t>(i + 1)]);
  }
  std::shared_ptr<PNode> root = build(plan(bdims), blocks, 0, static_cast<int>(blocks.size()) - 1);
  double flops = 0;
  forward(*root, &flops);
  if (probe) {
    std::vector<std::string> names{"x"};
    for (int i = 1; i <= k; ++i) names.push_back("F" + std::to_string(i));
    probe->order = order_str(*root, names);
    probe->forward_flops = flops;
    probe->backward_flops = 0;
    probe->grad_product = Tensor();
    probe->grad_factors.assign(sb >= 0 ? static_cast<size_t>(se - sb) : 0, Tensor());
    if (sb >= 0) {
      // Find the span node (a direct block of the root's tree).
      std::function<const PNode*(const PNode&)> find = [&](const PNode& n) -> const PNode* {
        if (n.is_span) return &n;
        if (n.leaf >= 0) return nullptr;
        const PNode* l = find(*n.left);
        return l ? l : find(*n.right);
      };
      const PNode* s = find(*root);
      probe->product = s->leaf >= 0 ? (s->tr ? transpose(s->value, 0, 1) : s->value) : s->value;
    }
  }
  Shape ys;
  for (int i = 0; i < x.rank() - 1; ++i) ys.push(x.dim(i));
  ys.push(dims.back());
  // The root's value is the product (a fresh tensor unless the chain is a lone x, which
  // cannot happen: k ≥ 1).
  Tensor y = root->value.view(ys);
  std::vector<Tensor> rec_inputs{x};
  for (const ChainFactor& f : factors) rec_inputs.push_back(f.t);
  record("chain_matmul", y, rec_inputs, [root, ctx](const Tensor& gy) {
    double bflops = 0;
    backward(*root, gy.view({root->rows, root->cols}), ctx, &bflops);
    if (ctx.probe) ctx.probe->backward_flops += bflops;
  });
  return y;
}

}  // namespace cg::ops
