// engine/cpu/cpu_dnnl.h — the CPU backend's oneDNN and bfloat16 pieces: rounding f32 to bf16
// (round to nearest even; engine/dtype.h's) and, when built with oneDNN (make DNNL=1), one single-threaded
// oneDNN matmul C = alpha·op(A)·op(B) + beta·C with f32 C and accumulation: bf16 A and B on
// a CPU with bf16 dot-product instructions, f32 A and B where the fixed rule below says it
// beats OpenBLAS. cpu_gemm.cpp decides when to call them.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/dtype.h"

namespace cg::cpu {

// Rounding f32 to bf16 (round to nearest even): engine/dtype.h.
using ::cg::bf16_bits;
using ::cg::bf16_round;

// True when oneDNN is built in and the CPU multiplies bf16 in hardware (avx512_core_bf16,
// AMX): a fixed property of the build and the machine, read once.
bool dnnl_has_bf16();
// "oneDNN 2.6.3 (avx512_core_bf16)", or why it is not used.
std::string dnnl_describe();

// C[m,n] = alpha·op(A)·op(B) + beta·C on the calling thread only (oneDNN's own threading
// is never used, so results cannot depend on the thread count). A, B: bf16 bits, row
// major with leading dims lda, ldb; C: f32 with ldc; m, n, k ≥ 1. Only when dnnl_has_bf16().
void dnnl_gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a, int64_t lda,
                    const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The same with f32 A and B (needs oneDNN built in, any CPU).
bool dnnl_built();
// The fixed rule for f32: oneDNN's f32 matmul instead of OpenBLAS for a piece of m·n·k ≥
// 65536 multiply-adds with every side ≥ 16, when oneDNN is built in and the CPU has AVX-512
// (below that size OpenBLAS wins; the measurements are in docs/design-notes.md). Shapes and
// CPU features only, never timings, so a run is reproducible.
bool dnnl_f32_route(int64_t m, int64_t n, int64_t k);
// The size half of that rule (m·n·k ≥ 65536, every side ≥ 16), which bf16 products follow too.
bool dnnl_size_rule(int64_t m, int64_t n, int64_t k);
void dnnl_gemm_f32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// oneDNN matmul executions so far (all threads), for tests: all of them, and those with
// beta ≠ 0 (a sum post-op, which costs oneDNN one more small allocation per call).
int64_t dnnl_executions();
int64_t dnnl_executions_with_beta();

}  // namespace cg::cpu
