// engine/cpu/cpu_gemm.cpp — GEMM for the CPU backend: OpenBLAS, single-threaded, with the
// backend's own threading over pieces fixed by the shapes (so results never depend on the
// thread count).
#include <cblas.h>

#include <algorithm>
#include <type_traits>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_parallel.h"

namespace cg {
namespace {

// One product C[m,n] = alpha·op(A)·op(B) + beta·C. A stored row times a matrix (decoding:
// x·Wᵀ, q·kt, p·v) is a GEMV: OpenBLAS's GEMM would repack all of op(B) for that one row.
// The other one-row shapes (a transposed A, a dot product n = 1, an outer product k = 1)
// occur in rank-1 adapters' training and stay with the GEMM, which rounds them as before
// (ops/chain_matmul.cpp writes its chain-bias row products as columns for that reason).
template <class T>
void gemm_one(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc) {
  constexpr bool f32 = std::is_same_v<T, float>;
  if (m == 1 && !ta && n > 1 && k > 1) {  // c[n] = alpha·op(B)ᵀ·a + beta·c
    if (beta == T(0)) std::fill(c, c + n, T(0));  // BLAS may scale NaN garbage by 0
    const auto TB = tb ? CblasNoTrans : CblasTrans;  // B stored [n,k] when tb, else [k,n]
    const int64_t rows = tb ? n : k, cols = tb ? k : n;
    if constexpr (f32) cblas_sgemv(CblasRowMajor, TB, rows, cols, alpha, b, ldb, a, 1, beta, c, 1);
    else cblas_dgemv(CblasRowMajor, TB, rows, cols, alpha, b, ldb, a, 1, beta, c, 1);
    return;
  }
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

void CpuBackend::do_gemm(const GemmArgs& g) {
  static const bool single = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
  const int64_t m = g.m, n = g.n, k = g.k, batch = g.batch;
  const bool ta = g.a.trans, tb = g.b.trans;
  const int64_t lda = g.a.ld, ldb = g.b.ld, ldc = g.c.ld;
  dispatch_float(g.c.dtype, "gemm", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(g.a.data);
    const T* pb = static_cast<const T*>(g.b.data);
    T* pc = static_cast<T*>(g.c.data);
    const T al = static_cast<T>(g.alpha);
    // A C shared by the batch (stride 0) sums the entries: the first with beta, the rest add.
    auto beta_of = [&](int64_t i) { return static_cast<T>(g.c.stride == 0 && i > 0 ? 1.0 : g.beta); };
    auto one = [&](int64_t i) {
      gemm_one<T>(ta, tb, m, n, k, al, pa + i * g.a.stride, lda, pb + i * g.b.stride, ldb, beta_of(i),
                  pc + i * g.c.stride, ldc);
    };
    const double mnk = static_cast<double>(m) * n * k;
    // A batch of small products into separate Cs (a shared C's entries stay in order, serially).
    if (batch > 1 && g.c.stride != 0 && mnk <= kSmallGemm) {
      cpu::parallel_for(batch, static_cast<int64_t>(mnk * batch / 64), static_cast<int64_t>(kMinParallelGemm / 64), one);
      return;
    }
    for (int64_t i = 0; i < batch; ++i) {
      if (mnk <= kSmallGemm) {
        one(i);
        continue;
      }
      const T* ai = pa + i * g.a.stride;
      const T* bi = pb + i * g.b.stride;
      T* ci = pc + i * g.c.stride;
      const T be = beta_of(i);
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
