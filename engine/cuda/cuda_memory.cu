// engine/cuda/cuda_memory.cu — device memory for the CUDA backend: the caching allocator,
// host/device copies, fill, and GEMM through cuBLAS (row-major on top of column-major).
#include <bit>
#include <climits>

#include "engine/cuda/cuda_backend.h"

namespace cg {
namespace {

// Block sizes: 512-byte steps up to 1 MiB, then 8 steps per power of two (≤ 12.5% waste).
// Tensors of one shape always land in one bucket, so a repeated step reuses its blocks.
size_t round_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{1} << 20;
  if (bytes <= kSmall) return kSmall;
  if (bytes <= kLarge) return (bytes + kSmall - 1) / kSmall * kSmall;
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) p[i] = value;
}

// C_b[m,n] = beta·C_b for every batch entry (a GEMM with k = 0; beta = 0 writes zeros).
template <class T>
__global__ void scale_matrix_kernel(T* c, int64_t m, int64_t n, int64_t ldc, int64_t stride_c, int64_t batch, T beta) {
  const int64_t total = batch * m * n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / (m * n), r = (i / n) % m, col = i % n;
    T* p = c + b * stride_c + r * ldc + col;
    *p = beta == T(0) ? T(0) : beta * *p;
  }
}

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw DeviceError(std::string("cuda gemm: ") + what + " = " + std::to_string(v) + " does not fit cuBLAS's int");
  return static_cast<int>(v);
}

}  // namespace

// ---- caching allocator -----------------------------------------------------------------

void* CudaBackend::alloc(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mem_mu_);
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {  // give the cache back to CUDA and try once more
    cudaGetLastError();
    free_cached_locked();
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError("cuda alloc: cudaMalloc of " + std::to_string(size) + " bytes failed: " + cudaGetErrorString(e));
  }
  ++malloc_count_;
  return p;
}

void CudaBackend::release(void* p, size_t bytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mem_mu_);
  free_[round_size(bytes)].push_back(p);
}

void CudaBackend::free_cached_locked() {
  CG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) CG_CUDA_CHECK(cudaFree(p));
    blocks.clear();
  }
}

int64_t CudaBackend::malloc_count() const {
  std::lock_guard<std::mutex> lock(mem_mu_);
  return malloc_count_;
}

// ---- copies ----------------------------------------------------------------------------

void CudaBackend::to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  CG_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::from_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  CG_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::fill(Tensor& t, double value) {
  const int64_t n = t.numel();
  if (n == 0) return;
  switch (t.dtype()) {
    case DType::F32:
      fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<float*>(t.raw()), n, static_cast<float>(value));
      break;
    case DType::F64:
      fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<double*>(t.raw()), n, value);
      break;
    case DType::I32:
      fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<int32_t*>(t.raw()), n, static_cast<int32_t>(value));
      break;
  }
  check_launch("fill");
}

// ---- GEMM ------------------------------------------------------------------------------
// cuBLAS is column-major. A row-major X[r,c] with leading dim ld is, to cuBLAS, the
// column-major Xᵀ[c,r] with the same ld. So C = op(A)·op(B) (row-major) is computed as
// Cᵀ = op(B)ᵀ·op(A)ᵀ (column-major): swap the operands and m with n, keep the flags.

void CudaBackend::do_gemm(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                          const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
                          int64_t stride_b, double beta, void* c, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  if (dt == DType::I32) throw DTypeError("cuda gemm: needs f32 or f64, got i32");
  if (m == 0 || n == 0 || batch == 0) return;
  if (stride_c == 0 && batch > 1) {  // every entry writes one C: run them in order
    const size_t es = dtype_size(dt);
    for (int64_t i = 0; i < batch; ++i)
      do_gemm(dt, ta, tb, m, n, k, alpha, static_cast<const char*>(a) + i * stride_a * es, lda, 0,
              static_cast<const char*>(b) + i * stride_b * es, ldb, 0, beta, c, ldc, 0, 1);
    return;
  }
  if (k == 0) {  // C = beta·C (cuBLAS would reject the zero leading dims)
    const int64_t total = batch * m * n;
    if (dt == DType::F32)
      scale_matrix_kernel<<<grid_for(total), kThreads, 0, stream_>>>(static_cast<float*>(c), m, n, ldc, stride_c, batch,
                                                                    static_cast<float>(beta));
    else
      scale_matrix_kernel<<<grid_for(total), kThreads, 0, stream_>>>(static_cast<double*>(c), m, n, ldc, stride_c, batch, beta);
    check_launch("gemm (k = 0)");
    return;
  }
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int cm = to_int(n, "n"), cn = to_int(m, "m"), ck = to_int(k, "k");
  const int ilda = to_int(lda, "lda"), ildb = to_int(ldb, "ldb"), ildc = to_int(ldc, "ldc");
  const int ibatch = to_int(batch, "batch");
  if (dt == DType::F32) {
    const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
    CG_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_, op_b, op_a, cm, cn, ck, &fa, static_cast<const float*>(b), ildb,
                                              stride_b, static_cast<const float*>(a), ilda, stride_a, &fb,
                                              static_cast<float*>(c), ildc, stride_c, ibatch));
  } else {
    CG_CUBLAS_CHECK(cublasDgemmStridedBatched(cublas_, op_b, op_a, cm, cn, ck, &alpha, static_cast<const double*>(b), ildb,
                                              stride_b, static_cast<const double*>(a), ilda, stride_a, &beta,
                                              static_cast<double*>(c), ildc, stride_c, ibatch));
  }
}

}  // namespace cg
