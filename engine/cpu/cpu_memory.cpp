// engine/cpu/cpu_memory.cpp — host memory and GEMM (OpenBLAS) for the CPU backend.
#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_parallel.h"

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

namespace {

// One product C[m,n] = alpha·op(A)·op(B) + beta·C. (A GEMV route for m == 1 was tried
// for the decode path: no faster than OpenBLAS's own m == 1 GEMM on these sizes, and it
// rounds differently from the full-sequence forward, so it is not used.)
template <class T>
void gemm_one(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc) {
  constexpr bool f32 = std::is_same_v<T, float>;
  const auto TA = ta ? CblasTrans : CblasNoTrans;
  const auto TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (f32) cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else cblas_dgemm(CblasRowMajor, TA, TB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// OpenBLAS runs single-threaded, always: its own threading does not give the same bits
// for every thread count on every CPU (seen with OpenBLAS 0.3.21's generic kernels). The
// backend parallelises GEMMs itself, in pieces fixed by the shapes alone:
//  - a batch of small products: one product per thread;
//  - one large product: C cut into at most kMaxBlocks blocks of rows (or, when C has few
//    rows, of columns), each computed whole by one thread.
// Every element of C is then computed by the same kernel call whatever the thread count.
constexpr double kSmallGemm = 4.0 * 1024 * 1024;   // multiply-adds: below, no splitting of a product
constexpr double kMinParallelGemm = 64.0 * 1024;   // below this in the whole batch, one thread
constexpr int64_t kMaxBlocks = 8;
constexpr int64_t kMinBlockRows = 64;

// The start of block i of `total` cut into `blocks` near-equal pieces, rounded to 16.
int64_t block_start(int64_t i, int64_t blocks, int64_t total) {
  if (i >= blocks) return total;
  return std::min(total, (total * i / blocks + 15) / 16 * 16);
}

}  // namespace

void CpuBackend::do_gemm(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                         const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
                         int64_t stride_b, double beta, void* c, int64_t ldc, int64_t stride_c,
                         int64_t batch) {
  if (dt == DType::I32) throw DTypeError("gemm: needs f32 or f64, got i32");
  static const bool single = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
  dispatch_float(dt, "gemm", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* pc = static_cast<T*>(c);
    const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
    auto one = [&](int64_t i) {
      gemm_one<T>(ta, tb, m, n, k, al, pa + i * stride_a, lda, pb + i * stride_b, ldb, be, pc + i * stride_c, ldc);
    };
    const double mnk = static_cast<double>(m) * n * k;
    // A batch of small products (a zero C stride means they accumulate into one matrix:
    // those stay in order, serially).
    if (batch > 1 && stride_c != 0 && mnk <= kSmallGemm) {
      cpu::parallel_for(batch, static_cast<int64_t>(mnk * batch / 64), static_cast<int64_t>(kMinParallelGemm / 64), one);
      return;
    }
    for (int64_t i = 0; i < batch; ++i) {
      if (mnk <= kSmallGemm) {
        one(i);
        continue;
      }
      const T* ai = pa + i * stride_a;
      const T* bi = pb + i * stride_b;
      T* ci = pc + i * stride_c;
      const bool by_rows = m >= 2 * kMinBlockRows;
      const int64_t total = by_rows ? m : n;
      const int64_t blocks = std::min<int64_t>(kMaxBlocks, std::max<int64_t>(1, total / kMinBlockRows));
      cpu::parallel_for(blocks, blocks, 1, [&](int64_t j) {
        const int64_t s = block_start(j, blocks, total), e = block_start(j + 1, blocks, total);
        if (e <= s) return;
        if (by_rows)  // rows s..e of op(A) and of C
          gemm_one<T>(ta, tb, e - s, n, k, al, ta ? ai + s : ai + s * lda, lda, bi, ldb, be, ci + s * ldc, ldc);
        else  // columns s..e of op(B) and of C
          gemm_one<T>(ta, tb, m, e - s, k, al, ai, lda, tb ? bi + s * ldb : bi + s, ldb, be, ci + s, ldc);
      });
    }
  });
}

}  // namespace cg
