// ops/attention.cpp — causal scaled dot-product attention with grouped KV heads.
//
// With H = KV·G query heads, the G query heads of KV head j are contiguous in q[B,H,Tq,D],
// so q viewed as [B·KV, G·Tq, D] lines up one batch entry per KV head. Every product is
// then one strided-batched GEMM over B·KV, and the score tensor [B·KV, G·Tq, Tk] is
// exactly [B,H,Tq,Tk]: no KV head is ever repeated in memory, and dK, dV sum over the
// group inside the GEMM.
#include <cmath>

#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {

// out[B,H,Tq,D] = softmax(q·kᵀ/√D + causal mask) · v
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, int64_t kv_len) {
  detail::check_same("attention", {&q, &k, &v});
  detail::check_float("attention", q);
  detail::check_rank("attention", q, 4, 4, "q [B,H,Tq,D]");
  detail::check_rank("attention", k, 4, 4, "k [B,KV,Tk,D]");
  if (k.shape() != v.shape())
    throw ShapeError("attention: k " + k.desc() + " and v " + v.desc() + " differ");
  const int64_t B = q.dim(0), H = q.dim(1), Tq = q.dim(2), D = q.dim(3);
  const int64_t KV = k.dim(1), Tcap = k.dim(2);
  if (k.dim(0) != B || k.dim(3) != D || KV == 0 || H % KV != 0)
    throw ShapeError("attention: q " + q.desc() + " does not fit k " + k.desc() +
                     " (need equal B and D, and H a multiple of KV)");
  const int64_t Tk = kv_len < 0 ? Tcap : kv_len;
  if (Tk > Tcap || Tk < 1) throw ShapeError("attention: kv_len " + std::to_string(kv_len) + " outside k " + k.desc());
  if (causal && Tk < Tq) throw ShapeError("attention: causal needs kv_len ≥ Tq, got q " + q.desc() + ", kv_len " + std::to_string(Tk));
  const int64_t G = H / KV, BK = B * KV, GT = G * Tq;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const DType dt = q.dtype();
  Backend& be = backend(q);

  Tensor s = detail::empty_as(q, {B, H, Tq, Tk});  // s[BK, GT, Tk] = scale · q'·kᵀ
  be.gemm(dt, false, true, GT, Tk, D, scale, q.raw(), D, GT * D, k.raw(), D, Tcap * D, 0.0, s.raw(), Tk, GT * Tk, BK);
  Tensor p = detail::empty_like(s);  // p = softmax(s), row r at position r % Tq + (Tk − Tq)
  be.softmax(s, p, false, causal ? Tq : 0, causal ? Tk - Tq : 0);
  Tensor out = detail::empty_like(q);  // out[BK, GT, D] = p · v
  be.gemm(dt, false, false, GT, D, Tk, 1.0, p.raw(), Tk, GT * Tk, v.raw(), D, Tcap * D, 0.0, out.raw(), D, GT * D, BK);

  record("attention", out, {q, k, v}, [q, k, v, p, Tcap, Tk, GT, BK, D, scale](const Tensor& gy) {  // gy[B,H,Tq,D]
    Backend& b = backend(q);
    const DType t = q.dtype();
    if (needs_grad(v)) {  // gv[BK, Tk, D] = pᵀ · gy  (sums the G heads of the group)
      // Rows at or past Tk (an unused cache tail) must read as zero; the GEMM writes the rest.
      Tensor gv = Tk == Tcap ? detail::empty_like(v) : Tensor::zeros(v.shape(), t, v.device());
      b.gemm(t, true, false, Tk, D, GT, 1.0, p.raw(), Tk, GT * Tk, gy.raw(), D, GT * D, 0.0, gv.raw(), D, Tcap * D, BK);
      accumulate(v, gv);
    }
    if (!needs_grad(q) && !needs_grad(k)) return;
    Tensor gp = detail::empty_like(p);  // gp[BK, GT, Tk] = gy · vᵀ
    b.gemm(t, false, true, GT, Tk, D, 1.0, gy.raw(), D, GT * D, v.raw(), D, Tcap * D, 0.0, gp.raw(), Tk, GT * Tk, BK);
    Tensor gs = detail::empty_like(p);  // gs = softmax_backward(p, gp)
    b.softmax_backward(p, gp, gs, false);
    if (needs_grad(q)) {  // gq[BK, GT, D] = scale · gs · k
      Tensor gq = detail::empty_like(q);
      b.gemm(t, false, false, GT, D, Tk, scale, gs.raw(), Tk, GT * Tk, k.raw(), D, Tcap * D, 0.0, gq.raw(), D, GT * D, BK);
      accumulate(q, gq);
    }
    if (needs_grad(k)) {  // gk[BK, Tk, D] = scale · gsᵀ · q'
      Tensor gk = Tk == Tcap ? detail::empty_like(k) : Tensor::zeros(k.shape(), t, k.device());
      b.gemm(t, true, false, Tk, D, GT, scale, gs.raw(), Tk, GT * Tk, q.raw(), D, GT * D, 0.0, gk.raw(), D, Tcap * D, BK);
      accumulate(k, gk);
    }
  });
  return out;
}

}  // namespace cg::ops
