// ops/chain_matmul.cpp — ChainMatmul forward (matrix-chain DP) and backward (tree walk).
#include "ops/chain_matmul.h"

#include <functional>
#include <limits>
#include <memory>

#include "ops/chain_tree.h"
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

// c[a.rows, b.cols] = alpha · op(a)·op(b) + beta · c for two nodes, counted into *flops.
void multiply(const PNode& a, const PNode& b, const Tensor& c, double alpha, double beta, double* flops) {
  backend(c).gemm(c.dtype(), a.tr, b.tr, a.rows, b.cols, a.cols, alpha, a.value.raw(), a.value.shape().cols(), 0,
                  b.value.raw(), b.value.shape().cols(), 0, beta, c.raw(), b.cols, 0, 1);
  *flops += 2.0 * static_cast<double>(a.rows) * b.cols * a.cols;
}

// Forms the products below n (kept in the tree for backward); n's own product goes to
// out = alpha·product + beta·out when out is given (the root), else into a fresh n.value.
void forward(PNode& n, double* flops, const Tensor* out = nullptr, double alpha = 1.0, double beta = 0.0) {
  if (n.leaf >= 0) return;
  forward(*n.left, flops);
  forward(*n.right, flops);
  if (!out) n.value = Tensor::empty({n.rows, n.cols}, n.left->value.dtype(), n.left->value.device());
  multiply(*n.left, *n.right, out ? *out : n.value, alpha, beta, flops);
}

struct Ctx {
  std::vector<Tensor> inputs;  // x (2-d view) then the factors
  Tensor x_orig;
  ChainProbe* probe;
  int span_begin;  // chain indices (x = 0) of the span, or −1
};

// g is ∂L/∂(n's product) as a [rows, cols] matrix, and n's product enters the result as
// alpha·op(n.value) (alpha ≠ 1 only at the root). Gradients of leaves go to their tensors
// in the tensors' own layout; x's (always a left child: it is chain matrix 0) is added
// into gx (read as [rows, d_0]) with beta = 1 when gx is given.
void backward(const PNode& n, const Tensor& g, const Ctx& ctx, double* flops, double alpha = 1.0,
              const Tensor* gx = nullptr) {
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
  if (L.needs) {  // gL[L.rows, L.cols] = alpha · g · op(R)ᵀ  (+ gx when L is x)
    const bool into_gx = L.leaf == 0 && gx;
    Tensor gl = into_gx ? *gx : Tensor::empty({L.rows, L.cols}, g.dtype(), g.device());
    be.gemm(g.dtype(), false, !R.tr, L.rows, L.cols, n.cols, alpha, g.raw(), n.cols, 0, R.value.raw(),
            R.value.shape().cols(), 0, into_gx ? 1.0 : 0.0, gl.raw(), L.cols, 0, 1);
    *flops += 2.0 * static_cast<double>(L.rows) * L.cols * n.cols;
    if (!into_gx) backward(L, gl, ctx, flops, 1.0, gx);
  }
  if (R.needs) {  // gR[R.rows, R.cols] = alpha · op(L)ᵀ · g
    Tensor gr = Tensor::empty({R.rows, R.cols}, g.dtype(), g.device());
    be.gemm(g.dtype(), !L.tr, false, R.rows, R.cols, n.rows, alpha, L.value.raw(), L.value.shape().cols(), 0, g.raw(),
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

namespace detail {

struct ChainTree {
  std::unique_ptr<PNode> root;
  Ctx ctx;
  int k = 0, sb = -1, se = -1;  // factor count; the span in chain indices (x = 0), or −1
};

std::shared_ptr<ChainTree> chain_plan(const char* op, const Tensor& x, const std::vector<ChainFactor>& factors,
                                      ChainProbe* probe) {
  const std::string on(op);
  if (factors.empty()) throw ShapeError(on + ": no factors");
  check_float(op, x);
  if (x.rank() < 1) throw ShapeError(on + ": x must have rank ≥ 1, got " + x.desc());
  auto tree = std::make_shared<ChainTree>();
  const int k = static_cast<int>(factors.size());
  tree->k = k;
  // Chain matrices: 0 is x viewed as [rows, d0], 1..k the factors.
  Ctx& ctx = tree->ctx;
  ctx.probe = probe;
  ctx.x_orig = x;
  ctx.inputs.push_back(x.rank() == 1 ? x.view({1, x.dim(0)}) : x.view({x.shape().rows(), x.shape().cols()}));
  std::vector<int64_t> dims{ctx.inputs[0].dim(0), ctx.inputs[0].dim(1)};
  std::string names_err = "x" + x.shape().str();
  for (int i = 0; i < k; ++i) {
    const ChainFactor& f = factors[static_cast<size_t>(i)];
    check_same(op, {&x, &f.t});
    if (f.t.rank() != 2) throw ShapeError(on + ": factor " + std::to_string(i + 1) + " must be 2-d, got " + f.t.desc());
    const int64_t r = f.transposed ? f.t.dim(1) : f.t.dim(0), c = f.transposed ? f.t.dim(0) : f.t.dim(1);
    names_err += " · F" + std::to_string(i + 1) + f.t.shape().str() + (f.transposed ? "ᵀ" : "");
    if (r != dims.back()) throw ShapeError(on + ": dims do not chain: " + names_err);
    dims.push_back(c);
    ctx.inputs.push_back(f.t);
  }
  int sb = -1, se = -1;  // span in chain indices
  if (probe && probe->span_begin >= 0) {
    if (probe->span_begin >= probe->span_end || probe->span_end > k)
      throw ShapeError(on + ": probe span [" + std::to_string(probe->span_begin) + ", " +
                       std::to_string(probe->span_end) + ") is not inside " + std::to_string(k) + " factors");
    sb = probe->span_begin + 1;
    se = probe->span_end + 1;
  }
  ctx.span_begin = sb;
  tree->sb = sb;
  tree->se = se;

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
  tree->root = build(plan(bdims), blocks, 0, static_cast<int>(blocks.size()) - 1);
  return tree;
}

int64_t chain_cols(const ChainTree& t) { return t.root->cols; }

void chain_forward(ChainTree& t, const Tensor& out, double alpha, double beta) {
  // The root is an inner node (k ≥ 1); its product goes straight to out, not into the tree.
  const PNode* root = t.root.get();
  ChainProbe* probe = t.ctx.probe;
  const int k = t.k, sb = t.sb, se = t.se;
  double flops = 0;
  forward(*t.root, &flops, &out, alpha, beta);
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
}

void chain_backward(const ChainTree& t, const Tensor& g, double alpha, const Tensor* gx) {
  double flops = 0;
  backward(*t.root, g, t.ctx, &flops, alpha, gx);
  if (t.ctx.probe) t.ctx.probe->backward_flops += flops;
}

}  // namespace detail

// y[..., d_k] = x[..., d_0] · op(F_1) ⋯ op(F_k)
Tensor chain_matmul(const Tensor& x, const std::vector<ChainFactor>& factors, ChainProbe* probe) {
  std::shared_ptr<detail::ChainTree> tree = detail::chain_plan("chain_matmul", x, factors, probe);
  const int64_t rows = tree->ctx.inputs[0].dim(0), cols = detail::chain_cols(*tree);
  Shape ys;
  for (int i = 0; i < x.rank() - 1; ++i) ys.push(x.dim(i));
  ys.push(cols);
  Tensor y = detail::empty_as(x, ys);
  detail::chain_forward(*tree, y.view({rows, cols}), 1.0, 0.0);
  std::vector<Tensor> rec_inputs{x};
  for (const ChainFactor& f : factors) rec_inputs.push_back(f.t);
  record("chain_matmul", y, rec_inputs, [tree, rows, cols](const Tensor& gy) {  // gy[..., d_k]
    detail::chain_backward(*tree, gy.view({rows, cols}), 1.0, nullptr);
  });
  return y;
}

}  // namespace cg::ops
