// ops/attention.cpp — causal scaled dot-product attention with grouped KV heads, and
// kv_append, which writes new keys and values into a KV cache for it.
//
// With H = KV·G query heads, the G query heads of KV head j are contiguous in q[B,H,Tq,D],
// so q viewed as [B·KV, G·Tq, D] lines up one batch entry per KV head. Every product is
// then a strided-batched GEMM over B·KV, and the score tensor [B·KV, G·Tq, Tk] is exactly
// [B,H,Tq,Tk]: no KV head is ever repeated in memory, and dK, dV sum over the group inside
// the GEMM.
//
// On the CPU, causal attention skips the masked half. The query rows of each head are cut
// into blocks of kCausalBlock, and a block's products use only the keys its last row can
// see. The score GEMMs then cover a staircase instead of the whole Tq×Tk square, about 5/8
// of it for four blocks. Score entries right of a block's keys are never computed and
// never read: softmax looks only at each row's unmasked columns and writes 0 to the
// others.
//
// Packed rows (segments given): before the causal softmax, the scores of keys that precede
// the query's own sample are set to −∞ (block-diagonal causal). Those probabilities are then
// exact zeros, so the backward needs nothing more: softmax_backward gives zero score
// gradients wherever p is zero. On the GPU the many smaller launches cost more than they save: on an H200 a
// `base` pretraining step went from 62 to 73 ms. So CUDA keeps one block.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

constexpr int64_t kCausalBlock = 64;  // query rows per block of the causal staircase

// Rows [row, row + rows) of the [G·Tq] row axis, which see keys [0, keys).
struct Block {
  int64_t row, rows, keys;
};
struct Blocks {
  static constexpr int64_t kMax = 512;  // blocks per batch entry (G heads × blocks per head)
  Block b[kMax];
  int64_t n = 0;
};

// The blocks of one batch entry. Staircase with one query per head (decoding a token): one
// block per head, so every product has one row (the CPU backend runs it as a GEMV). No
// staircase, Tq within one block, or more than kMax heads per KV head: a single block of
// all G·Tq rows and all Tk keys. Staircase: for each head g and each block of its Tq rows
// [t0, t1), the keys up to the last row's position, t1 − 1 + (Tk − Tq). Blocks have
// kCausalBlock rows, or more when a head would otherwise need more than kMax / G of them
// (very long sequences).
void make_blocks(bool staircase, int64_t G, int64_t Tq, int64_t Tk, Blocks& out) {
  out.n = 0;
  if (staircase && Tq == 1 && G <= Blocks::kMax) {  // one query (decoding): a one-row block per head
    for (int64_t g = 0; g < G; ++g) out.b[out.n++] = {g, 1, Tk};
    return;
  }
  if (!staircase || Tq <= kCausalBlock || G > Blocks::kMax) {
    out.b[out.n++] = {0, G * Tq, Tk};
    return;
  }
  const int64_t per_head_max = Blocks::kMax / G;
  const int64_t rows = std::max(kCausalBlock, (Tq + per_head_max - 1) / per_head_max);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t t0 = 0; t0 < Tq; t0 += rows) {
      const int64_t t1 = std::min(Tq, t0 + rows);
      out.b[out.n++] = {g * Tq + t0, t1 - t0, std::min(Tk, t1 + (Tk - Tq))};
    }
}

// The first n keys as an op-view [n, D] of km, the keys stored [Tcap, D] or, when kt, [D, Tcap].
MatView key_rows(const MatView& km, bool kt, int64_t D, int64_t n) {
  return kt ? km.sub(0, D, 0, n).t() : km.rows_from(0, n);
}

// Packed rows: a row's segment ids change only where a sample starts, so query t of the
// run [a, e) sees keys [a, t]; the causal softmax already hides keys > t, and this writes
// −∞ into the scores of keys [0, a) for the rows of every run with a > 0 (all heads at
// once: one strided box per run, its source one −∞ scalar with zero strides).
void mask_segments(Backend& be, Tensor& s, const Tensor& segments) {  // s[B,H,T,T]
  const Tensor sh = segments.to(Device::CPU);
  const int32_t* sg = sh.data<int32_t>();
  const int64_t B = s.dim(0), H = s.dim(1), T = s.dim(2);
  Tensor minus_inf = Tensor::empty({1}, s.dtype(), Device::CPU);
  if (s.dtype() == DType::F64) minus_inf.data<double>()[0] = -std::numeric_limits<double>::infinity();
  else minus_inf.data<float>()[0] = -std::numeric_limits<float>::infinity();
  minus_inf = minus_inf.to(s.device());
  const int64_t es = static_cast<int64_t>(dtype_size(s.dtype()));
  const int64_t zero[4] = {0, 0, 0, 0}, to[4] = {0, T * T, T, 1};  // (·, head, query, key) in s[b]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t a = 0, e = 0; a < T; a = e) {
      for (e = a + 1; e < T && sg[b * T + e] == sg[b * T + a];) ++e;
      if (a == 0) continue;
      const int64_t box[4] = {1, H, e - a, a};  // all heads, the run's queries, keys [0, a)
      be.copy_box(s.dtype(), minus_inf.raw(), zero, static_cast<char*>(s.raw()) + (b * H * T * T + a * T) * es, to, box,
                  false);
    }
}

}  // namespace

// out[B,H,Tq,D] = softmax(q·kᵀ/√D + causal mask [+ segment mask]) · v
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, int64_t kv_len, Keys keys,
                 const Tensor& segments) {
  detail::check_same("attention", {&q, &k, &v});
  detail::check_float("attention", q);
  detail::check_rank("attention", q, 4, 4, "q [B,H,Tq,D]");
  const bool kt = keys == Keys::Transposed;  // k[B,KV,D,Tk] instead of k[B,KV,Tk,D]
  detail::check_rank("attention", k, 4, 4, kt ? "k [B,KV,D,Tk]" : "k [B,KV,Tk,D]");
  detail::check_rank("attention", v, 4, 4, "v [B,KV,Tk,D]");
  const Shape k_rows = kt ? Shape{k.dim(0), k.dim(1), k.dim(3), k.dim(2)} : k.shape();
  if (k_rows != v.shape())
    throw ShapeError("attention: k " + k.desc() + (kt ? " (transposed)" : "") + " and v " + v.desc() + " differ");
  const int64_t B = q.dim(0), H = q.dim(1), Tq = q.dim(2), D = q.dim(3);
  const int64_t KV = v.dim(1), Tcap = v.dim(2);
  if (v.dim(0) != B || v.dim(3) != D || KV == 0 || H % KV != 0)
    throw ShapeError("attention: q " + q.desc() + " does not fit k " + k.desc() +
                     " (need equal B and D, and H a multiple of KV)");
  const int64_t Tk = kv_len < 0 ? Tcap : kv_len;
  if (Tk > Tcap || Tk < 1) throw ShapeError("attention: kv_len " + std::to_string(kv_len) + " outside k " + k.desc());
  if (causal && Tk < Tq)
    throw ShapeError("attention: causal needs kv_len ≥ Tq, got q " + q.desc() + ", kv_len " + std::to_string(Tk));
  if (segments.defined()) {
    if (segments.dtype() != DType::I32 || segments.shape() != Shape{B, Tq})
      throw ShapeError("attention: segments must be i32 [B,Tq] for q " + q.desc() + ", got " + segments.desc());
    if (!causal || Tk != Tq)
      throw ShapeError("attention: segments need causal attention over the row itself (kv_len = Tq), got q " +
                       q.desc() + ", kv_len " + std::to_string(Tk));
  }
  const int64_t G = H / KV, BK = B * KV, GT = G * Tq;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Backend& be = backend(q);

  const bool staircase = causal && q.device() == Device::CPU;
  Blocks bl;
  make_blocks(staircase, G, Tq, Tk, bl);

  // Every operand as BK matrices: q, out [GT, D]; v [Tcap, D]; s, p [GT, Tk]; k [Tcap, D],
  // or [D, Tcap] when transposed (key_rows gives the first n keys as [n, D] either way).
  const MatView qm = mat(q, BK, GT, D), vm = mat(v, BK, Tcap, D);
  const MatView km = kt ? mat(k, BK, D, Tcap) : mat(k, BK, Tcap, D);
  Tensor s = detail::empty_as(q, {B, H, Tq, Tk});  // s[BK, GT, Tk] = scale · q'·kᵀ (each block's keys)
  const MatView sm = mat(s, BK, GT, Tk);
  for (int64_t i = 0; i < bl.n; ++i) {
    const Block& b = bl.b[i];
    be.gemm(qm.rows_from(b.row, b.rows), key_rows(km, kt, D, b.keys).t(), sm.sub(b.row, b.rows, 0, b.keys), scale);
  }
  if (segments.defined()) mask_segments(be, s, segments);  // −∞ left of each sample's first key
  Tensor p = detail::empty_like(s);  // p = softmax(s), row r at position r % Tq + (Tk − Tq); 0 where masked
  be.softmax(s, p, false, causal ? Tq : 0, causal ? Tk - Tq : 0);
  Tensor out = detail::empty_like(q);  // out[BK, GT, D] = p · v (each block's keys)
  const MatView pm = mat(p, BK, GT, Tk), om = mat(out, BK, GT, D);
  for (int64_t i = 0; i < bl.n; ++i) {
    const Block& b = bl.b[i];
    be.gemm(pm.sub(b.row, b.rows, 0, b.keys), vm.rows_from(0, b.keys), om.rows_from(b.row, b.rows));
  }

  record("attention", out, {q, k, v},
         [q, k, v, p, Tcap, Tk, GT, BK, D, scale, staircase, G, kt](const Tensor& gy) {  // gy[B,H,Tq,D]
           Backend& b = backend(q);
           const DType t = q.dtype();
           const MatView qm = mat(q, BK, GT, D), vm = mat(v, BK, Tcap, D);
           const MatView km = kt ? mat(k, BK, D, Tcap) : mat(k, BK, Tcap, D);
           const MatView pm = mat(p, BK, GT, Tk), gym = mat(gy, BK, GT, D);
           Blocks bl;  // the forward's blocks again (a few integers each; the closure stays small)
           make_blocks(staircase, G, GT / G, Tk, bl);
           // gk, gv sum over blocks: one block writes them (beta = 0) unless the cache has an
           // unused tail (rows ≥ Tk must read as zero) or several blocks add into them.
           const bool zero_first = Tk != Tcap || bl.n > 1;
           if (needs_grad(v)) {  // gv[BK, Tk, D] = pᵀ · gy  (sums the G heads of the group)
             Tensor gv = zero_first ? Tensor::zeros(v.shape(), t, v.device()) : detail::empty_like(v);
             for (int64_t i = 0; i < bl.n; ++i) {
               const Block& c = bl.b[i];
               b.gemm(pm.sub(c.row, c.rows, 0, c.keys).t(), gym.rows_from(c.row, c.rows),
                      mat(gv, BK, Tcap, D).rows_from(0, c.keys), 1.0, zero_first ? 1.0 : 0.0);
             }
             accumulate(v, gv);
           }
           if (!needs_grad(q) && !needs_grad(k)) return;
           // gp = gy · vᵀ (each block's keys; zeros right of them, where p is 0 too)
           Tensor gp = bl.n > 1 ? Tensor::zeros(p.shape(), t, p.device()) : detail::empty_like(p);
           for (int64_t i = 0; i < bl.n; ++i) {
             const Block& c = bl.b[i];
             b.gemm(gym.rows_from(c.row, c.rows), vm.rows_from(0, c.keys).t(),
                    mat(gp, BK, GT, Tk).sub(c.row, c.rows, 0, c.keys));
           }
           Tensor gs = detail::empty_like(p);  // gs = softmax_backward(p, gp): 0 wherever p is
           b.softmax_backward(p, gp, gs, false);
           if (needs_grad(q)) {  // gq[BK, GT, D] = scale · gs · k
             Tensor gq = detail::empty_like(q);
             for (int64_t i = 0; i < bl.n; ++i) {
               const Block& c = bl.b[i];
               b.gemm(mat(gs, BK, GT, Tk).sub(c.row, c.rows, 0, c.keys), key_rows(km, kt, D, c.keys),
                      mat(gq, BK, GT, D).rows_from(c.row, c.rows), scale);
             }
             accumulate(q, gq);
           }
           if (needs_grad(k)) {  // gk[BK, Tk, D] = scale · gsᵀ · q', or transposed gk[BK, D, Tk] = scale · q'ᵀ · gs
             Tensor gk = zero_first ? Tensor::zeros(k.shape(), t, k.device()) : detail::empty_like(k);
             const double beta = zero_first ? 1.0 : 0.0;
             for (int64_t i = 0; i < bl.n; ++i) {
               const Block& c = bl.b[i];
               const MatView gsc = mat(gs, BK, GT, Tk).sub(c.row, c.rows, 0, c.keys);
               if (kt)  // gk[D, keys] = scale · q'ᵀ · gs
                 b.gemm(qm.rows_from(c.row, c.rows).t(), gsc, mat(gk, BK, D, Tcap).sub(0, D, 0, c.keys), scale, beta);
               else  // gk[keys, D] = scale · gsᵀ · q'
                 b.gemm(gsc.t(), qm.rows_from(c.row, c.rows), mat(gk, BK, Tcap, D).rows_from(0, c.keys), scale, beta);
             }
             accumulate(k, gk);
           }
         });
  return out;
}

// cache_k[b, kv, d, pos + t] = k[b, t, kv, d];  cache_v[b, kv, pos + t, d] = v[b, t, kv, d]
void kv_append(Tensor& cache_k, Tensor& cache_v, const Tensor& k, const Tensor& v, int64_t pos) {
  detail::check_same("kv_append", {&cache_k, &cache_v, &k, &v});
  detail::check_rank("kv_append", k, 4, 4, "k [B,T,KV,D]");
  detail::check_rank("kv_append", cache_v, 4, 4, "cache_v [B,KV,S,D]");
  const int64_t B = k.dim(0), T = k.dim(1), KV = k.dim(2), D = k.dim(3), S = cache_v.dim(2);
  if (v.shape() != k.shape() || cache_v.shape() != Shape{B, KV, S, D} || cache_k.shape() != Shape{B, KV, D, S})
    throw ShapeError("kv_append: k " + k.desc() + ", v " + v.desc() + " do not fit the cache k " + cache_k.desc() +
                     " (need [B,KV,D,S]), v " + cache_v.desc() + " (need [B,KV,S,D])");
  if (pos < 0 || pos + T > S)
    throw ShapeError("kv_append: positions " + std::to_string(pos) + " .. " + std::to_string(pos + T - 1) +
                     " outside the cache capacity " + std::to_string(S));
  if (will_record({&k, &v})) throw Error("kv_append: the KV cache is not on the tape (call it inside a NoGrad scope)");
  const int64_t src[4] = {T * KV * D, KV * D, D, 1};  // (b, t, kv, d) in k and v
  const int64_t to_k[4] = {KV * D * S, 1, D * S, S};  // (b, t, kv, d) in cache_k from position pos
  const int64_t to_v[4] = {KV * S * D, D, S * D, 1};  // (b, t, kv, d) in cache_v from position pos
  const int64_t box[4] = {B, T, KV, D};
  Backend& be = backend(k);
  const int64_t es = static_cast<int64_t>(dtype_size(k.dtype()));
  be.copy_box(k.dtype(), k.raw(), src, static_cast<char*>(cache_k.raw()) + pos * es, to_k, box, false);
  be.copy_box(v.dtype(), v.raw(), src, static_cast<char*>(cache_v.raw()) + pos * D * es, to_v, box, false);
}

}  // namespace cg::ops
