// tests/test_alloc.cpp — heap traffic of a training step after warm-up: none. Tensor storage
// comes from the backend's block cache (Backend::stats().system_allocs does not move), and
// every other heap allocation (operator new) is counted by replacing the global operator new
// in this file: the tape reuses its node slots and keeps closures inline (engine/tape.h),
// tensor handles come from pools (engine/pool.h) and chain_matmul plans in fixed tables, so
// a pretraining or adapter fine-tuning step — forward, loss, backward, optimizer step,
// zero_grad, and the same through models::Trainer with a fresh batch per micro-batch —
// must not call it at all. Any per-step allocation fails here — except inside oneDNN, whose
// execute call allocates a few small nodes (counted exactly: dnnl_cost); with bf16 GEMMs
// (and a base stored in bf16), see the last case.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>

#include "engine/backend.h"
#include "engine/cpu/cpu_dnnl.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/text/data.h"
#include "models/llama/llama.h"
#include "models/train/trainer.h"
#include "nn/adapters.h"
#include "nn/optim.h"
#include "tests/test_util.h"

namespace {
std::atomic<int64_t> g_news{0};

void* counted_alloc(std::size_t n, std::size_t align) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace cg;

namespace {

struct StepCounts {
  int64_t cold_news = 0;        // operator new calls of the first step (the tape and pools fill up)
  int64_t system_allocs = 0;    // after warm-up, all steps: backend allocations the cache could not serve
  int64_t news = 0;             // after warm-up, all steps: operator new calls
  int64_t dnnl_execs = 0;       // after warm-up, all steps: oneDNN matmul executions (bf16 GEMMs)
  int64_t dnnl_execs_beta = 0;  // ... of which with beta ≠ 0
};

// Runs `warm` steps, then `steps` more, and returns the counts (totals, not per-step
// averages, so that a single allocation in the measured steps shows).
StepCounts count_steps(const std::function<void()>& step, int warm, int steps) {
  StepCounts c;
  const int64_t cold0 = g_news.load();
  step();
  c.cold_news = g_news.load() - cold0;
  for (int i = 1; i < warm; ++i) step();
  Backend& be = backend_for(Device::CPU);
  const int64_t sys0 = be.stats().system_allocs, new0 = g_news.load(), ex0 = cpu::dnnl_executions(),
                exb0 = cpu::dnnl_executions_with_beta();
  for (int i = 0; i < steps; ++i) step();
  c.system_allocs = be.stats().system_allocs - sys0;
  c.news = g_news.load() - new0;
  c.dnnl_execs = cpu::dnnl_executions() - ex0;
  c.dnnl_execs_beta = cpu::dnnl_executions_with_beta() - exb0;
  return c;
}

// The counts of the training step written out: zero_grad, forward + loss, backward,
// optimizer step, on one fixed batch.
StepCounts count_model_steps(models::LlamaModel& model, nn::ParamStore& trainable, int warm, int steps) {
  nn::OptimConfig oc;
  oc.lr = 1e-3;
  nn::Optimizer opt(trainable, oc);
  Rng rng(5);
  const int64_t B = 2, T = model.config().seq_len, V = model.config().vocab_size;
  std::vector<int32_t> a(static_cast<size_t>(B * T)), b(a.size());
  for (auto& x : a) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(V)));
  for (auto& x : b) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(V)));
  const Tensor ids = Tensor::from_i32(a, {B, T}), tg = Tensor::from_i32(b, {B, T});
  return count_steps(
      [&] {
        trainable.zero_grad();
        Tensor loss = model.loss(ids, tg);
        backward(loss);
        opt.step();
      },
      warm, steps);
}

// The same through models::Trainer, as the train/finetune tools run it: a fresh batch
// from the dataset every micro-batch, two micro-batches per step (scaled losses), the
// loss read back with item().
StepCounts count_trainer_steps(models::LlamaModel& model, nn::ParamStore& trainable, int warm, int steps) {
  Rng rng(6);
  std::vector<int32_t> tokens(2000);
  for (auto& x : tokens) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(model.config().vocab_size)));
  const models::TokenDataset data(tokens, 0.1, model.config().seq_len);
  nn::OptimConfig oc;
  oc.lr = 1e-3;
  models::TrainOptions to;
  to.batch = 2;
  to.accum = 2;
  models::Trainer trainer(model, trainable, oc, data, to);
  return count_steps([&] { trainer.step(); }, warm, steps);
}

models::LlamaConfig small_config() { return cg::testing::tiny_llama_config(16); }

// Sanitizer builds (CG_NO_ALLOC_CACHE) return every block to the system so ASan can see a
// use after free — the backend's block cache and the handle pools are off — so there the
// zero checks are off; the counts are still printed.
#ifdef CG_NO_ALLOC_CACHE
constexpr bool kAllocCache = false;
#else
constexpr bool kAllocCache = true;
#endif

// oneDNN 2.6's dnnl_primitive_execute builds a std::unordered_map of its arguments on every
// call (operator new inside the library; its C API offers no way around it). Its cost per
// execution, measured on one warm 64³ product at the current precision (which oneDNN runs
// where built in: bf16 on a CPU with bf16 dot products, f32 on AVX-512 by the fixed rule
// of engine/cpu/cpu_dnnl.h), with beta = 0 and with beta = 1 (a sum post-op: one more).
struct DnnlCost {
  int64_t per_exec[2] = {0, 0};
  int64_t of(const StepCounts& c) const {
    return per_exec[0] * (c.dnnl_execs - c.dnnl_execs_beta) + per_exec[1] * c.dnnl_execs_beta;
  }
};
DnnlCost dnnl_cost() {
  DnnlCost d;
  const int prev = num_threads();
  set_num_threads(1);
  const Tensor a = Tensor::ones({64, 64}), b = Tensor::ones({64, 64});
  Tensor c = Tensor::zeros({64, 64});
  Backend& be = backend_for(Device::CPU);
  for (int beta : {0, 1}) {
    be.gemm(mat(a), mat(b), mat(c), 1.0, beta);
    const int64_t n0 = g_news.load(), e0 = cpu::dnnl_executions();
    be.gemm(mat(a), mat(b), mat(c), 1.0, beta);
    const int64_t execs = cpu::dnnl_executions() - e0;
    CHECK(execs <= 1);
    d.per_exec[beta] = execs ? g_news.load() - n0 : 0;
  }
  set_num_threads(prev);
  MESSAGE(std::string(precision_name(gemm_precision())) << " GEMMs: oneDNN costs " << d.per_exec[0]
                                                        << " operator-new calls per "
                                                           "execution, "
                                                        << d.per_exec[1] << " with beta ≠ 0");
  CHECK(d.per_exec[0] <= 16);
  CHECK(d.per_exec[1] <= 16);
  return d;
}

// No backend allocation misses the cache, and operator new is called only inside oneDNN's
// executions (zero where oneDNN does not run), exactly their measured cost.
void check_zero(const std::string& what, int threads, const StepCounts& c, int steps, const DnnlCost& d = {}) {
  MESSAGE(what, ", ", threads, " thread(s): first step operator new ", c.cold_news, "; over ", steps,
          " steps after warm-up: system allocs ", c.system_allocs, ", operator new ", c.news, " (", c.dnnl_execs,
          " oneDNN executions, ", c.dnnl_execs_beta, " with beta ≠ 0)");
  if (kAllocCache) {
    CHECK(c.system_allocs == 0);
    CHECK(c.news == d.of(c));
  }
}

}  // namespace

TEST_CASE("a training step after warm-up takes nothing from the heap") {
  if (!kAllocCache) MESSAGE("sanitizer build: the caches are off, allocations are counted but not checked");
  {  // the counter is live: it sees an allocation made inside the library (a host copy)
    const int64_t n0 = g_news.load();
    const std::vector<double> v = Tensor::zeros({4}).to_f64_vector();
    CHECK(v.size() == 4);
    CHECK(g_news.load() - n0 >= 1);
  }
  const int prev = num_threads();
  const GemmPrecision prev_p = gemm_precision();
  set_gemm_precision(GemmPrecision::F32);
  const DnnlCost cost = dnnl_cost();
  constexpr int kWarm = 2, kSteps = 3;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    models::LlamaModel model(small_config(), 3);
    model.params().set_trainable(true);
    check_zero("pretrain", threads, count_model_steps(model, model.params(), kWarm, kSteps), kSteps);
    check_zero("pretrain (Trainer)", threads, count_trainer_steps(model, model.params(), kWarm, kSteps), kSteps);

    for (int v = 0; v < 4; ++v) {  // LoRA, MoSLoRA, LinChain, LinChain with chain biases
      const nn::AdapterKind kind = v == 0   ? nn::AdapterKind::LoRA
                                   : v == 1 ? nn::AdapterKind::MoSLoRA
                                            : nn::AdapterKind::LinChain;
      models::LlamaModel base(small_config(), 4);
      nn::AdapterConfig ac;
      ac.kind = kind;
      ac.rank = 4;
      ac.chain_bias = v == 3;
      nn::AdapterSet set = nn::attach_adapters(base.linears(), ac, 9);
      const std::string what = nn::adapter_kind_name(kind) + (ac.chain_bias ? " with chain biases" : "") + " fine-tune";
      check_zero(what, threads, count_model_steps(base, *set.store, kWarm, kSteps), kSteps);
      check_zero(what + " (Trainer)", threads, count_trainer_steps(base, *set.store, kWarm, kSteps), kSteps);
    }
    // Products large enough for oneDNN's f32 pieces (where the rule picks them).
    models::LlamaConfig big = small_config();
    big.dim = 64, big.hidden_dim = 128, big.seq_len = 64;
    models::LlamaModel model64(big, 5);
    model64.params().set_trainable(true);
    check_zero("pretrain, dim 64, T 64", threads, count_model_steps(model64, model64.params(), kWarm, kSteps), kSteps,
               cost);
  }
  set_num_threads(prev);
  set_gemm_precision(prev_p);
}

// With bf16 GEMMs the rounded copies of A and B come from the backend's block cache, so no
// backend allocation misses it, and operator new is called only inside oneDNN (check_zero).
TEST_CASE("a bf16 training step after warm-up: nothing from the backend's allocator, no operator new of ours") {
  const int prev = num_threads();
  const GemmPrecision prev_p = gemm_precision();
  set_gemm_precision(GemmPrecision::BF16);
  MESSAGE("bf16 GEMMs: " << cpu_bf16_gemm_path());
  const DnnlCost cost = dnnl_cost();
  constexpr int kWarm = 2, kSteps = 3;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    models::LlamaModel model(small_config(), 3);
    model.params().set_trainable(true);
    check_zero("pretrain (bf16)", threads, count_model_steps(model, model.params(), kWarm, kSteps), kSteps, cost);
    models::LlamaModel base(small_config(), 4);
    nn::AdapterConfig ac;
    ac.kind = nn::AdapterKind::LinChain;
    ac.rank = 4;
    nn::AdapterSet set = nn::attach_adapters(base.linears(), ac, 9);
    check_zero("LinChain fine-tune (Trainer, bf16)", threads, count_trainer_steps(base, *set.store, kWarm, kSteps),
               kSteps, cost);
    // The base's matrices stored once in bf16 (finetune --base-dtype bf16): no rounding blocks
    // for them where oneDNN reads their bits; the rest still from the cache.
    models::LlamaModel base16(small_config(), 4);
    nn::AdapterSet set16 = nn::attach_adapters(base16.linears(), ac, 9);
    base16.store_base_bf16();
    check_zero("LinChain fine-tune, bf16-stored base (Trainer)", threads,
               count_trainer_steps(base16, *set16.store, kWarm, kSteps), kSteps, cost);
  }
  set_num_threads(prev);
  set_gemm_precision(prev_p);
}
