// engine/cpu/cpu_memory.cpp — host memory and GEMM (OpenBLAS) for the CPU backend.
#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/cpu/cpu_backend.h"

namespace cg {

// Sizes are rounded to 64 bytes and blocks reused only for the same rounded size: a
// training loop allocates the same shapes every step, so after the first step every
// request is a cache hit and no page is faulted in again.
static size_t round_size(size_t bytes) { return (bytes + 63) / 64 * 64; }

void* CpuBackend::alloc(size_t bytes) {
  const size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats& st = stats();
  st.bytes_in_use += static_cast<int64_t>(rounded);
  st.peak_bytes = std::max(st.peak_bytes, st.bytes_in_use);
  auto it = cache_.find(rounded);
  if (it != cache_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p) {
    st.bytes_in_use -= static_cast<int64_t>(rounded);
    throw Error("cpu alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  st.system_allocs += 1;
  return p;
}

void CpuBackend::release(void* p, size_t bytes) {
  const size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats().bytes_in_use -= static_cast<int64_t>(rounded);
#ifdef CG_NO_ALLOC_CACHE  // sanitizer builds: let ASan see every use after free
  std::free(p);
#else
  cache_[rounded].push_back(p);
#endif
}

void CpuBackend::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, blocks] : cache_)
    for (void* p : blocks) std::free(p);
  cache_.clear();
}
void CpuBackend::to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::fill(Tensor& t, double value) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32: { float* p = t.data<float>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(value); break; }
    case DType::F64: { double* p = t.data<double>(); for (int64_t i = 0; i < n; ++i) p[i] = value; break; }
    case DType::I32: { int32_t* p = t.data<int32_t>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(value); break; }
  }
}

void CpuBackend::do_gemm(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                         const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
                         int64_t stride_b, double beta, void* c, int64_t ldc, int64_t stride_c,
                         int64_t batch) {
  const auto TA = ta ? CblasTrans : CblasNoTrans;
  const auto TB = tb ? CblasTrans : CblasNoTrans;
  for (int64_t i = 0; i < batch; ++i) {
    if (dt == DType::F32) {
      cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, static_cast<float>(alpha),
                  static_cast<const float*>(a) + i * stride_a, lda,
                  static_cast<const float*>(b) + i * stride_b, ldb, static_cast<float>(beta),
                  static_cast<float*>(c) + i * stride_c, ldc);
    } else if (dt == DType::F64) {
      cblas_dgemm(CblasRowMajor, TA, TB, m, n, k, alpha, static_cast<const double*>(a) + i * stride_a, lda,
                  static_cast<const double*>(b) + i * stride_b, ldb, beta,
                  static_cast<double*>(c) + i * stride_c, ldc);
    } else {
      throw DTypeError("gemm: needs f32 or f64, got i32");
    }
  }
}

}  // namespace cg
