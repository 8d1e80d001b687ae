// examples/adapter_tour.cpp — docs/04-adapters.md: LoRA, MoSLoRA and LinChain on one Linear
// layer: trainable-parameter counts, what B = 0 does to the first two steps (only B gets a
// gradient at step 0), and merging ΔW into the base weight and back out.
// Exit 1 if a count, a zero gradient or the merge does not come out as the page says.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "engine/tape.h"
#include "nn/adapters.h"
#include "models/study/gradflow.h"
#include "nn/optim.h"
#include "ops/ops.h"

using namespace cg;

namespace {

constexpr int64_t kIn = 8, kOut = 6, kRank = 2, kBatch = 16;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto u = a.to_f64_vector(), v = b.to_f64_vector();
  double m = 0;
  for (size_t i = 0; i < u.size(); ++i) m = std::max(m, std::fabs(u[i] - v[i]));
  return m;
}

}  // namespace

int main() {
  Rng g(11);
  const Tensor w0 = rand_uniform({kOut, kIn}, -0.3, 0.3, g);  // base weight [out, in], frozen
  const Tensor x = rand_normal({kBatch, kIn}, 0, 1, g), target = rand_normal({kBatch, kOut}, 0, 1, g);
  bool ok = true;

  std::printf("== 1. trainable parameters on one %lldx%lld layer, r = %lld (LinChain n = 3)\n", (long long)kOut,
              (long long)kIn, (long long)kRank);
  for (auto kind : {nn::AdapterKind::LoRA, nn::AdapterKind::MoSLoRA, nn::AdapterKind::LinChain}) {
    nn::Linear lin{w0.clone(), nullptr, Tensor(), false};
    nn::AdapterConfig cfg;
    cfg.kind = kind;
    cfg.rank = kRank;
    cfg.chain = 3;
    cfg.alpha = 2 * kRank;
    cfg.targets = {"q"};
    nn::AdapterSet set = nn::attach_adapters({{"layer.q_proj", &lin}}, cfg, /*seed=*/0);
    const int64_t formula = kRank * (kIn + kOut) + cfg.num_mixers() * kRank * kRank;
    std::printf("%-8s r(in+out) + n·r² = %lld + %d·%lld = %lld; the store holds %lld:",
                nn::adapter_kind_name(kind).c_str(), (long long)(kRank * (kIn + kOut)), cfg.num_mixers(),
                (long long)(kRank * kRank), (long long)formula, (long long)set.trainable_params());
    for (const auto& [name, t] : set.store->params())
      std::printf(" %s%s", name.substr(name.find("lora_")).c_str(), t.shape().str().c_str());
    std::printf("\n");
    ok &= formula == set.trainable_params();
  }

  std::printf("== 2. B = 0 at init: gradient norms of a LinChain adapter, AdamW lr 1e-2\n");
  nn::Linear lin{w0.clone(), nullptr, Tensor(), false};
  nn::AdapterConfig cfg;
  cfg.kind = nn::AdapterKind::LinChain;
  cfg.rank = kRank;
  cfg.chain = 3;
  cfg.alpha = 2 * kRank;
  cfg.targets = {"q"};
  nn::AdapterSet set = nn::attach_adapters({{"layer.q_proj", &lin}}, cfg, /*seed=*/0);
  nn::ChainAdapter& ad = *set.adapters[0].adapter;
  nn::OptimConfig oc;
  oc.lr = 1e-2;
  nn::Optimizer opt(*set.store, oc);
  std::vector<std::array<double, 3>> upd;  // per step: max |ΔA|, max |ΔB|, max |Δ(ΔW)|
  std::printf("step  |dL/dA|     |dL/dW1|    |dL/dW2|    |dL/dW3|    |dL/dB|     |dL/dP|\n");
  for (int step = 0; step < 3; ++step) {
    set.store->zero_grad();
    Tensor d = ops::sub(lin.forward(x), target);
    backward(ops::mean_all(ops::mul(d, d)));
    const double ga = nn::frobenius_norm(ad.a().grad()), gb = nn::frobenius_norm(ad.b().grad());
    std::printf("%4d  %.3e", step, ga);
    double gw_max = 0;
    for (const Tensor& w : ad.mixers()) {
      const double n = nn::frobenius_norm(w.grad());
      gw_max = std::max(gw_max, n);
      std::printf("   %.3e", n);
    }
    std::printf("   %.3e   %.3e\n", gb, nn::frobenius_norm(ad.probe().grad_product));
    if (step == 0) ok &= ga == 0 && gw_max == 0 && gb > 0;
    if (step == 2) ok &= ga > 0 && gw_max > 0 && gb > 0;
    const Tensor a0 = ad.a().clone(), b0 = ad.b().clone(), p0 = ad.delta_weight();
    opt.step();
    upd.push_back({max_abs_diff(ad.a(), a0), max_abs_diff(ad.b(), b0), max_abs_diff(ad.delta_weight(), p0)});
  }
  std::printf("step  max|change of A|  max|change of B|  max|change of ΔW|   (the AdamW step itself)\n");
  for (size_t i = 0; i < upd.size(); ++i)
    std::printf("%4zu  %.3e         %.3e         %.3e\n", i, upd[i][0], upd[i][1], upd[i][2]);
  ok &= upd[0][0] == 0 && upd[0][1] > 0.99 * oc.lr && upd[0][1] <= oc.lr * 1.0001;

  std::printf("== 3. merging: W ← W + ΔW, ΔW = s·B·W3ᵀ·W2ᵀ·W1ᵀ·Aᵀ (after the 3 steps above)\n");
  {
    NoGrad ng;
    const Tensor y_adapter = lin.forward(x);  // x·W₀ᵀ + s·x·A·W₁W₂W₃·Bᵀ
    lin.merge();
    const Tensor y_merged = lin.forward(x);  // x·(W₀ + ΔW)ᵀ, the adapter is skipped
    const double dy = max_abs_diff(y_adapter, y_merged);
    lin.unmerge();
    const double dw = max_abs_diff(lin.weight, w0);
    std::printf("|ΔW|_F = %.4e\n", nn::frobenius_norm(ad.delta_weight()));
    // Both differences are float32 rounding, whose digits depend on the CPU: shown as the bound.
    std::printf("max |y_adapter − y_merged| %s (float32 rounding)\n", dy < 1e-5 ? "< 1e-5" : "TOO LARGE");
    std::printf("max |W after unmerge − W₀|  %s (W + ΔW − ΔW is rounded twice in float32)\n",
                dw < 1e-6 ? "< 1e-6" : "TOO LARGE");
    ok &= dy < 1e-5 && dw < 1e-6;
  }
  std::printf("%s\n", ok ? "every check came out as expected" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
