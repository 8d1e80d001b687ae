// engine/backend.h — the one table of kernels every device implements. Ops call only
// this interface (through backend(t)); the tensor's device picks the implementation:
// engine/cpu (OpenBLAS + OpenMP) or engine/cuda (cuBLAS + kernels). Kernels write into
// outputs the caller allocated; none of them allocates tensors or records on the tape.
//
// Every kernel must be deterministic: the same inputs give the same bits whatever the
// thread count (no atomics, no thread-count-dependent reduction order).
#pragma once
#include <cstdint>
#include <string>

#include "engine/gemm.h"
#include "engine/tensor.h"

#ifdef __CUDACC__
#define CG_HD __host__ __device__
#else
#define CG_HD
#endif

namespace cg {

enum class UnaryOp {
  Neg,        // -x
  Exp,        // e^x
  Log,        // ln x
  Sqrt,       // √x
  Silu,       // x·σ(x)
  Gelu,       // tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
  Relu,       // max(x, 0)
  AddScalar,  // x + s
  MulScalar,  // x · s
  PowScalar,  // x^s
};
enum class BinaryOp { Add, Sub, Mul, Div };

// Counters kept by the backend base class, for tests and benchmarks.
struct BackendStats {
  int64_t gemm_calls = 0;
  double gemm_flops = 0;      // 2·m·n·k per product
  int64_t bytes_in_use = 0;   // tensor memory handed out and not yet released
  int64_t peak_bytes = 0;     // high-water mark of bytes_in_use (reset_peak() to restart)
  int64_t system_allocs = 0;  // allocations the backend's cache could not serve
  void reset_peak() { peak_bytes = bytes_in_use; }
};

// The precision of every f32 GEMM on every backend (--precision): F32 (the default) or
// BF16, bfloat16 inputs with f32 accumulation (engine/gemm.h). Everything else — weights,
// optimizer state, norms, softmax, loss — stays f32. Process-wide, set once by a tool.
void set_gemm_precision(GemmPrecision p);
GemmPrecision gemm_precision();
// How the CPU backend runs bf16 GEMMs: natively (oneDNN's bf16 matmul, on a CPU with bf16
// dot products or AMX), or by rounding the inputs to bf16 and multiplying with OpenBLAS
// (same math, no speed-up). A fixed property of the build and the CPU; the text says which.
bool cpu_bf16_gemm_native();
std::string cpu_bf16_gemm_path();

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- memory ------------------------------------------------------------------------
  // Blocks are cached by size: after the first step of a loop that allocates the same
  // shapes each time, alloc is served from the cache. Implementations keep stats().
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p, size_t bytes) = 0;
  virtual void to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // same device
  virtual void fill(Tensor& t, double value) = 0;
  virtual void synchronize() {}

  // ---- linear algebra ----------------------------------------------------------------
  // For every batch entry i: C_i = alpha · op(A_i) · op(B_i) + beta · C_i, with op(A) m×k,
  // op(B) k×n and C m×n derived from the views and checked (a ShapeError names all three).
  // The product has as many entries as the largest batch count; a view with batch 1 is the
  // same matrix for every entry, and a C with batch 1 under a batched A or B receives the
  // sum, C = alpha · Σ_i op(A_i)·op(B_i) + beta · C, added in order of i. f32 products run
  // at gemm_precision() (above). Counts calls/FLOPs.
  void gemm(const MatView& a, const MatView& b, const MatView& c, double alpha = 1.0, double beta = 0.0) {
    const GemmArgs g = gemm_args(a, b, c, alpha, beta, gemm_precision());
    stats_.gemm_calls += 1;
    stats_.gemm_flops += 2.0 * static_cast<double>(g.m) * g.n * g.k * g.batch;
    do_gemm(g);
  }
  BackendStats& stats() { return stats_; }

  // ---- elementwise -------------------------------------------------------------------
  // out = a ∘ b with numpy broadcasting (shapes right-aligned to rank 4; out has the
  // broadcast shape).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out = sum of x over the dims where out has size 1 and x does not (out's shape is x's
  // with some dims reduced to 1, right-aligned). The backward of broadcasting; sum/mean.
  virtual void sum_to(const Tensor& x, Tensor& out) = 0;
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& y, double s) = 0;
  // gx = f'(x) · gy  (overwrites gx).
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& gy, Tensor& gx, double s) = 0;
  // y += alpha · x  (same shape).
  virtual void axpy(double alpha, const Tensor& x, Tensor& y) = 0;
  // Σ x², accumulated in double, in a fixed order.
  virtual double sum_squares(const Tensor& x) = 0;
  // Copies a 4-d box of `shape` elements between strided layouts (strides in elements);
  // dst += src when accumulate. Transpose, slice, concat and their backwards use it.
  virtual void copy_box(DType dt, const void* src, const int64_t src_strides[4], void* dst,
                        const int64_t dst_strides[4], const int64_t shape[4], bool accumulate) = 0;

  // ---- neural-net kernels (rows = all dims but the last) ----------------------------
  // y = softmax(x) (or log-softmax) over the last dim. If causal_tq > 0, row r sits at
  // position p = r % causal_tq + causal_offset and columns c > p are masked out.
  virtual void softmax(const Tensor& x, Tensor& y, bool log, int64_t causal_tq, int64_t causal_offset) = 0;
  // gx = y·(gy − Σ gy·y) for softmax, gx = gy − e^y·Σ gy for log-softmax (overwrites).
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) = 0;
  // y = x · rstd · w with rstd = 1/√(mean(x²) + eps) per row; rstd[rows] is saved.
  virtual void rmsnorm(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, double eps) = 0;
  // gx, gw may be null; gx is overwritten, gw accumulated (+=).
  virtual void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& gy, Tensor* gx,
                                Tensor* gw) = 0;
  // y = (x − mean) · rstd · w + b per row; mean[rows], rstd[rows] are saved.
  virtual void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                         double eps) = 0;
  // gx overwritten; gw, gb accumulated; any may be null.
  virtual void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                  const Tensor& gy, Tensor* gx, Tensor* gw, Tensor* gb) = 0;
  // Rotary embedding, rotate-half convention, on x[B,T,H,D]: for i < D/2 at position
  // p = pos_offset + t, or p = positions[b,t] when positions (i32 [B,T], on x's device,
  // values ≥ 0) is given, angle a = p · theta^(−2i/D):
  //   y[i] = x[i]·cos a − x[i+D/2]·sin a,  y[i+D/2] = x[i+D/2]·cos a + x[i]·sin a.
  // inverse rotates by −a (the backward).
  virtual void rope(const Tensor& x, Tensor& y, int64_t pos_offset, double theta, bool inverse,
                    const Tensor* positions) = 0;
  // out[n,:] = table[ids[n],:]   (ids i32, checked in range by the op)
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  // gtable[ids[n],:] += gy[n,:]  in token order (deterministic).
  virtual void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) = 0;
  // Per row: loss[r] = logsumexp(logits[r]) − logits[r, t[r]], lse[r] saved; rows whose
  // target is negative are ignored (loss 0).
  virtual void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& lse) = 0;
  // glogits[r] = scale·(softmax(logits[r]) − onehot(t[r])), zero for ignored rows.
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& lse, const Tensor& targets, double scale,
                                      Tensor& glogits) = 0;
  // y = x · keep / (1 − p), keep = hash(seed, i) ≥ p: a counter-based mask, so the
  // backward (the same call on gy) and every device draw the same mask.
  virtual void dropout(const Tensor& x, Tensor& y, double p, uint64_t seed) = 0;

  // ---- optimizers (in place on flat buffers) -----------------------------------------
  // AdamW with decoupled weight decay; step counts from 1.
  virtual void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                     double eps, double weight_decay, int64_t step) = 0;
  // SGD with optional momentum (buf may be undefined when momentum == 0) and decay.
  virtual void sgd(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, double weight_decay) = 0;

 protected:
  // g is checked; views with batch 1 have stride 0. Implementations: engine/cpu/cpu_gemm.cpp,
  // engine/cuda/cuda_gemm.cu.
  virtual void do_gemm(const GemmArgs& g) = 0;

 private:
  BackendStats stats_;
};

// The backend of a device: CPU always; CUDA when built with it and a device is present,
// otherwise a DeviceError saying which of the two is missing.
Backend& backend_for(Device d);
inline Backend& backend(const Tensor& t) { return backend_for(t.device()); }
bool cuda_available();  // built with CUDA and a device is present

// Allow TF32 tensor-core math for f32 GEMMs on the CUDA backend (off by default: f32
// GEMMs then keep full f32 precision). Applies now and to a backend created later; does
// nothing in a build without CUDA or on a machine without a device.
void set_tf32(bool on);

// Threads used by the CPU backend (OpenMP and OpenBLAS); results do not depend on it.
void set_num_threads(int n);
int num_threads();

// The dropout mask: keep element i iff dropout_keep(seed, i, p). Shared by all backends.
CG_HD inline uint64_t dropout_hash(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
CG_HD inline bool dropout_keep(uint64_t seed, uint64_t i, double p) {
  return static_cast<double>(dropout_hash(seed, i) >> 11) * 0x1.0p-53 >= p;
}

}  // namespace cg
