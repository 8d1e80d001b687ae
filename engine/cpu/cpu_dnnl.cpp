// engine/cpu/cpu_dnnl.cpp — oneDNN's matmul for the CPU backend, bf16 and f32 (built with
// CG_WITH_DNNL; otherwise dnnl_has_bf16() and dnnl_f32_route() are false and cpu_gemm.cpp
// uses OpenBLAS, on rounded inputs for bf16). A matmul primitive is made once per shape,
// data type and thread and kept, with its memory objects and its scratchpad (user-managed),
// so a step after warm-up creates nothing of ours; oneDNN always runs with one OpenMP thread
// here (the backend splits the product itself, by shape). bf16 is used only where the CPU
// has bf16 dot products, f32 only on AVX-512, both by the size rule of cpu_dnnl.h.
#include "engine/cpu/cpu_dnnl.h"

#include "engine/error.h"

#ifdef CG_WITH_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>
#endif

namespace cg::cpu {

#ifndef CG_WITH_DNNL

bool dnnl_has_bf16() { return false; }
std::string dnnl_describe() { return "oneDNN not built in (make DNNL=1)"; }
void dnnl_gemm_bf16(bool, bool, int64_t, int64_t, int64_t, float, const uint16_t*, int64_t, const uint16_t*, int64_t,
                    float, float*, int64_t) {
  throw Error("dnnl_gemm_bf16: this chaingrad was built without oneDNN");
}
int64_t dnnl_executions() { return 0; }
int64_t dnnl_executions_with_beta() { return 0; }
bool dnnl_built() { return false; }
bool dnnl_f32_route(int64_t, int64_t, int64_t) { return false; }
bool dnnl_size_rule(int64_t m, int64_t n, int64_t k) {
  return m >= 16 && n >= 16 && k >= 16 && static_cast<double>(m) * n * k >= 65536.0;
}
void dnnl_gemm_f32(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                   float*, int64_t) {
  throw Error("dnnl_gemm_f32: this chaingrad was built without oneDNN");
}

#else

namespace {

void check(dnnl_status_t s, const char* what) {
  if (s != dnnl_success) throw Error(std::string("oneDNN: ") + what + " failed (status " + std::to_string(s) + ")");
}

// The calling thread's OpenMP thread count is 1 while this lives (oneDNN sizes its work
// split, and runs it, with omp_get_max_threads() of the calling thread).
struct OneOmpThread {
  int prev = omp_get_max_threads();
  OneOmpThread() {
    if (prev != 1) omp_set_num_threads(1);
  }
  ~OneOmpThread() {
    if (prev != 1) omp_set_num_threads(prev);
  }
};

struct Engine {
  dnnl_engine_t engine = nullptr;
  bool bf16 = false, avx512 = false;
  std::string describe;
};

const Engine& engine() {
  static const Engine e = [] {
    Engine x;
    const dnnl_version_t* v = dnnl_version();
    const std::string ver =
        "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const unsigned want = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
    const bool amx = (isa & static_cast<unsigned>(dnnl_cpu_isa_avx512_core_amx)) ==
                     static_cast<unsigned>(dnnl_cpu_isa_avx512_core_amx);
    x.bf16 = (isa & want) == want;
    const unsigned core = static_cast<unsigned>(dnnl_cpu_isa_avx512_core);
    x.avx512 = (isa & core) == core;
    check(dnnl_engine_create(&x.engine, dnnl_cpu, 0), "engine_create");
    if (!x.bf16) {
      x.describe = ver + " built in, but this CPU has no bf16 dot products (avx512_core_bf16)";
      return x;
    }
    x.describe = ver + (amx ? " (avx512_core_amx)" : " (avx512_core_bf16)");
    return x;
  }();
  return e;
}

// One shape's primitive and its arguments (data handles set per call).
struct Entry {
  dnnl_primitive_t prim = nullptr;
  dnnl_memory_t a = nullptr, b = nullptr, c = nullptr, scratch = nullptr;
};
using Key =
    std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float, dnnl_data_type_t>;
struct Cache {
  dnnl_stream_t stream = nullptr;
  std::map<Key, Entry> entries;
};

// Each thread keeps its own stream and entries (neither may be used by two threads at
// once). They live until the process ends; the registry keeps them reachable.
Cache& thread_cache() {
  static std::mutex mu;
  static auto* all = new std::vector<Cache*>;
  thread_local Cache* mine = nullptr;
  if (!mine) {
    auto* c = new Cache;
    check(dnnl_stream_create(&c->stream, engine().engine, dnnl_stream_default_flags), "stream_create");
    std::lock_guard<std::mutex> lock(mu);
    all->push_back(c);
    mine = c;
  }
  return *mine;
}

Entry make_entry(const Key& key) {
  const auto [ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, dt] = key;
  const Engine& e = engine();
  // op(A)[m,k] of a row-major A (ta: stored [k,m]); the same for B; C row-major.
  dnnl_memory_desc_t ad, bd, cd;
  const dnnl_dims_t adims{m, k}, bdims{k, n}, cdims{m, n};
  const dnnl_dims_t astr{ta ? 1 : lda, ta ? lda : 1}, bstr{tb ? 1 : ldb, tb ? ldb : 1}, cstr{ldc, 1};
  check(dnnl_memory_desc_init_by_strides(&ad, 2, adims, dt, astr), "memory_desc (A)");
  check(dnnl_memory_desc_init_by_strides(&bd, 2, bdims, dt, bstr), "memory_desc (B)");
  check(dnnl_memory_desc_init_by_strides(&cd, 2, cdims, dnnl_f32, cstr), "memory_desc (C)");
  dnnl_matmul_desc_t md;
  check(dnnl_matmul_desc_init(&md, &ad, &bd, nullptr, &cd), "matmul_desc");
  dnnl_primitive_attr_t attr;
  check(dnnl_primitive_attr_create(&attr), "attr_create");
  check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad_mode");
  if (alpha != 1.0f) check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "output_scales");
  if (beta != 0.0f) {
    dnnl_post_ops_t po;
    check(dnnl_post_ops_create(&po), "post_ops_create");
    check(dnnl_post_ops_append_sum(po, beta), "post_ops_append_sum");
    check(dnnl_primitive_attr_set_post_ops(attr, po), "set_post_ops");
    dnnl_post_ops_destroy(po);
  }
  dnnl_primitive_desc_t pd;
  check(dnnl_primitive_desc_create(&pd, &md, attr, e.engine, nullptr), "primitive_desc_create (matmul)");
  dnnl_primitive_attr_destroy(attr);
  Entry en;
  check(dnnl_primitive_create(&en.prim, pd), "primitive_create");
  const dnnl_memory_desc_t* sd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  const size_t ss = sd ? dnnl_memory_desc_get_size(sd) : 0;
  check(dnnl_memory_create(&en.a, &ad, e.engine, DNNL_MEMORY_NONE), "memory_create");
  check(dnnl_memory_create(&en.b, &bd, e.engine, DNNL_MEMORY_NONE), "memory_create");
  check(dnnl_memory_create(&en.c, &cd, e.engine, DNNL_MEMORY_NONE), "memory_create");
  if (ss > 0) check(dnnl_memory_create(&en.scratch, sd, e.engine, DNNL_MEMORY_ALLOCATE), "memory_create (scratchpad)");
  dnnl_primitive_desc_destroy(pd);
  return en;
}

std::atomic<int64_t> g_executions{0}, g_executions_beta{0};

}  // namespace

bool dnnl_has_bf16() { return engine().bf16; }
bool dnnl_built() { return true; }
bool dnnl_size_rule(int64_t m, int64_t n, int64_t k) {
  return m >= 16 && n >= 16 && k >= 16 && static_cast<double>(m) * n * k >= 65536.0;
}
bool dnnl_f32_route(int64_t m, int64_t n, int64_t k) { return engine().avx512 && dnnl_size_rule(m, n, k); }
int64_t dnnl_executions() { return g_executions.load(std::memory_order_relaxed); }
int64_t dnnl_executions_with_beta() { return g_executions_beta.load(std::memory_order_relaxed); }
std::string dnnl_describe() { return engine().describe; }

namespace {
void run(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const void* a, int64_t lda, const void* b,
         int64_t ldb, float beta, float* c, int64_t ldc, dnnl_data_type_t dt) {
  const OneOmpThread one;
  Cache& cache = thread_cache();
  const Key key{ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, dt};
  auto it = cache.entries.find(key);
  if (it == cache.entries.end()) it = cache.entries.emplace(key, make_entry(key)).first;
  const Entry& en = it->second;
  check(dnnl_memory_set_data_handle(en.a, const_cast<void*>(a)), "set_data_handle");
  check(dnnl_memory_set_data_handle(en.b, const_cast<void*>(b)), "set_data_handle");
  check(dnnl_memory_set_data_handle(en.c, c), "set_data_handle");
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, en.a},
                             {DNNL_ARG_WEIGHTS, en.b},
                             {DNNL_ARG_DST, en.c},
                             {DNNL_ARG_SCRATCHPAD, en.scratch}};
  check(dnnl_primitive_execute(en.prim, cache.stream, en.scratch ? 4 : 3, args), "matmul execute");
  g_executions.fetch_add(1, std::memory_order_relaxed);
  if (beta != 0.0f) g_executions_beta.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

void dnnl_gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a, int64_t lda,
                    const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (!engine().bf16) throw Error("dnnl_gemm_bf16: " + engine().describe);
  run(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, dnnl_bf16);
}

void dnnl_gemm_f32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  run(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, dnnl_f32);
}

#endif

}  // namespace cg::cpu
