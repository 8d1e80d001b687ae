// bench/bench_train.cpp — times chaingrad training steps for bench/compare: a random
// LlamaModel of a named config (tiny, small, smollm2), optionally with LoRA / MoSLoRA / LinChain
// adapters on q,k,v,up,down (the base then frozen), and Trainer-like steps (zero_grad,
// forward + loss, backward, AdamW with clip 1.0) on random token batches. Prints one JSON
// line like bench/torch_ref.py: median wall and CPU ms/step, tokens/s, peak RSS (getrusage),
// model FLOPs per step and the GFLOP/s they give.
// `--precision bf16` runs every GEMM with bf16 inputs and f32 accumulation (engine/gemm.h).
// `--sgemm` instead times raw cblas_sgemm (the BLAS ceiling the step is compared with).
// `--gemm-libs` times, on one thread, every Linear's three products of a config's step
// (forward, input and weight gradients) with OpenBLAS f32, oneDNN f32 and oneDNN bf16, and
// the engine's own f32 and bf16 GEMM (bf16: with the input rounding), by thread CPU time.
//
// usage: bench_train [--config tiny|small|smollm2] [--mode pretrain|lora|moslora|linchain]
//                    [--threads N] [--steps N] [--warmup N] [--rank R] [--chain N] [--chain-bias]
//                    [--precision f32|bf16]
//        bench_train --sgemm [--threads N] [--size N]
//        bench_train --gemm-libs [--config tiny|small|smollm2]
#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/cpu_dnnl.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/llama/llama.h"
#include "nn/adapters.h"
#include "nn/optim.h"

using namespace cg;
using Clock = std::chrono::steady_clock;

namespace {

models::LlamaConfig named_config(const std::string& name) {
  models::LlamaConfig c;
  c.vocab_size = 512;
  c.seq_len = 256;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  if (name == "tiny") {
    c.dim = 64, c.n_layers = 5, c.hidden_dim = 172;
  } else if (name == "small") {
    c.dim = 256, c.n_layers = 6, c.hidden_dim = 688;
  } else if (name == "smollm2") {  // SmolLM2-135M's shape, on a short sequence (batch_of says 2)
    c.dim = 576, c.n_layers = 30, c.n_heads = 9, c.n_kv_heads = 3, c.hidden_dim = 1536, c.vocab_size = 49152;
    c.seq_len = 64;
  } else {
    std::fprintf(stderr, "bench_train: unknown config '%s' (tiny | small | smollm2)\n", name.c_str());
    std::exit(2);
  }
  return c;
}

// Sequences per batch: 8, and 2 for the SmolLM2 shape (so a step takes seconds, not minutes).
int64_t batch_of(const std::string& name) { return name == "smollm2" ? 2 : 8; }

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Best GFLOP/s of C[n,n] = A·B over a few repetitions, by wall time and by process CPU
// time (the latter is what a 1-thread step's CPU-time rate is compared with on a busy
// machine, where the wall clock also counts time spent waiting for a core).
struct SgemmRate {
  double wall, cpu;
};
SgemmRate sgemm_gflops(int64_t n) {
  std::vector<float> a(static_cast<size_t>(n * n), 0.5f), b(a), c(a);
  SgemmRate best{0, 0};
  const double flop = 2.0 * static_cast<double>(n) * n * n;
  for (int rep = 0; rep < 12; ++rep) {
    const auto t0 = Clock::now();
    const std::clock_t c0 = std::clock();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cs = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    if (rep < 2) continue;
    best.wall = std::max(best.wall, flop / s * 1e-9);
    if (cs > 0) best.cpu = std::max(best.cpu, flop / cs * 1e-9);
  }
  return best;
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Best GFLOP/s (thread CPU time) of f() doing `flop` operations, over a few repetitions.
template <class F>
double best_rate(double flop, F&& f) {
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const double t0 = thread_cpu_s();
    f();
    const double t = thread_cpu_s() - t0;
    if (rep > 0 && t > 0) best = std::max(best, flop / t * 1e-9);
  }
  return best;
}

// --gemm-libs: one JSON line per product, then the step's total for each library.
int gemm_libs(const models::LlamaConfig& cfg, int64_t batch) {
  set_num_threads(1);
  openblas_set_num_threads(1);
  const int64_t M = batch * cfg.seq_len, D = cfg.dim, KV = cfg.kv_dim(), F = cfg.hidden_dim;
  struct Lin {
    const char* name;
    int64_t in, out, count;
  };
  const std::vector<Lin> lins{{"q,o", D, D, 2 * cfg.n_layers},
                              {"k,v", D, KV, 2 * cfg.n_layers},
                              {"gate,up", D, F, 2 * cfg.n_layers},
                              {"down", F, D, cfg.n_layers},
                              {"head", D, cfg.vocab_size, 1}};
  const bool dnnl = cpu::dnnl_built(), bf16 = cpu::dnnl_has_bf16();
  std::printf("# gemm-libs: M = %lld tokens, one thread; oneDNN: %s\n", static_cast<long long>(M),
              cpu::dnnl_describe().c_str());
  double tot[5] = {0, 0, 0, 0, 0}, tot_flop = 0;  // seconds: openblas, dnnl f32, dnnl bf16, engine f32, engine bf16
  Backend& be = backend_for(Device::CPU);
  for (const Lin& l : lins) {
    // forward Y[M,out] = X·Wᵀ; dX[M,in] = dY·W; dW[out,in] = dYᵀ·X
    struct P {
      const char* what;
      bool ta, tb;
      int64_t m, n, k;
    };
    for (const P& p : {P{"fwd", false, true, M, l.out, l.in}, P{"dX", false, false, M, l.in, l.out},
                       P{"dW", true, false, l.out, l.in, M}}) {
      const int64_t ar = p.ta ? p.k : p.m, ac = p.ta ? p.m : p.k, br = p.tb ? p.n : p.k, bc = p.tb ? p.k : p.n;
      Rng rng(1);
      const Tensor a = rand_uniform({ar, ac}, -1, 1, rng), b = rand_uniform({br, bc}, -1, 1, rng);
      Tensor c = Tensor::zeros({p.m, p.n});
      const float *pa = a.data<float>(), *pb = b.data<float>();
      float* pc = c.data<float>();
      std::vector<uint16_t> a16(static_cast<size_t>(ar * ac)), b16(static_cast<size_t>(br * bc));
      for (size_t i = 0; i < a16.size(); ++i) a16[i] = cpu::bf16_bits(pa[i]);
      for (size_t i = 0; i < b16.size(); ++i) b16[i] = cpu::bf16_bits(pb[i]);
      const double flop = 2.0 * static_cast<double>(p.m) * p.n * p.k;
      double g[5] = {0, 0, 0, 0, 0};
      g[0] = best_rate(flop, [&] {
        cblas_sgemm(CblasRowMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans, p.m, p.n, p.k,
                    1.0f, pa, ac, pb, bc, 0.0f, pc, p.n);
      });
      if (dnnl)
        g[1] = best_rate(flop,
                         [&] { cpu::dnnl_gemm_f32(p.ta, p.tb, p.m, p.n, p.k, 1.0f, pa, ac, pb, bc, 0.0f, pc, p.n); });
      if (bf16)
        g[2] = best_rate(flop, [&] {
          cpu::dnnl_gemm_bf16(p.ta, p.tb, p.m, p.n, p.k, 1.0f, a16.data(), ac, b16.data(), bc, 0.0f, pc, p.n);
        });
      const MatView va = mat(a).t(p.ta), vb = mat(b).t(p.tb), vc = mat(c);
      set_gemm_precision(GemmPrecision::F32);
      g[3] = best_rate(flop, [&] { be.gemm(va, vb, vc); });
      set_gemm_precision(GemmPrecision::BF16);
      g[4] = best_rate(flop, [&] { be.gemm(va, vb, vc); });
      set_gemm_precision(GemmPrecision::F32);
      std::printf(
          "{\"linear\": \"%s\", \"product\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"count\": %lld, "
          "\"openblas_f32\": %.1f, \"dnnl_f32\": %.1f, \"dnnl_bf16\": %.1f, \"engine_f32\": %.1f, \"engine_bf16\": %.1f}\n",
          l.name, p.what, static_cast<long long>(p.m), static_cast<long long>(p.n), static_cast<long long>(p.k),
          static_cast<long long>(l.count), g[0], g[1], g[2], g[3], g[4]);
      tot_flop += flop * static_cast<double>(l.count);
      for (int i = 0; i < 5; ++i) tot[i] += g[i] > 0 ? flop * static_cast<double>(l.count) / (g[i] * 1e9) : 0;
    }
  }
  std::printf(
      "{\"total\": true, \"gflop\": %.2f, \"openblas_f32_s\": %.4f, \"dnnl_f32_s\": %.4f, \"dnnl_bf16_s\": %.4f, "
      "\"engine_f32_s\": %.4f, \"engine_bf16_s\": %.4f}\n",
      tot_flop * 1e-9, tot[0], tot[1], tot[2], tot[3], tot[4]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = "tiny", mode = "pretrain", precision = "f32";
  int threads = 2, steps = 10, warmup = 3, rank = 16, chain = 3, size = 1024;
  bool chain_bias = false;
  bool sgemm = false, gemm_libs_mode = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--config") config = next();
      else if (a == "--mode") mode = next();
      else if (a == "--precision") precision = next();
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "--steps") steps = std::stoi(next());
      else if (a == "--warmup") warmup = std::stoi(next());
      else if (a == "--rank") rank = std::stoi(next());
      else if (a == "--chain") chain = std::stoi(next());
      else if (a == "--size") size = std::stoi(next());
      else if (a == "--sgemm") sgemm = true;
      else if (a == "--gemm-libs") gemm_libs_mode = true;
      else if (a == "--chain-bias") chain_bias = true;
      else {
        std::fprintf(stderr, "bench_train: unknown flag %s\n", a.c_str());
        return 2;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "bench_train: bad value for %s\n", a.c_str());
      return 2;
    }
  }
  if (threads < 1 || steps < 1 || warmup < 0 || size < 16) {
    std::fprintf(stderr, "bench_train: bad counts\n");
    return 2;
  }
  if (precision != "f32" && precision != "bf16") {
    std::fprintf(stderr, "bench_train: --precision must be f32 or bf16, got '%s'\n", precision.c_str());
    return 2;
  }
  set_num_threads(threads);
  set_gemm_precision(precision == "bf16" ? GemmPrecision::BF16 : GemmPrecision::F32);
  if (gemm_libs_mode) {  // the config's step; the SmolLM2 shape on one sequence of 256 tokens
    models::LlamaConfig c = named_config(config);
    if (config == "smollm2") c.seq_len = 256;
    return gemm_libs(c, config == "smollm2" ? 1 : batch_of(config));
  }
  if (sgemm) {
    // Raw OpenBLAS with its own threading at the requested count (the engine itself runs
    // OpenBLAS single-threaded and splits GEMMs over its worker pool).
    openblas_set_num_threads(threads);
    const SgemmRate r = sgemm_gflops(size);
    std::printf(
        "{\"impl\": \"openblas\", \"threads\": %d, \"sgemm_n\": %d, \"sgemm_gflops\": %.2f, "
        "\"sgemm_cpu_gflops\": %.2f}\n",
        threads, size, r.wall, r.cpu);
    return 0;
  }
  if (mode != "pretrain" && mode != "lora" && mode != "moslora" && mode != "linchain") {
    std::fprintf(stderr, "bench_train: unknown mode '%s'\n", mode.c_str());
    return 2;
  }

  const models::LlamaConfig cfg = named_config(config);
  models::LlamaModel model(cfg, 1234);
  nn::AdapterSet adapters;
  nn::ParamStore* trainable = &model.params();
  if (mode == "pretrain") {
    model.params().set_trainable(true);
  } else {
    nn::AdapterConfig ac;
    ac.kind = nn::parse_adapter_kind(mode);
    ac.rank = rank;
    ac.chain = chain;
    ac.alpha = 2.0 * rank;
    ac.chain_bias = chain_bias;
    adapters = nn::attach_adapters(model.linears(), ac, 7);
    trainable = adapters.store.get();
  }
  nn::OptimConfig oc;
  oc.lr = 1e-3;
  oc.weight_decay = 0.0;
  oc.clip = 1.0;
  nn::Optimizer opt(*trainable, oc);

  // A few random batches, made before timing and reused in turn.
  const int64_t B = batch_of(config), T = cfg.seq_len;
  Rng rng(99);
  std::vector<Tensor> ids, tgt;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> a(static_cast<size_t>(B * T)), b(a.size());
    for (auto& x : a) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size)));
    for (auto& x : b) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size)));
    ids.push_back(Tensor::from_i32(a, {B, T}));
    tgt.push_back(Tensor::from_i32(b, {B, T}));
  }

  std::vector<double> ms, cpu_ms;
  double loss = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    const auto t0 = Clock::now();
    const std::clock_t c0 = std::clock();
    trainable->zero_grad();
    Tensor l = model.loss(ids[static_cast<size_t>(i % 4)], tgt[static_cast<size_t>(i % 4)]);
    loss = l.item();
    backward(l);
    opt.step();
    const double dt = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const double cdt = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    if (i >= warmup) {
      ms.push_back(dt);
      cpu_ms.push_back(cdt);
    }
  }
  const double step_ms = median(ms);
  // Model FLOPs of a pretraining step: 6 per weight per token for every projection and the
  // head (forward 2, backward 4), plus attention's four [T,T]-by-D products over every
  // head, forward and backward (12·B·T²·dim per layer, the full square as computed).
  const int64_t D = cfg.dim, kvd = cfg.kv_dim(), F = cfg.hidden_dim;
  const double matmul_params =
      static_cast<double>(cfg.n_layers * (2 * D * D + 2 * kvd * D + 3 * D * F) + cfg.vocab_size * D);
  const double tokens = static_cast<double>(B * T);
  const double attn = 12.0 * static_cast<double>(B) * T * T * D * cfg.n_layers;
  const double flops = 6.0 * matmul_params * tokens + attn;
  std::printf(
      "{\"impl\": \"chaingrad\", \"variant\": \"%s\", \"config\": \"%s\", \"mode\": \"%s\", \"threads\": %d, \"ms_per_step\": %.3f, \"cpu_ms_per_step\": %.3f, "
      "\"tok_s\": %.1f, \"peak_rss_mb\": %.1f, \"tensor_peak_mb\": %.1f, \"trainable_params\": %lld, \"model_gflop_per_step\": %.4f, "
      "\"gflops\": %.2f, \"loss\": %.4f}\n",
      precision.c_str(), config.c_str(), mode.c_str(), threads, step_ms, median(cpu_ms), tokens / (step_ms / 1000.0),
      peak_rss_mb(), static_cast<double>(backend_for(Device::CPU).stats().peak_bytes) / (1024.0 * 1024.0),
      static_cast<long long>(trainable->numel()), flops * 1e-9, flops * 1e-9 / (step_ms / 1000.0), loss);
  return 0;
}
