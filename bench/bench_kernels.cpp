// bench/bench_kernels.cpp — Google Benchmark microbenchmarks of the kernels that matter
// for a training step: GEMM through our backend vs raw cblas_sgemm, ChainMatmul vs a
// naive chain, rmsnorm, attention, cross-entropy and AdamW (forward + backward where the
// op has one). Run: make bench && build/bin/bench_kernels
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"

using namespace cg;

namespace {
Tensor rnd(Shape s, bool grad = false, uint64_t seed = 1) {
  Rng r(seed);
  Tensor t = rand_uniform(s, -1, 1, r);
  if (grad) t.set_requires_grad(true);
  return t;
}
void set_flops(benchmark::State& st, double flops_per_iter) {
  st.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
}  // namespace

// C[M,N] = A[M,K]·B[K,N] through Backend::gemm.
static void BM_GemmBackend(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = rnd({M, K}), b = rnd({K, N}), c = Tensor::empty({M, N});
  for (auto _ : st) backend(a).gemm(mat(a), mat(b), mat(c));
  set_flops(st, 2.0 * M * N * K);
}
// The same product straight through OpenBLAS, the ceiling.
static void BM_GemmCblas(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = rnd({M, K}), b = rnd({K, N}), c = Tensor::empty({M, N});
  for (auto _ : st)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a.data<float>(), K, b.data<float>(), N, 0.0f,
                c.data<float>(), N);
  set_flops(st, 2.0 * M * N * K);
}
BENCHMARK(BM_GemmBackend)->Args({256, 256, 256})->Args({2048, 256, 256})->Args({2048, 688, 256});
BENCHMARK(BM_GemmCblas)->Args({256, 256, 256})->Args({2048, 256, 256})->Args({2048, 688, 256});

// LinChain adapter product x[2048,256]·A[256,16]·W₁·W₂·W₃·B[256,16]ᵀ, forward + backward.
static void BM_ChainMatmul(benchmark::State& st) {
  Tensor x = rnd({2048, 256}), A = rnd({256, 16}, true), W1 = rnd({16, 16}, true), W2 = rnd({16, 16}, true),
         W3 = rnd({16, 16}, true), B = rnd({256, 16}, true);
  for (auto _ : st) {
    Tensor y = ops::chain_matmul(x, {A, W1, W2, W3, ops::transposed_factor(B)});
    backward(ops::sum_all(y));
  }
}
// The same chain as left-to-right matmul ops.
static void BM_NaiveChain(benchmark::State& st) {
  Tensor x = rnd({2048, 256}), A = rnd({256, 16}, true), W1 = rnd({16, 16}, true), W2 = rnd({16, 16}, true),
         W3 = rnd({16, 16}, true), B = rnd({256, 16}, true);
  for (auto _ : st) {
    Tensor y = ops::matmul(ops::matmul(ops::matmul(ops::matmul(x, A), W1), W2), W3);
    y = ops::matmul(y, B, false, true);
    backward(ops::sum_all(y));
  }
}
BENCHMARK(BM_ChainMatmul);
BENCHMARK(BM_NaiveChain);

static void BM_RmsNorm(benchmark::State& st) {
  Tensor x = rnd({2048, 256}, true), w = rnd({256}, true);
  for (auto _ : st) backward(ops::sum_all(ops::rmsnorm(x, w)));
}
BENCHMARK(BM_RmsNorm);

// Causal grouped attention, B=8, H=8, KV=4, T=256, D=32, forward + backward.
static void BM_Attention(benchmark::State& st) {
  Tensor q = rnd({8, 8, 256, 32}, true), k = rnd({8, 4, 256, 32}, true), v = rnd({8, 4, 256, 32}, true);
  for (auto _ : st) backward(ops::sum_all(ops::attention(q, k, v, true)));
}
BENCHMARK(BM_Attention);

static void BM_CrossEntropy(benchmark::State& st) {
  Tensor logits = rnd({2048, 512}, true);
  std::vector<int32_t> t(2048);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(i * 7 % 512);
  Tensor tg = Tensor::from_i32(t, {2048});
  for (auto _ : st) backward(ops::cross_entropy(logits, tg));
}
BENCHMARK(BM_CrossEntropy);

static void BM_AdamW(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor p = rnd({n}), g = rnd({n}, false, 2), m = Tensor::zeros({n}), v = Tensor::zeros({n});
  int64_t step = 0;
  for (auto _ : st) backend(p).adamw(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, ++step);
  st.SetBytesProcessed(st.iterations() * n * 4 * 4);
}
BENCHMARK(BM_AdamW)->Arg(1 << 20)->Arg(5 << 20);

BENCHMARK_MAIN();
