// bench/bench_train.cpp — times chaingrad training steps for bench/compare: a random
// LlamaModel of a named config (tiny, small, smollm2), optionally with LoRA / MoSLoRA / LinChain
// adapters on q,k,v,up,down (the base then frozen), and Trainer-like steps (zero_grad,
// forward + loss, backward, AdamW with clip 1.0) on random token batches. Prints one JSON
// line like bench/torch_ref.py: median wall and CPU ms/step, tokens/s, peak RSS (getrusage),
// model FLOPs per step and the GFLOP/s they give.
// `--sgemm` instead times raw cblas_sgemm (the BLAS ceiling the step is compared with).
//
// usage: bench_train [--config tiny|small|smollm2] [--mode pretrain|lora|moslora|linchain]
//                    [--threads N] [--steps N] [--warmup N] [--rank R] [--chain N] [--chain-bias]
//        bench_train --sgemm [--threads N] [--size N]
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

}  // namespace

int main(int argc, char** argv) {
  std::string config = "tiny", mode = "pretrain";
  int threads = 2, steps = 10, warmup = 3, rank = 16, chain = 3, size = 1024;
  bool chain_bias = false;
  bool sgemm = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "bench_train: %s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    try {
      if (a == "--config") config = next();
      else if (a == "--mode") mode = next();
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "--steps") steps = std::stoi(next());
      else if (a == "--warmup") warmup = std::stoi(next());
      else if (a == "--rank") rank = std::stoi(next());
      else if (a == "--chain") chain = std::stoi(next());
      else if (a == "--size") size = std::stoi(next());
      else if (a == "--sgemm") sgemm = true;
      else if (a == "--chain-bias") chain_bias = true;
      else { std::fprintf(stderr, "bench_train: unknown flag %s\n", a.c_str()); return 2; }
    } catch (const std::exception&) {
      std::fprintf(stderr, "bench_train: bad value for %s\n", a.c_str());
      return 2;
    }
  }
  if (threads < 1 || steps < 1 || warmup < 0 || size < 16) { std::fprintf(stderr, "bench_train: bad counts\n"); return 2; }
  set_num_threads(threads);
  if (sgemm) {
    // Raw OpenBLAS with its own threading at the requested count (the engine itself runs
    // OpenBLAS single-threaded and splits GEMMs over its worker pool).
    openblas_set_num_threads(threads);
    const SgemmRate r = sgemm_gflops(size);
    std::printf("{\"impl\": \"openblas\", \"threads\": %d, \"sgemm_n\": %d, \"sgemm_gflops\": %.2f, "
                "\"sgemm_cpu_gflops\": %.2f}\n", threads, size, r.wall, r.cpu);
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
  const double matmul_params = static_cast<double>(cfg.n_layers * (2 * D * D + 2 * kvd * D + 3 * D * F) + cfg.vocab_size * D);
  const double tokens = static_cast<double>(B * T);
  const double attn = 12.0 * static_cast<double>(B) * T * T * D * cfg.n_layers;
  const double flops = 6.0 * matmul_params * tokens + attn;
  std::printf(
      "{\"impl\": \"chaingrad\", \"config\": \"%s\", \"mode\": \"%s\", \"threads\": %d, \"ms_per_step\": %.3f, \"cpu_ms_per_step\": %.3f, "
      "\"tok_s\": %.1f, \"peak_rss_mb\": %.1f, \"tensor_peak_mb\": %.1f, \"trainable_params\": %lld, \"model_gflop_per_step\": %.4f, "
      "\"gflops\": %.2f, \"loss\": %.4f}\n",
      config.c_str(), mode.c_str(), threads, step_ms, median(cpu_ms), tokens / (step_ms / 1000.0), peak_rss_mb(),
      static_cast<double>(backend_for(Device::CPU).stats().peak_bytes) / (1024.0 * 1024.0),
      static_cast<long long>(trainable->numel()), flops * 1e-9, flops * 1e-9 / (step_ms / 1000.0), loss);
  return 0;
}
