// engine/cpu/cpu_gemm.cpp — GEMM for the CPU backend: OpenBLAS and oneDNN (bf16 products,
// and f32 pieces where a fixed rule of shape and CPU features says so: engine/cpu/cpu_dnnl.h),
// single-threaded, with the backend's own threading over
// pieces fixed by the shapes (so results never depend on the thread count).
#include <cblas.h>

#include <algorithm>
#include <type_traits>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_dnnl.h"
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
  if (m == 1 && !ta && n > 1 && k > 1) {             // c[n] = alpha·op(B)ᵀ·a + beta·c
    if (beta == T(0)) std::fill(c, c + n, T(0));     // BLAS may scale NaN garbage by 0
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

// OpenBLAS (and oneDNN) run single-threaded, always: OpenBLAS's own threading does not give
// the same bits for every thread count on every CPU (seen with OpenBLAS 0.3.21's generic kernels). The
// backend parallelises GEMMs itself, in pieces fixed by the shapes alone:
//  - a batch of small products: one product per thread;
//  - one large product: C cut into at most kMaxBlocks blocks of rows (or, when C has few
//    rows, of columns), each computed whole by one thread.
// Every element of C is then computed by the same kernel call whatever the thread count.
constexpr double kSmallGemm = 4.0 * 1024 * 1024;  // multiply-adds: below, no splitting of a product
constexpr double kMinParallelGemm = 64.0 * 1024;  // below this in the whole batch, one thread
constexpr int64_t kMaxBlocks = 8;
constexpr int64_t kMinBlockRows = 64;

// The start of block i of `total` cut into `blocks` near-equal pieces, rounded to 16.
int64_t block_start(int64_t i, int64_t blocks, int64_t total) {
  if (i >= blocks) return total;
  return std::min(total, (total * i / blocks + 15) / 16 * 16);
}

// Splits one checked product into the pieces above and calls
// kern(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc) on each (alpha is the kernel's).
// A and B are given separately from g (the bf16 path passes converted copies).
template <class Tin, class Tc, class Kern>
void split_gemm(const GemmArgs& g, const Tin* pa, int64_t lda, int64_t sa, const Tin* pb, int64_t ldb, int64_t sb,
                Kern&& kern) {
  const int64_t m = g.m, n = g.n, k = g.k, batch = g.batch;
  const bool ta = g.a.trans, tb = g.b.trans;
  const int64_t ldc = g.c.ld;
  Tc* pc = static_cast<Tc*>(g.c.data);
  // A C shared by the batch (stride 0) sums the entries: the first with beta, the rest add.
  auto beta_of = [&](int64_t i) { return static_cast<Tc>(g.c.stride == 0 && i > 0 ? 1.0 : g.beta); };
  auto one = [&](int64_t i) {
    kern(ta, tb, m, n, k, pa + i * sa, lda, pb + i * sb, ldb, beta_of(i), pc + i * g.c.stride, ldc);
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
    const Tin* ai = pa + i * sa;
    const Tin* bi = pb + i * sb;
    Tc* ci = pc + i * g.c.stride;
    const Tc be = beta_of(i);
    const bool by_rows = m >= 2 * kMinBlockRows;
    const int64_t total = by_rows ? m : n;
    const int64_t blocks = std::min<int64_t>(kMaxBlocks, std::max<int64_t>(1, total / kMinBlockRows));
    cpu::parallel_for(blocks, blocks, 1, [&](int64_t j) {
      const int64_t s = block_start(j, blocks, total), e = block_start(j + 1, blocks, total);
      if (e <= s) return;
      if (by_rows)  // rows s..e of op(A) and of C
        kern(ta, tb, e - s, n, k, ta ? ai + s : ai + s * lda, lda, bi, ldb, be, ci + s * ldc, ldc);
      else  // columns s..e of op(B) and of C
        kern(ta, tb, m, e - s, k, ai, lda, tb ? bi + s * ldb : bi + s, ldb, be, ci + s, ldc);
    });
  }
}

// A view's stored matrices (one, or one per batch entry) rounded to bf16 (an f32 view) or
// widened (a bf16 view, for OpenBLAS), packed densely (ld = cols, stride = rows·cols, or 0
// for one matrix shared by the batch). Out is uint16_t (bf16 bits, for oneDNN) or float
// (the bf16 values, for OpenBLAS). A bf16 view given to oneDNN needs no copy: direct().
template <class Out>
struct Rounded {
  Out* data = nullptr;
  int64_t ld = 0, stride = 0;
};
template <class Out>
Rounded<Out> round_view(const MatView& v, Out* dst) {
  const int64_t rows = v.rows, cols = v.cols, entries = v.stride == 0 ? 1 : v.batch;
  const bool bf16_in = v.dtype == DType::BF16;
  cpu::parallel_for(entries * rows, entries * rows * cols, cpu::kParElementwise, [&](int64_t r) {
    const int64_t e = r / rows, i = r % rows, at = e * v.stride + i * v.ld;
    Out* d = dst + r * cols;
    if (bf16_in) {  // only for OpenBLAS (float): the bits' values, exactly
      const uint16_t* s = static_cast<const uint16_t*>(v.data) + at;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) d[j] = static_cast<Out>(bf16_value(s[j]));
      return;
    }
    const float* s = static_cast<const float*>(v.data) + at;
    if constexpr (std::is_same_v<Out, uint16_t>) {
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) d[j] = cpu::bf16_bits(s[j]);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) d[j] = cpu::bf16_round(s[j]);
    }
  });
  return {dst, std::max<int64_t>(cols, 1), v.stride == 0 ? 0 : rows * cols};
}
// A bf16-stored view's own bits, where oneDNN reads them as they are.
Rounded<uint16_t> direct(const MatView& v) { return {static_cast<uint16_t*>(v.data), v.ld, v.stride}; }

}  // namespace

bool cpu_bf16_gemm_native() { return cpu::dnnl_has_bf16(); }
std::string cpu_bf16_gemm_path() {
  return cpu::dnnl_has_bf16()
             ? cpu::dnnl_describe()
             : "OpenBLAS on bf16-rounded inputs (" + cpu::dnnl_describe() + "): the bf16 math, no speed-up";
}

void CpuBackend::do_gemm(const GemmArgs& g) {
  static const bool single = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
  if (g.precision == GemmPrecision::BF16) {
    gemm_bf16(g);
    return;
  }
  dispatch_float(g.c.dtype, "gemm", [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(g.alpha);
    split_gemm<T, T>(g, static_cast<const T*>(g.a.data), g.a.ld, g.a.stride, static_cast<const T*>(g.b.data), g.b.ld,
                     g.b.stride,
                     [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
                         int64_t ldb, T be, T* c, int64_t ldc) {
                       if constexpr (std::is_same_v<T, float>)
                         if (cpu::dnnl_f32_route(m, n, k))
                           return cpu::dnnl_gemm_f32(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc);
                       gemm_one<T>(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc);
                     });
  });
}

// bf16 × bf16 → f32: A and B rounded once per call into blocks from the backend's cache
// (a bf16-stored operand, a frozen weight, is used as it is by oneDNN and widened for
// OpenBLAS: the same values as rounding its f32 original, so the same bits), then the same
// split as f32, each piece through oneDNN's bf16 matmul where the CPU has bf16 dot products
// and the product is large enough (cpu_dnnl.h), else through OpenBLAS on the rounded values
// (products of bf16 values are exact in f32, so this is the same math up to the summation order).
void CpuBackend::gemm_bf16(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const float al = static_cast<float>(g.alpha);
  auto run = [&](auto tag) {
    using Out = decltype(tag);
    constexpr bool native = std::is_same_v<Out, uint16_t>;
    // Elements to copy for a view: none when oneDNN reads a bf16 view's bits directly.
    auto count = [](const MatView& v) -> int64_t {
      if (native && v.dtype == DType::BF16) return 0;
      return (v.stride == 0 ? 1 : v.batch) * v.rows * v.cols;
    };
    const size_t na = static_cast<size_t>(count(g.a)) * sizeof(Out), nb = static_cast<size_t>(count(g.b)) * sizeof(Out);
    struct Block {  // released on every way out
      CpuBackend& be;
      size_t n;
      void* p;
      Block(CpuBackend& b, size_t bytes) : be(b), n(bytes), p(bytes ? b.alloc(bytes) : nullptr) {}
      ~Block() {
        if (p) be.release(p, n);
      }
    } ba{*this, na}, bb{*this, nb};
    auto prepare = [&](const MatView& v, void* block) -> Rounded<Out> {
      if constexpr (native)
        if (v.dtype == DType::BF16) return direct(v);
      return round_view(v, static_cast<Out*>(block));
    };
    const Rounded<Out> ra = prepare(g.a, ba.p), rb = prepare(g.b, bb.p);
    split_gemm<Out, float>(g, ra.data, ra.ld, ra.stride, rb.data, rb.ld, rb.stride,
                           [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, const Out* a, int64_t lda,
                               const Out* b, int64_t ldb, float be, float* c, int64_t ldc) {
                             if constexpr (native) cpu::dnnl_gemm_bf16(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc);
                             else gemm_one<float>(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc);
                           });
  };
  // oneDNN for products the size rule of cpu_dnnl.h picks (its per-call cost loses on small
  // ones, e.g. attention's k = 8 products of the tiny config); decided on the whole product.
  if (cpu::dnnl_has_bf16() && cpu::dnnl_size_rule(g.m, g.n, g.k)) run(uint16_t{});
  else run(float{});
}

}  // namespace cg
