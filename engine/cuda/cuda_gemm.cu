// engine/cuda/cuda_gemm.cu — GEMM for the CUDA backend through cuBLAS (row-major on top
// of column-major), strided-batched where the views allow; GemmPrecision::BF16 through
// cublasGemmStridedBatchedEx with bf16 tensor-core math and f32 accumulation.
#include <climits>

#include "engine/cuda/cuda_backend.h"

namespace cg {
namespace {

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

// cuBLAS is column-major. A row-major X[r,c] with leading dim ld is, to cuBLAS, the
// column-major Xᵀ[c,r] with the same ld. So C = op(A)·op(B) (row-major) is computed as
// Cᵀ = op(B)ᵀ·op(A)ᵀ (column-major): swap the operands and m with n, keep the flags.
void CudaBackend::do_gemm(const GemmArgs& g) {
  if (g.a.dtype == DType::BF16 || g.b.dtype == DType::BF16)
    throw DTypeError("cuda gemm: op(A) " + g.a.desc() + " · op(B) " + g.b.desc() +
                     ": bf16-stored operands (--base-dtype bf16) are CPU-only; store the weights in f32");
  const int64_t m = g.m, n = g.n, k = g.k;
  if (m == 0 || n == 0) return;
  if (g.c.stride == 0 && g.batch > 1) {  // every entry adds into one C: run them in order
    const size_t es = dtype_size(g.c.dtype);
    for (int64_t i = 0; i < g.batch; ++i) {
      GemmArgs one = g;
      one.a.data = static_cast<char*>(g.a.data) + i * g.a.stride * static_cast<int64_t>(es);
      one.b.data = static_cast<char*>(g.b.data) + i * g.b.stride * static_cast<int64_t>(es);
      one.a.batch = one.b.batch = one.batch = 1;
      one.a.stride = one.b.stride = 0;
      if (i > 0) one.beta = 1.0;
      do_gemm(one);
    }
    return;
  }
  const DType dt = g.c.dtype;
  if (k == 0) {  // C = beta·C (cuBLAS would reject the zero leading dims)
    const int64_t total = g.batch * m * n;
    if (dt == DType::F32)
      scale_matrix_kernel<<<grid_for(total), kThreads, 0, stream_>>>(static_cast<float*>(g.c.data), m, n, g.c.ld,
                                                                     g.c.stride, g.batch, static_cast<float>(g.beta));
    else
      scale_matrix_kernel<<<grid_for(total), kThreads, 0, stream_>>>(static_cast<double*>(g.c.data), m, n, g.c.ld,
                                                                     g.c.stride, g.batch, g.beta);
    check_launch("gemm (k = 0)");
    return;
  }
  const cublasOperation_t op_a = g.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int cm = to_int(n, "n"), cn = to_int(m, "m"), ck = to_int(k, "k");
  const int ilda = to_int(g.a.ld, "lda"), ildb = to_int(g.b.ld, "ldb"), ildc = to_int(g.c.ld, "ldc");
  const int ibatch = to_int(g.batch, "batch");
  if (dt == DType::F32 && g.precision == GemmPrecision::BF16) {
    // bf16 × bf16 with f32 accumulation: cuBLAS rounds the f32 inputs to bf16 itself and
    // runs the tensor cores (CUBLAS_COMPUTE_32F_FAST_16BF); C stays f32.
    const float fa = static_cast<float>(g.alpha), fb = static_cast<float>(g.beta);
    CG_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_, op_b, op_a, cm, cn, ck, &fa, g.b.data, CUDA_R_32F, ildb,
                                               g.b.stride, g.a.data, CUDA_R_32F, ilda, g.a.stride, &fb, g.c.data,
                                               CUDA_R_32F, ildc, g.c.stride, ibatch, CUBLAS_COMPUTE_32F_FAST_16BF,
                                               CUBLAS_GEMM_DEFAULT));
  } else if (dt == DType::F32) {
    const float fa = static_cast<float>(g.alpha), fb = static_cast<float>(g.beta);
    CG_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_, op_b, op_a, cm, cn, ck, &fa, static_cast<const float*>(g.b.data),
                                              ildb, g.b.stride, static_cast<const float*>(g.a.data), ilda, g.a.stride,
                                              &fb, static_cast<float*>(g.c.data), ildc, g.c.stride, ibatch));
  } else {
    CG_CUBLAS_CHECK(cublasDgemmStridedBatched(cublas_, op_b, op_a, cm, cn, ck, &g.alpha,
                                              static_cast<const double*>(g.b.data), ildb, g.b.stride,
                                              static_cast<const double*>(g.a.data), ilda, g.a.stride, &g.beta,
                                              static_cast<double*>(g.c.data), ildc, g.c.stride, ibatch));
  }
}

}  // namespace cg
