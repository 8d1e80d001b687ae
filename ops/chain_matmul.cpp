// ops/chain_matmul.cpp — ChainMatmul forward (matrix-chain DP) and backward (tree walk),
// as the three pieces of ops/chain_tree.h (plan, forward, backward) that chain_matmul and
// adapted_linear (ops/adapted_linear.cpp) build on.
// No heap per call: chains are short (≤ kMaxChainFactors), so the DP table is a fixed
// array on the stack and the product tree is a fixed array of nodes in one pooled block
// (engine/pool.h) that the backward closure holds; after warm-up a call reuses them.
#include "ops/chain_matmul.h"

#include <limits>
#include <memory>

#include "engine/pool.h"
#include "ops/chain_tree.h"
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

constexpr int kMaxMatrices = kMaxChainFactors + 1;  // x and the factors

// A node of the product tree. A leaf is one matrix of the chain (x or a factor); an
// inner node is left·right. `value` holds the node's matrix (row-major [rows, cols],
// not transposed); for leaves it is the input tensor and `tr` says op() transposes it.
struct PNode {
  int leaf = -1;  // index into the chain (0 = x), or −1 for an inner node
  PNode* left = nullptr;
  PNode* right = nullptr;
  Tensor value;
  bool tr = false;
  int64_t rows = 0, cols = 0;  // logical shape of op(value)
  bool needs = false;          // some leaf below requires grad
  bool is_span = false;        // the observed sub-product P
};

}  // namespace

// The tree of one call, with what its backward needs: n matrices give n leaves and
// n − 1 inner nodes, all taken from `nodes` (the children pointers stay inside it).
struct detail::ChainTree {
  PNode nodes[2 * kMaxMatrices - 1];
  int used = 0;
  PNode* root = nullptr;
  Tensor inputs[kMaxMatrices];  // x (2-d view) then the factors
  Tensor x_orig;
  ChainProbe* probe = nullptr;
  int k = 0;            // factors
  int span_begin = -1;  // chain indices (x = 0) of the span [span_begin, span_end), or −1
  int span_end = -1;
  // The affine part (chain indices; index 0 unused): bias[i] is added after factor i,
  // hbar[i][d_i] = hbar[i−1]·op(F_i) + bias[i] from the first bias on, ones[rows, 1]
  // broadcasts the row hbar[k] onto the output.
  bool tr[kMaxMatrices] = {};
  Tensor bias[kMaxMatrices];
  Tensor hbar[kMaxMatrices];
  Tensor ones;
  int first_bias = -1;

  PNode* new_node() { return &nodes[used++]; }
  ChainTree() = default;
  ChainTree(const ChainTree&) = delete;
  ChainTree& operator=(const ChainTree&) = delete;
};

namespace {
using detail::ChainTree;

// Matrix-chain DP over dims p[0..n]; split[i][j] is the best split of matrices i..j.
struct ChainPlan {
  double cost[kMaxMatrices][kMaxMatrices];
  int split[kMaxMatrices][kMaxMatrices];
};
void plan(const int64_t* p, int n, ChainPlan& pl) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      pl.cost[i][j] = 0.0;
      pl.split[i][j] = -1;
    }
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
}

// Builds the tree for matrices [i, j] of `blocks`, where each block is a subtree.
PNode* build(const ChainPlan& pl, PNode* const* blocks, int i, int j, ChainTree& t) {
  if (i == j) return blocks[i];
  PNode* node = t.new_node();
  const int s = pl.split[i][j];
  node->left = build(pl, blocks, i, s, t);
  node->right = build(pl, blocks, s + 1, j, t);
  node->rows = node->left->rows;
  node->cols = node->right->cols;
  node->needs = node->left->needs || node->right->needs;
  return node;
}

// Appends the association of n to out; name(i, out) appends leaf i's name. (Appending
// to a string that already has the capacity, as the probe's does after one call, takes
// nothing from the heap.)
template <class Name>
void order_str(const PNode& n, const Name& name, std::string& out) {
  if (n.leaf >= 0) {
    name(n.leaf, out);
    return;
  }
  out += '(';
  order_str(*n.left, name, out);
  out += "·";
  order_str(*n.right, name, out);
  out += ')';
}

const PNode* find_span(const PNode& n) {
  if (n.is_span) return &n;
  if (n.leaf >= 0) return nullptr;
  const PNode* l = find_span(*n.left);
  return l ? l : find_span(*n.right);
}

// c[a.rows, b.cols] = alpha · op(a)·op(b) + beta · c for two nodes, counted into *flops.
void multiply(const PNode& a, const PNode& b, const Tensor& c, double alpha, double beta, double* flops) {
  backend(c).gemm(mat(a.value).t(a.tr), mat(b.value).t(b.tr), mat(c), alpha, beta);
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

// g is ∂L/∂(n's product) as a [rows, cols] matrix, and n's product enters the result as
// alpha·op(n.value) (alpha ≠ 1 only at the root). Gradients of leaves go to their tensors
// in the tensors' own layout; x's (always a left child: it is chain matrix 0) is added
// into gx (read as [rows, d_0]) (gx = share + gx_beta·gx) when gx is given.
void backward(const PNode& n, const Tensor& g, const ChainTree& ctx, double* flops, double alpha = 1.0,
              const Tensor* gx = nullptr, double gx_beta = 1.0) {
  if (!n.needs) return;
  if (n.is_span && ctx.probe) ctx.probe->grad_product = g;
  if (n.leaf >= 0) {
    Tensor gl = g;
    if (n.tr) {  // the tensor is stored transposed: its gradient is gᵀ
      gl = Tensor::empty({n.cols, n.rows}, g.dtype(), g.device());
      const int64_t st[4] = {0, 0, 1, n.cols}, dt[4] = {0, 0, n.rows, 1}, sh[4] = {1, 1, n.cols, n.rows};
      backend(g).copy_box(g.dtype(), g.raw(), st, gl.raw(), dt, sh, false);
    }
    const Tensor& target = n.leaf == 0 ? ctx.x_orig : ctx.inputs[n.leaf];
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
    be.gemm(mat(g), mat(R.value).t(!R.tr), mat(gl), alpha, into_gx ? gx_beta : 0.0);
    *flops += 2.0 * static_cast<double>(L.rows) * L.cols * n.cols;
    if (!into_gx) backward(L, gl, ctx, flops, 1.0, gx, gx_beta);
  }
  if (R.needs) {  // gR[R.rows, R.cols] = alpha · op(L)ᵀ · g
    Tensor gr = Tensor::empty({R.rows, R.cols}, g.dtype(), g.device());
    be.gemm(mat(L.value).t(!L.tr), mat(g), mat(gr), alpha, 0.0);
    *flops += 2.0 * static_cast<double>(R.rows) * R.cols * n.rows;
    backward(R, gr, ctx, flops);
  }
}

// "x[4,3] · F1[3,2] · F2[5,2]ᵀ" up to factor `upto` (1-based), for error messages.
std::string chain_desc(const Tensor& x, const std::vector<ChainFactor>& factors, size_t upto) {
  std::string s = "x" + x.shape().str();
  for (size_t i = 0; i < upto; ++i)
    s += " · F" + std::to_string(i + 1) + factors[i].t.shape().str() + (factors[i].transposed ? "ᵀ" : "");
  return s;
}

}  // namespace

double chain_order_cost(const std::vector<int64_t>& dims, std::string* order, const std::vector<std::string>& names) {
  if (dims.size() < 2) throw ShapeError("chain_order_cost: need at least one matrix");
  const int n = static_cast<int>(dims.size()) - 1;
  if (n > kMaxMatrices)
    throw ShapeError("chain_order_cost: " + std::to_string(n) + " matrices, at most " + std::to_string(kMaxMatrices));
  auto pl = std::make_unique<ChainPlan>();
  plan(dims.data(), n, *pl);
  if (order) {
    auto tree = std::make_unique<ChainTree>();
    PNode* leaves[kMaxMatrices];
    for (int i = 0; i < n; ++i) {
      leaves[i] = tree->new_node();
      leaves[i]->leaf = i;
    }
    const PNode* root = build(*pl, leaves, 0, n - 1, *tree);
    order->clear();
    order_str(
        *root,
        [&](int i, std::string& out) {
          out += static_cast<size_t>(i) < names.size() ? names[static_cast<size_t>(i)] : "M" + std::to_string(i);
        },
        *order);
  }
  return pl->cost[0][n - 1];
}


namespace detail {

std::shared_ptr<ChainTree> chain_plan(const char* op, const Tensor& x, const std::vector<ChainFactor>& factors,
                                      ChainProbe* probe, const Tensor* x_chain) {
  if (factors.empty()) throw ShapeError(std::string(op) + ": no factors");
  check_float(op, x);
  if (x.rank() < 1) throw ShapeError(std::string(op) + ": x must have rank ≥ 1, got " + x.desc());
  const int k = static_cast<int>(factors.size());
  if (k > kMaxChainFactors)
    throw ShapeError(std::string(op) + ": " + std::to_string(k) + " factors, at most " +
                     std::to_string(kMaxChainFactors) + " (kMaxChainFactors)");
  // Chain matrices: 0 is x viewed as [rows, d0], 1..k the factors. The tree (and every
  // tensor the backward needs) lives in one pooled block, shared with the closure.
  std::shared_ptr<ChainTree> tree = make_pooled<ChainTree>();
  ChainTree& ctx = *tree;
  ctx.probe = probe;
  ctx.k = k;
  ctx.x_orig = x;
  const Tensor& xc = x_chain ? *x_chain : x;
  ctx.inputs[0] = x.rank() == 1 ? xc.view({1, x.dim(0)}) : xc.view({x.shape().rows(), x.shape().cols()});
  int64_t dims[kMaxMatrices + 1] = {ctx.inputs[0].dim(0), ctx.inputs[0].dim(1)};
  for (int i = 0; i < k; ++i) {
    const ChainFactor& f = factors[static_cast<size_t>(i)];
    check_same(op, {&x, &f.t});
    if (f.t.rank() != 2)
      throw ShapeError(std::string(op) + ": factor " + std::to_string(i + 1) + " must be 2-d, got " + f.t.desc());
    const int64_t r = f.transposed ? f.t.dim(1) : f.t.dim(0), c = f.transposed ? f.t.dim(0) : f.t.dim(1);
    if (r != dims[i + 1])
      throw ShapeError(std::string(op) + ": dims do not chain: " + chain_desc(x, factors, static_cast<size_t>(i) + 1));
    dims[i + 2] = c;
    ctx.inputs[i + 1] = f.t;
    ctx.tr[i + 1] = f.transposed;
    if (f.bias.defined()) {
      check_same(op, {&x, &f.bias});
      if (f.bias.numel() != c || f.bias.rank() != 1)
        throw ShapeError(std::string(op) + ": bias of factor " + std::to_string(i + 1) + " is " + f.bias.desc() +
                         ", expected [" + std::to_string(c) + "]");
      ctx.bias[i + 1] = f.bias;
      if (ctx.first_bias < 0) ctx.first_bias = i + 1;
    }
  }
  int sb = -1, se = -1;  // span in chain indices
  if (probe && probe->span_begin >= 0) {
    if (probe->span_begin >= probe->span_end || probe->span_end > k)
      throw ShapeError(std::string(op) + ": probe span [" + std::to_string(probe->span_begin) + ", " +
                       std::to_string(probe->span_end) + ") is not inside " + std::to_string(k) + " factors");
    sb = probe->span_begin + 1;
    se = probe->span_end + 1;
  }
  ctx.span_begin = sb;
  ctx.span_end = se;

  auto leaf = [&](int i) {
    PNode* n = ctx.new_node();
    n->leaf = i;
    n->value = ctx.inputs[i];
    n->tr = i > 0 && factors[static_cast<size_t>(i - 1)].transposed;
    n->rows = dims[i];
    n->cols = dims[i + 1];
    n->needs = grad_enabled() && needs_grad(i == 0 ? x : ctx.inputs[i]);
    return n;
  };
  // Blocks: each chain matrix, except that the span (if any) is one block planned alone.
  ChainPlan pl;  // on the stack, reused for the span's plan and the outer one
  PNode* blocks[kMaxMatrices];
  int64_t bdims[kMaxMatrices + 1] = {dims[0]};
  int nb = 0;
  for (int i = 0; i <= k; ++i) {
    if (i == sb) {
      PNode* inner[kMaxMatrices];
      int64_t idims[kMaxMatrices + 1] = {dims[sb]};
      for (int j = sb; j < se; ++j) {
        inner[j - sb] = leaf(j);
        idims[j - sb + 1] = dims[j + 1];
      }
      plan(idims, se - sb, pl);
      PNode* span = build(pl, inner, 0, se - sb - 1, ctx);
      span->is_span = true;
      blocks[nb] = span;
      bdims[++nb] = dims[se];
      i = se - 1;
      continue;
    }
    blocks[nb] = leaf(i);
    bdims[++nb] = dims[i + 1];
  }
  plan(bdims, nb, pl);
  ctx.root = build(pl, blocks, 0, nb - 1, ctx);
  return tree;
}

int64_t chain_cols(const ChainTree& t) { return t.root->cols; }

size_t chain_inputs(const std::vector<ChainFactor>& factors, Tensor* out, size_t at) {
  for (const ChainFactor& f : factors) out[at++] = f.t;
  for (const ChainFactor& f : factors)
    if (f.bias.defined()) out[at++] = f.bias;
  return at;
}

void chain_forward(ChainTree& t, const Tensor& out, double alpha, double beta) {
  // The root is an inner node (k ≥ 1); its product goes straight to out, not into the tree.
  const PNode* root = t.root;
  ChainProbe* probe = t.probe;
  const int sb = t.span_begin, se = t.span_end;
  double flops = 0;
  forward(*t.root, &flops, &out, alpha, beta);
  if (t.first_bias >= 0) {  // out[rows, d_k] += alpha · 1·c, c = hbar[k] (the biases' row)
    const int fb = t.first_bias;
    // Rank-1 vectors act as [1, d] rows in gemm2d. (No views of the biases: a view copies
    // the parameter's name, which would take heap.)
    t.hbar[fb] = t.bias[fb];
    for (int i = fb + 1; i <= t.k; ++i) {  // hbar[i][d_i] = hbar[i−1] · op(F_i) (+ b_i)
      const Tensor& f = t.inputs[i];
      const int64_t d = t.tr[i] ? f.dim(0) : f.dim(1);
      t.hbar[i] = Tensor::empty({d}, f.dtype(), f.device());
      // As the column op(F_i)ᵀ·hbar[i−1]ᵀ: the CPU backend runs one-row products as GEMVs
      // (decoding), which round differently; a column keeps this on the GEMM.
      Tensor col = t.hbar[i].view({d, 1});
      detail::gemm2d(f, !t.tr[i], t.hbar[i - 1], true, col);
      flops += 2.0 * static_cast<double>(f.numel());
      if (t.bias[i].defined()) backend(f).axpy(1.0, t.bias[i], t.hbar[i]);
    }
    const int64_t rows = out.dim(0);
    t.ones = Tensor::empty({rows, 1}, out.dtype(), out.device());
    backend(out).fill(t.ones, 1.0);
    Tensor o = out;
    detail::gemm2d(t.ones, false, t.hbar[t.k], false, o, alpha, 1.0);  // out += alpha · ones[rows,1]·c[1,d_k]
    flops += 2.0 * static_cast<double>(out.numel());
  }
  if (probe) {
    probe->order.clear();  // keeps its capacity: rebuilding the same order takes no heap
    order_str(
        *root,
        [](int i, std::string& s) {
          if (i == 0) s += 'x';
          else s += 'F' + std::to_string(i);  // short: no heap (small-string buffer)
        },
        probe->order);
    probe->forward_flops = flops;
    probe->backward_flops = 0;
    probe->grad_product = Tensor();
    probe->grad_factors.assign(sb >= 0 ? static_cast<size_t>(se - sb) : 0, Tensor());
    const bool span_bias = sb >= 0 && t.first_bias >= 0 && t.first_bias < se;
    probe->grad_factors_bias.assign(span_bias ? static_cast<size_t>(se - sb) : 0, Tensor());
    probe->grad_biases.assign(span_bias ? static_cast<size_t>(se - sb) : 0, Tensor());
    probe->beta = span_bias ? t.hbar[se - 1] : Tensor();
    if (sb >= 0) {
      const PNode* s = find_span(*root);  // a direct block of the root's tree
      probe->product = s->leaf >= 0 ? (s->tr ? transpose(s->value, 0, 1) : s->value) : s->value;
    }
  }
}

// The affine part's backward: gc[1, d_i] = ∂L/∂hbar[i], from gc[1, d_k] = alpha · 1ᵀ·g down to
// the first bias. ∂L/∂b_i = gc_i, ∂L/∂op(F_i) += hbar[i−1]ᵀ·gc_i, gc_{i−1} = gc_i·op(F_i)ᵀ.
void bias_backward(const ChainTree& t, const Tensor& g, double alpha, double* flops) {
  const int fb = t.first_bias;
  ChainProbe* probe = t.probe;
  const int sb = t.span_begin, se = t.span_end;
  auto in_span = [&](int i) { return probe && sb >= 0 && i >= sb && i < se && !probe->grad_biases.empty(); };
  bool any = false;
  for (int i = fb; i <= t.k; ++i) any |= needs_grad(t.inputs[i]) || (t.bias[i].defined() && needs_grad(t.bias[i]));
  if (!any) return;
  Tensor gc = Tensor::empty({g.dim(1)}, g.dtype(), g.device());
  detail::gemm2d(t.ones, true, g, false, gc, alpha);  // gc[d_k] = alpha · onesᵀ[1,rows] · g[rows, d_k]
  *flops += 2.0 * static_cast<double>(g.numel());
  for (int i = t.k;; --i) {
    if (t.bias[i].defined() && needs_grad(t.bias[i])) {  // ∂L/∂b_i = gc_i
      if (in_span(i)) probe->grad_biases[static_cast<size_t>(i - sb)] = gc;
      accumulate(t.bias[i], gc);
    }
    if (i == fb) break;
    const Tensor& f = t.inputs[i];
    if (needs_grad(f)) {  // ∂L/∂F_i: hbar[i−1]ᵀ·gc [d_{i−1}, d_i], or its transpose when F_i is stored so
      Tensor gf = Tensor::empty(f.shape(), f.dtype(), f.device());
      if (t.tr[i]) detail::gemm2d(gc, true, t.hbar[i - 1], false, gf);
      else detail::gemm2d(t.hbar[i - 1], true, gc, false, gf);
      *flops += 2.0 * static_cast<double>(f.numel());
      if (in_span(i)) probe->grad_factors_bias[static_cast<size_t>(i - sb)] = gf;
      accumulate(f, gf);
    }
    Tensor gp = Tensor::empty({t.hbar[i - 1].numel()}, g.dtype(), g.device());
    Tensor gp_col = gp.view({gp.numel(), 1});      // a column, as in the forward
    detail::gemm2d(f, t.tr[i], gc, true, gp_col);  // gc_{i−1}[d_{i−1}] = gc_i · op(F_i)ᵀ
    *flops += 2.0 * static_cast<double>(f.numel());
    gc = gp;
  }
}

void chain_backward(const ChainTree& t, const Tensor& g, double alpha, const Tensor* gx, double gx_beta) {
  double flops = 0;
  if (t.first_bias >= 0) bias_backward(t, g, alpha, &flops);
  backward(*t.root, g, t, &flops, alpha, gx, gx_beta);
  if (t.probe) t.probe->backward_flops += flops;
}

}  // namespace detail

// y[..., d_k] = x[..., d_0] · op(F_1) ⋯ op(F_k)
Tensor chain_matmul(const Tensor& x, const std::vector<ChainFactor>& factors, ChainProbe* probe) {
  std::shared_ptr<detail::ChainTree> tree = detail::chain_plan("chain_matmul", x, factors, probe);
  const int64_t rows = tree->inputs[0].dim(0), cols = detail::chain_cols(*tree);
  Tensor y = detail::empty_as(x, detail::with_last_dim(x.shape(), cols));
  detail::chain_forward(*tree, y.view({rows, cols}), 1.0, 0.0);
  Tensor rec_inputs[2 * kMaxChainFactors + 1] = {x};  // x, the factors, their biases (no vector: no heap)
  const size_t n_in = detail::chain_inputs(factors, rec_inputs, 1);
  record("chain_matmul", y, std::span<const Tensor>(rec_inputs, n_in),
         [tree, rows, cols](const Tensor& gy) {  // gy[..., d_k]
           detail::chain_backward(*tree, gy.view({rows, cols}), 1.0, nullptr);
         });
  return y;
}

}  // namespace cg::ops
