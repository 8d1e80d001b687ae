// engine/cuda/cuda_backend.h — the CUDA implementation of the backend table (private to
// engine/cuda): the CudaBackend class, the CUDA/cuBLAS error macros, launch helpers and the
// deterministic block reductions the kernels share. Only .cu files include it.
//
// Everything runs on one stream (stream_), cuBLAS included, so a block handed back to the
// caching allocator can be reused by the next kernel without a sync. Host copies
// (to_host/from_host) synchronise. Reductions never use atomics: every sum runs in a
// fixed order set by the sizes alone, so the same inputs give the same bits on every run.
// Kernels are split by family like the CPU side: cuda_memory.cu (allocator, copies),
// cuda_gemm.cu, cuda_elementwise.cu, cuda_nn.cu, cuda_optim.cu; cuda_backend.cu creates
// the backend.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/cuda_api.h"

namespace cg {

// Throws DeviceError naming the call, the CUDA/cuBLAS message and the source line.
[[noreturn]] void cuda_fail(const char* call, const char* msg, const char* file, int line);

#define CG_CUDA_CHECK(call)                                                                              \
  do {                                                                                                   \
    const cudaError_t cg_err_ = (call);                                                                  \
    if (cg_err_ != cudaSuccess) ::cg::cuda_fail(#call, cudaGetErrorString(cg_err_), __FILE__, __LINE__); \
  } while (0)

#define CG_CUBLAS_CHECK(call)                                                                                       \
  do {                                                                                                              \
    const cublasStatus_t cg_st_ = (call);                                                                           \
    if (cg_st_ != CUBLAS_STATUS_SUCCESS) ::cg::cuda_fail(#call, cublasGetStatusString(cg_st_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once, naming the kernel
// (with CG_CUDA_SYNC=1 in the environment it also waits for the kernel and reports its
// errors; for debugging).
void check_launch(const char* kernel);

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  Device device() const override { return Device::CUDA; }

  void* alloc(size_t bytes) override;
  void release(void* p, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill(Tensor& t, double value) override;
  void synchronize() override;

  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void sum_to(const Tensor& x, Tensor& out) override;
  void unary(UnaryOp op, const Tensor& x, Tensor& y, double s) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& gy, Tensor& gx, double s) override;
  void axpy(double alpha, const Tensor& x, Tensor& y) override;
  double sum_squares(const Tensor& x) override;
  void copy_box(DType dt, const void* src, const int64_t src_strides[4], void* dst, const int64_t dst_strides[4],
                const int64_t shape[4], bool accumulate) override;

  void softmax(const Tensor& x, Tensor& y, bool log, int64_t causal_tq, int64_t causal_offset) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) override;
  void rmsnorm(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, double eps) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& gy, Tensor* gx,
                        Tensor* gw) override;
  void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                 double eps) override;
  void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& gy,
                          Tensor* gx, Tensor* gw, Tensor* gb) override;
  void rope(const Tensor& x, Tensor& y, int64_t pos_offset, double theta, bool inverse,
            const Tensor* positions) override;
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) override;
  void cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& lse, const Tensor& targets, double scale,
                              Tensor& glogits) override;
  void dropout(const Tensor& x, Tensor& y, double p, uint64_t seed) override;

  void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2, double eps,
             double weight_decay, int64_t step) override;
  void sgd(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, double weight_decay) override;

  cudaStream_t stream() const { return stream_; }
  void set_tf32(bool on);
  int64_t malloc_count() const;
  const std::string& name() const { return name_; }

 protected:
  void do_gemm(const GemmArgs& g) override;  // cuda_gemm.cu

 private:
  int device_ = 0;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;

  // Caching allocator: blocks are never returned to CUDA while the process runs; a
  // released block goes to the free list of its rounded size and the next alloc of that
  // size takes it. Blocks are only reused in stream order, so no sync is needed.
  mutable std::mutex mem_mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // rounded size -> free blocks
  int64_t malloc_count_ = 0;
  void free_cached_locked();  // cudaFree every cached block (on out-of-memory)

  // Host staging for embedding_backward (reused so a step does not touch the heap).
  std::vector<int32_t> ids_host_, seg_host_;
  std::vector<int64_t> count_host_;
};

// The singleton (null when no device); defined in cuda_backend.cu.
CudaBackend* cuda_backend_instance(std::string* why);

// ---- launch helpers -------------------------------------------------------------------

constexpr int kThreads = 256;  // threads per block for elementwise kernels
// Grid cap; kernels loop grid-stride past it. A test build may lower it (-DCG_CUDA_MAX_GRID=5)
// to run every grid-stride loop through several turns.
#ifndef CG_CUDA_MAX_GRID
#define CG_CUDA_MAX_GRID 65535
#endif
constexpr int64_t kMaxGrid = CG_CUDA_MAX_GRID;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(b, kMaxGrid)));
}
inline unsigned grid_rows(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(rows, kMaxGrid)));
}
// Threads per block for a kernel that gives one block to each row of `cols` elements:
// a multiple of 32 chosen from the row length only (so reduction order is a function of
// the shape alone).
inline int row_threads(int64_t cols) {
  if (cols <= 64) return 32;
  if (cols <= 256) return 64;
  if (cols <= 1024) return 128;
  if (cols <= 4096) return 256;
  return 512;
}

// Calls f(T{}) with T = float or double for a float dtype; throws for i32.
template <class F>
void cuda_dispatch_float(DType dt, const char* what, F&& f) {
  if (dt == DType::F32) f(float{});
  else if (dt == DType::F64) f(double{});
  else throw DTypeError(std::string("cuda ") + what + ": needs a float tensor, got " + dtype_name(dt));
}

// A scratch device buffer from the caching allocator, handed back at scope end (safe
// while kernels that use it are still queued: reuse happens in stream order).
class Scratch {
 public:
  Scratch(CudaBackend& be, size_t bytes) : be_(be), bytes_(bytes), p_(be.alloc(bytes)) {}
  ~Scratch() { be_.release(p_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  CudaBackend& be_;
  size_t bytes_;
  void* p_;
};

// ---- device math (explicit float/double overloads: no fast-math, IEEE like the CPU) ---
#ifdef __CUDACC__
__device__ inline float d_exp(float x) { return expf(x); }
__device__ inline double d_exp(double x) { return exp(x); }
__device__ inline float d_log(float x) { return logf(x); }
__device__ inline double d_log(double x) { return log(x); }
__device__ inline float d_sqrt(float x) { return sqrtf(x); }
__device__ inline double d_sqrt(double x) { return sqrt(x); }
__device__ inline float d_tanh(float x) { return tanhf(x); }
__device__ inline double d_tanh(double x) { return tanh(x); }
__device__ inline float d_pow(float x, float y) { return powf(x, y); }
__device__ inline double d_pow(double x, double y) { return pow(x, y); }
__device__ inline float d_cos(float x) { return cosf(x); }
__device__ inline double d_cos(double x) { return cos(x); }
__device__ inline float d_sin(float x) { return sinf(x); }
__device__ inline double d_sin(double x) { return sin(x); }
template <class T>
__device__ inline T d_inf() {
  return static_cast<T>(__longlong_as_double(0x7ff0000000000000ll));
}

struct SumOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a > b ? a : b;
  }
};

// Reduces v over the whole block (blockDim.x a multiple of 32, ≤ 1024) in a fixed tree
// order and returns the result to every thread. `smem` holds ≥ 32 values; the trailing
// barrier lets the caller reuse it at once. Every thread of the block must call it.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity, T* smem) {
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int nwarps = static_cast<int>(blockDim.x >> 5);
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nwarps ? smem[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) smem[0] = v;
  }
  __syncthreads();
  const T r = smem[0];
  __syncthreads();
  return r;
}
#endif

}  // namespace cg
