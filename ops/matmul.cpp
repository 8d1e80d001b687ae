// ops/matmul.cpp — matmul (batched, transpose flags) and linear.
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

// A matrix operand: the tensor, whether op() transposes it, and its batch stride
// (0 = the same matrix for every batch entry).
struct Operand {
  Tensor t;
  bool tr;
  int64_t stride;
};

// C_b[m,n] = op(A_b)·op(B_b) for b < batch (A, B, C are [batch·rows, cols] tensors; a
// zero stride shares the matrix). A zero C stride sums the entries into one matrix, in order.
void gemm_batched(const Operand& a, const Operand& b, const Tensor& c, int64_t c_stride, int64_t m, int64_t n,
                  int64_t k, int64_t batch, double beta) {
  auto view = [batch](const Tensor& t, int64_t rows, int64_t cols, bool tr, int64_t stride) {
    MatView v = mat(t).sub(0, tr ? cols : rows, 0, tr ? rows : cols).t(tr);
    if (stride != 0) {
      v.batch = batch;
      v.stride = stride;
    }
    return v;
  };
  backend(c).gemm(view(a.t, m, k, a.tr, a.stride), view(b.t, k, n, b.tr, b.stride), view(c, m, n, false, c_stride), 1.0,
                  beta);
}

}  // namespace

// y[...,M,N] = op(a)[...,M,K] · op(b)[...,K,N]
Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::check_weight("matmul", a, b);  // b may be a bf16-stored frozen weight; y has a's dtype
  detail::check_rank("matmul", a, 2, 4, "a");
  detail::check_rank("matmul", b, 2, 4, "b");
  const int64_t M = ta ? a.dim(-1) : a.dim(-2), Ka = ta ? a.dim(-2) : a.dim(-1);
  const int64_t Kb = tb ? b.dim(-1) : b.dim(-2), N = tb ? b.dim(-2) : b.dim(-1);
  if (Ka != Kb)
    throw ShapeError("matmul: inner dims differ: a " + a.desc() + (ta ? "ᵀ" : "") + " · b " + b.desc() +
                     (tb ? "ᵀ" : "") + " (" + std::to_string(Ka) + " vs " + std::to_string(Kb) + ")");
  const int64_t K = Ka;
  // Leading (batch) dims: equal when both have them; a rank-2 operand is shared.
  Shape lead;
  if (a.rank() > 2 && b.rank() > 2) {
    if (a.rank() != b.rank()) throw ShapeError("matmul: batch ranks differ: " + a.desc() + " and " + b.desc());
    for (int i = 0; i < a.rank() - 2; ++i)
      if (a.dim(i) != b.dim(i)) throw ShapeError("matmul: batch dims differ: " + a.desc() + " and " + b.desc());
  }
  const Tensor& big = a.rank() >= b.rank() ? a : b;
  for (int i = 0; i < big.rank() - 2; ++i) lead.push(big.dim(i));
  const int64_t batch = lead.numel();
  Shape ys = lead;
  ys.push(M);
  ys.push(N);
  Tensor y = detail::empty_as(a, ys);
  const int64_t sa = a.rank() > 2 ? M * K : 0, sb = b.rank() > 2 ? K * N : 0;

  // Forward. A batched a with a shared b and no transpose is one tall GEMM.
  if (sb == 0 && !ta) gemm_batched({a, false, 0}, {b, tb, 0}, y, 0, batch * M, N, K, 1, 0.0);
  else gemm_batched({a, ta, sa}, {b, tb, sb}, y, M * N, M, N, K, batch, 0.0);

  record("matmul", y, {a, b}, [a, b, ta, tb, M, N, K, batch, sa, sb](const Tensor& gy) {  // gy[...,M,N]
    const int64_t sy = M * N;
    if (needs_grad(a)) {
      Tensor ga = detail::empty_like(a);
      if (!ta) {  // ga[M,K] = gy · op(b)ᵀ
        if (sb == 0) gemm_batched({gy, false, 0}, {b, !tb, 0}, ga, 0, batch * M, K, N, 1, 0.0);
        else gemm_batched({gy, false, sy}, {b, !tb, sb}, ga, sa, M, K, N, batch, 0.0);
      } else {  // ga[K,M] = op(b) · gyᵀ
        gemm_batched({b, tb, sb}, {gy, true, sy}, ga, sa, K, M, N, batch, 0.0);
      }
      accumulate(a, ga);
    }
    if (needs_grad(b)) {
      Tensor gb = detail::empty_like(b);
      if (!tb) {  // gb[K,N] = op(a)ᵀ · gy
        if (sb == 0 && !ta) gemm_batched({a, true, 0}, {gy, false, 0}, gb, 0, K, N, batch * M, 1, 0.0);
        else gemm_batched({a, !ta, sa}, {gy, false, sy}, gb, sb, K, N, M, batch, 0.0);
      } else {  // gb[N,K] = gyᵀ · op(a)
        if (sb == 0 && !ta) gemm_batched({gy, true, 0}, {a, false, 0}, gb, 0, N, K, batch * M, 1, 0.0);
        else gemm_batched({gy, true, sy}, {a, ta, sa}, gb, sb, N, K, M, batch, 0.0);
      }
      accumulate(b, gb);
    }
  });
  return y;
}

// y[...,O] = x[...,I] · w[O,I]ᵀ
Tensor linear(const Tensor& x, const Tensor& w) {
  detail::check_rank("linear", w, 2, 2, "weight");
  if (x.rank() < 1 || x.dim(-1) != w.dim(1))
    throw ShapeError("linear: input " + x.desc() + " does not fit weight " + w.desc() + " (need [..., " +
                     std::to_string(w.dim(1)) + "])");
  if (x.rank() == 1) {
    Tensor y = matmul(reshape(x, {1, x.dim(0)}), w, false, true);
    return reshape(y, {w.dim(0)});
  }
  return matmul(x, w, false, true);
}

}  // namespace cg::ops
