// ops/ops.h — the differentiable ops. Each op checks its inputs (throwing ShapeError /
// DTypeError / DeviceError naming the op and shapes), runs its forward through the
// backend interface, and records one tape node whose closure computes the input
// gradients. Forward and backward of an op sit side by side in its .cpp file.
// ChainMatmul has its own header, ops/chain_matmul.h.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace cg::ops {

// ---- linear algebra ----------------------------------------------------------------------
// y[...,M,N] = op(a)[...,M,K] · op(b)[...,K,N]; op transposes the last two dims.
// b of rank 2 is shared by every leading index of a; otherwise leading dims must match.
// b may be stored in bf16 (a frozen weight, engine/dtype.h) with a f32, under
// --precision bf16 (the GEMM refuses it otherwise); y is then f32. Every other op
// refuses a bf16 tensor (DTypeError), except embedding's table.
Tensor matmul(const Tensor& a, const Tensor& b, bool ta = false, bool tb = false);
// y[...,O] = x[...,I] · w[O,I]ᵀ  (HF nn.Linear layout, no bias; w may be bf16, as in matmul)
Tensor linear(const Tensor& x, const Tensor& w);

// ---- elementwise (numpy broadcasting, rank ≤ 4) ----------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor pow_scalar(const Tensor& x, double s);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);  // tanh approximation
Tensor relu(const Tensor& x);

// ---- reductions --------------------------------------------------------------------------
Tensor sum(const Tensor& x, int axis, bool keepdim = false);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);
Tensor sum_all(const Tensor& x);   // shape [1]
Tensor mean_all(const Tensor& x);  // shape [1]

// ---- normalisation, softmax, losses ------------------------------------------------------
// Over the last dim. causal: x is [..., Tq, Tk] scores; query t sees keys ≤ t + (Tk − Tq).
Tensor softmax(const Tensor& x, bool causal = false);
Tensor log_softmax(const Tensor& x);
Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps = 1e-5);
Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, double eps = 1e-5);
// Mean over rows whose target ≥ 0 of −log softmax(logits)[target]; logits[..., V],
// targets i32 with logits' leading shape; a negative target marks a row to ignore.
// Returns shape [1].
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);

// ---- transformer pieces ------------------------------------------------------------------
// Rotary embedding (rotate-half) on x[B,T,H,D], positions pos_offset + t; or, when
// positions (i32 [B,T], ≥ 0, on x's device) is given, positions[b,t] (packed samples
// restart at 0).
Tensor rope(const Tensor& x, int64_t pos_offset = 0, double theta = 10000.0, const Tensor& positions = Tensor());
// out[..., D] = table[V,D][ids[...]]  (a bf16-stored table gives f32 rows)
Tensor embedding(const Tensor& table, const Tensor& ids);
// How attention's keys are laid out: as rows k[B,KV,Tk,D] like the values, or transposed
// k[B,KV,D,Tk] (a KV cache's layout: a query's scores are then one plain product q·k).
enum class Keys { Rows, Transposed };
// Scaled dot-product attention with grouped KV heads: q[B,H,Tq,D], k,v[B,KV,Tk,D] (k
// [B,KV,D,Tk] with Keys::Transposed) with H a multiple of KV (query head h reads KV head
// h / (H/KV)). Only the first kv_len positions of k and v are read (kv_len < 0: all of
// them), so a KV cache can be passed whole. causal: query t sees keys ≤ t + (kv_len − Tq).
// segments (i32 [B,T], needs causal and Tq = Tk = T): several samples packed in a row, a
// sample being a run of equal ids; query t sees only the keys s ≤ t of its own run
// (block-diagonal causal).
// Returns [B,H,Tq,D].
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true, int64_t kv_len = -1,
                 Keys keys = Keys::Rows, const Tensor& segments = Tensor());
// Writes new keys and values k,v[B,T,KV,D] into a KV cache at positions pos .. pos+T−1:
// keys into cache_k[B,KV,D,S] (transposed, see Keys), values into cache_v[B,KV,S,D]. The
// cache is written in place and is not on the tape: k and v must not need gradients.
void kv_append(Tensor& cache_k, Tensor& cache_v, const Tensor& k, const Tensor& v, int64_t pos);
// Zeroes each element with probability p and scales the rest by 1/(1−p); identity when
// !training or p == 0. The mask is a hash of (seed, index): reproducible on any device.
Tensor dropout(const Tensor& x, double p, uint64_t seed, bool training = true);

// ---- shape ops ---------------------------------------------------------------------------
Tensor reshape(const Tensor& x, const Shape& shape);                     // a view sharing storage
Tensor transpose(const Tensor& x, int d0, int d1);                       // copies (a view when no element moves)
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t length);  // copies
Tensor concat(const std::vector<Tensor>& xs, int axis);

}  // namespace cg::ops
