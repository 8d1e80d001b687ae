// engine/cpu/cpu_memory.cpp — host memory and GEMM (OpenBLAS) for the CPU backend.
#include <cblas.h>

#include <cstdlib>
#include <cstring>

#include "engine/cpu/cpu_backend.h"

namespace cg {

void* CpuBackend::alloc(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw Error("cpu alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}
void CpuBackend::release(void* p, size_t) { std::free(p); }
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
