// tests/test_adapters.cpp — adapters (config parsing, attach, init schemes, merge/unmerge,
// the chain probe, frozen base) and optimizers (AdamW/SGD by hand, clipping, schedule,
// gradient accumulation) on a tiny stand-alone stack of Linear modules.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "nn/adapters.h"
#include "nn/optim.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace cg;
using namespace cg::nn;
using cg::testing::matmul_rm;
using cg::testing::max_abs_diff;
using cg::testing::transpose_rm;

namespace {


// A three-module stand-in for a transformer block: y = down(silu(o(q(x)))), base weights in
// one frozen store under HF-like names.
struct Tiny {
  static constexpr int64_t kIn = 12, kHid = 20;
  ParamStore base{"base"};
  Linear q, o, down;
  Tiny(uint64_t seed = 7) {
    Rng rng(seed);
    q.weight = base.add("model.layers.0.self_attn.q_proj.weight", rand_uniform({kHid, kIn}, -0.3, 0.3, rng));
    o.weight = base.add("model.layers.0.self_attn.o_proj.weight", rand_uniform({kHid, kHid}, -0.3, 0.3, rng));
    down.weight = base.add("model.layers.0.mlp.down_proj.weight", rand_uniform({kIn, kHid}, -0.3, 0.3, rng));
    base.finalize();
    base.set_trainable(false);
  }
  std::vector<std::pair<std::string, Linear*>> linears() {
    return {{"model.layers.0.self_attn.q_proj", &q},
            {"model.layers.0.self_attn.o_proj", &o},
            {"model.layers.0.mlp.down_proj", &down}};
  }
  Tensor forward(const Tensor& x) { return down.forward(ops::silu(o.forward(q.forward(x)))); }
  Tensor loss(const Tensor& x) {
    Tensor y = forward(x);
    return ops::mean_all(ops::mul(y, y));
  }
};

Tensor input(uint64_t seed = 3, int64_t b = 2, int64_t t = 5) {
  Rng rng(seed);
  return rand_uniform({b, t, Tiny::kIn}, -1, 1, rng);
}

// Gives every B a non-zero random value so the adapters change the output.
void randomize_b(AdapterSet& set, uint64_t seed = 11) {
  Rng rng(seed);
  for (auto& a : set.adapters) {
    Tensor b = a.adapter->b();
    Tensor v = rand_uniform(b.shape(), -0.5, 0.5, rng);
    Tensor bb = b;
    bb.copy_from(v);
  }
}

// Adapters on m (seed 8) with a random B, so that every factor has a gradient, after one
// backward of the loss on input().
AdapterSet attach_with_grads(Tiny& m, const AdapterConfig& cfg) {
  AdapterSet set = attach_adapters(m.linears(), cfg, 8);
  randomize_b(set);
  set.store->zero_grad();
  backward(m.loss(input()));
  return set;
}

// ∂L/∂t[i] of m's loss on input() by a central difference with step h (no tape); t is left
// as it was.
double numeric_grad(Tiny& m, Tensor t, size_t i, double h = 1e-2) {
  auto loss_at = [&](double delta) {
    NoGrad ng;
    auto v = t.to_f64_vector();
    v[i] += delta;
    t.copy_from(Tensor::from(v, t.shape()));
    const double l = m.loss(input()).item();
    v[i] -= delta;
    t.copy_from(Tensor::from(v, t.shape()));
    return l;
  };
  return (loss_at(h) - loss_at(-h)) / (2 * h);
}

AdapterConfig config(AdapterKind kind, int chain = 3, MixerInit init = MixerInit::Kaiming) {
  AdapterConfig c;
  c.kind = kind;
  c.rank = 4;
  c.chain = chain;
  c.alpha = 8;
  c.init = init;
  return c;
}

}  // namespace

TEST_CASE("adapter config strings") {
  CHECK(parse_adapter_kind("LinChain") == AdapterKind::LinChain);
  CHECK(parse_adapter_kind("moslora") == AdapterKind::MoSLoRA);
  CHECK(parse_adapter_kind(" lora ") == AdapterKind::LoRA);
  CHECK_THROWS_AS(parse_adapter_kind("dora"), FormatError);
  CHECK(parse_mixer_init("orthogonal") == MixerInit::Orthogonal);
  CHECK(mixer_init_name(parse_mixer_init("identity")) == "identity");
  CHECK_THROWS_AS(parse_mixer_init("xavier"), FormatError);
  CHECK(parse_targets("down,q_proj, v,q") == std::vector<std::string>{"q", "v", "down"});
  CHECK(target_modules_csv(parse_targets("q,k,v,up,down")) == "q_proj,k_proj,v_proj,up_proj,down_proj");
  CHECK(target_short_name("gate_proj") == "gate");
  CHECK_THROWS_AS(parse_targets("q,x"), FormatError);
  CHECK_THROWS_AS(parse_targets(" , "), FormatError);
  AdapterConfig c;
  CHECK(c.num_mixers() == 0);
  c.kind = AdapterKind::MoSLoRA;
  CHECK(c.num_mixers() == 1);
  c.kind = AdapterKind::LinChain;
  CHECK(c.num_mixers() == 3);
  CHECK(c.scale() == doctest::Approx(2.0));
  c.rank = 0;
  CHECK_THROWS_AS(c.validate(), FormatError);
}

TEST_CASE("attach_adapters: targets, names, counts, init") {
  for (AdapterKind kind : {AdapterKind::LoRA, AdapterKind::MoSLoRA, AdapterKind::LinChain}) {
    Tiny m;
    AdapterConfig cfg = config(kind, 3);
    AdapterSet set = attach_adapters(m.linears(), cfg, 42);
    // Default targets q,k,v,up,down: q_proj and down_proj, not o_proj.
    REQUIRE(set.adapters.size() == 2);
    CHECK(set.adapters[0].module == "model.layers.0.self_attn.q_proj");
    CHECK(set.adapters[1].module == "model.layers.0.mlp.down_proj");
    CHECK(m.q.adapter != nullptr);
    CHECK(m.o.adapter == nullptr);
    const int n = cfg.num_mixers();
    const int64_t r = 4, expect = r * (Tiny::kIn + Tiny::kHid) * 2 + 2 * n * r * r;
    CHECK(set.trainable_params() == expect);
    CHECK(set.store->trainable());
    CHECK(set.store->group() == "adapters");
    // Names in order: A, mixers, B per module.
    const auto& ps = set.store->params();
    REQUIRE(ps.size() == static_cast<size_t>(2 * (2 + n)));
    CHECK(ps[0].first == "model.layers.0.self_attn.q_proj.lora_A.weight");
    if (kind == AdapterKind::MoSLoRA) CHECK(ps[1].first == "model.layers.0.self_attn.q_proj.lora_AB.weight");
    if (kind == AdapterKind::LinChain) CHECK(ps[3].first == "model.layers.0.self_attn.q_proj.lora_mixer.2.weight");
    CHECK(ps[static_cast<size_t>(1 + n)].first == "model.layers.0.self_attn.q_proj.lora_B.weight");
    // Init: A within the kaiming bound 1/√in and not all zero, B zeros, mixers within 1/√r.
    const auto a = set.adapters[0].adapter->a().to_f64_vector();
    double amax = 0;
    for (double v : a) amax = std::max(amax, std::abs(v));
    CHECK(amax > 0.1);
    CHECK(amax <= 1.0 / std::sqrt(double(Tiny::kIn)));
    for (double v : set.adapters[0].adapter->b().to_f64_vector()) CHECK(v == 0.0);
    for (const Tensor& w : set.adapters[1].adapter->mixers())
      for (double v : w.to_f64_vector()) CHECK(std::abs(v) <= 0.5);
    // Same seed → same values; a second attach on the same modules is refused.
    Tiny m2;
    AdapterSet set2 = attach_adapters(m2.linears(), cfg, 42);
    CHECK(max_abs_diff(set.store->flat(), set2.store->flat()) == 0.0);
    CHECK_THROWS_AS(attach_adapters(m.linears(), cfg, 1), FormatError);
  }
  Tiny m;
  AdapterConfig cfg = config(AdapterKind::LoRA);
  cfg.targets = {"gate"};
  CHECK_THROWS_AS(attach_adapters(m.linears(), cfg, 1), FormatError);
  cfg.targets = parse_targets("q,k,v,o,gate,up,down");
  CHECK(attach_adapters(m.linears(), cfg, 1).adapters.size() == 3);
}

TEST_CASE("mixer init: identity and orthogonal are what they say") {
  Tiny m;
  AdapterSet id = attach_adapters(m.linears(), config(AdapterKind::LinChain, 3, MixerInit::Identity), 5);
  for (const auto& a : id.adapters)
    for (const Tensor& w : a.adapter->mixers()) {
      const auto v = w.to_f64_vector();
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) CHECK(v[static_cast<size_t>(i * 4 + j)] == (i == j ? 1.0 : 0.0));
    }
  Tiny m2;
  AdapterSet orth = attach_adapters(m2.linears(), config(AdapterKind::LinChain, 3, MixerInit::Orthogonal), 5);
  std::vector<std::vector<double>> seen;
  for (const auto& a : orth.adapters)
    for (const Tensor& w : a.adapter->mixers()) {
      const auto v = w.to_f64_vector();
      const auto wtw = matmul_rm(transpose_rm(v, 4, 4), v, 4, 4, 4), wwt = matmul_rm(v, transpose_rm(v, 4, 4), 4, 4, 4);
      std::vector<double> eye(16, 0.0);
      for (int i = 0; i < 4; ++i) eye[static_cast<size_t>(i * 5)] = 1.0;
      CHECK(max_abs_diff(wtw, eye) < 1e-6);
      CHECK(max_abs_diff(wwt, eye) < 1e-6);
      CHECK(max_abs_diff(v, eye) > 0.1);                           // not the identity
      for (const auto& s : seen) CHECK(max_abs_diff(v, s) > 0.1);  // a fresh draw each time
      seen.push_back(v);
    }
  // Larger n in double: orthogonal to rounding.
  Rng rng(9);
  const auto q = random_orthogonal(16, rng, DType::F64).to_f64_vector();
  const auto qtq = matmul_rm(transpose_rm(q, 16, 16), q, 16, 16, 16);
  std::vector<double> eye(256, 0.0);
  for (int i = 0; i < 16; ++i) eye[static_cast<size_t>(i * 17)] = 1.0;
  CHECK(max_abs_diff(qtq, eye) < 1e-12);
}

TEST_CASE("delta_weight, merge and unmerge") {
  for (int chain : {0, 1, 3}) {
    Tiny m;
    const AdapterKind kind = chain == 0 ? AdapterKind::LoRA : AdapterKind::LinChain;
    AdapterSet set = attach_adapters(m.linears(), config(kind, chain == 0 ? 3 : chain), 21);
    randomize_b(set);
    // ΔW = s·(A·W₁⋯Wₙ·Bᵀ)ᵀ by hand, in double.
    for (const auto& a : set.adapters) {
      ChainAdapter& ad = *a.adapter;
      const int64_t in = ad.in_features(), out = ad.out_features(), r = ad.rank();
      auto p = ad.a().to_f64_vector();
      for (const Tensor& w : ad.mixers()) p = matmul_rm(p, w.to_f64_vector(), in, r, r);
      auto dw = transpose_rm(matmul_rm(p, transpose_rm(ad.b().to_f64_vector(), out, r), in, r, out), in, out);
      for (double& v : dw) v *= ad.scale();
      CHECK(max_abs_diff(ad.delta_weight().to_f64_vector(), dw) < 1e-6);
    }
    const Tensor x = input();
    NoGrad ng;
    const std::vector<double> base_q = m.q.weight.to_f64_vector(), base_d = m.down.weight.to_f64_vector();
    const Tensor y_plain = [&] {
      set.detach();
      Tensor y = m.forward(x);
      for (auto& a : set.adapters) a.linear->adapter = a.adapter;
      return y;
    }();
    const Tensor y_adapter = m.forward(x);
    CHECK(max_abs_diff(y_adapter, y_plain) > 1e-3);  // the adapters do something
    set.merge_all();
    CHECK(set.adapters[0].adapter->merged);
    CHECK(max_abs_diff(m.q.weight.to_f64_vector(), base_q) > 1e-3);
    const Tensor y_merged = m.forward(x);
    const double dm = max_abs_diff(y_merged, y_adapter);
    MESSAGE("chain " << chain << ": |merged − adapter| = " << dm);
    CHECK(dm <= 1e-5);
    set.merge_all();  // a second merge is a no-op
    CHECK(max_abs_diff(m.forward(x), y_merged) == 0.0);
    set.unmerge_all();
    const double du =
        std::max(max_abs_diff(m.q.weight.to_f64_vector(), base_q), max_abs_diff(m.down.weight.to_f64_vector(), base_d));
    MESSAGE("chain " << chain << ": |unmerged − base| = " << du);
    CHECK(du <= 1e-6);
    CHECK(max_abs_diff(m.forward(x), y_adapter) <= 1e-6);
  }
}

TEST_CASE("chain probe: P, dL/dP and its split across the factors") {
  Tiny m;
  AdapterSet set = attach_with_grads(m, config(AdapterKind::LinChain, 3));
  for (const auto& a : set.adapters) {
    ChainAdapter& ad = *a.adapter;
    ops::ChainProbe& pr = ad.probe();
    CHECK(pr.span_begin == 1);
    CHECK(pr.span_end == 4);
    const auto w1 = ad.mixers()[0].to_f64_vector(), w2 = ad.mixers()[1].to_f64_vector(),
               w3 = ad.mixers()[2].to_f64_vector();
    REQUIRE(pr.product.defined());
    CHECK(max_abs_diff(pr.product.to_f64_vector(), matmul_rm(matmul_rm(w1, w2, 4, 4, 4), w3, 4, 4, 4)) < 1e-6);
    REQUIRE(pr.grad_product.defined());
    REQUIRE(pr.grad_factors.size() == 3);
    const auto g = pr.grad_product.to_f64_vector();
    double gmax = 0;
    for (double v : g) gmax = std::max(gmax, std::abs(v));
    CHECK(gmax > 1e-4);
    // ∂L/∂Wᵢ = (W₁⋯Wᵢ₋₁)ᵀ · ∂L/∂P · (Wᵢ₊₁⋯Wₙ)ᵀ
    const auto g1 = matmul_rm(g, transpose_rm(matmul_rm(w2, w3, 4, 4, 4), 4, 4), 4, 4, 4);
    const auto g2 = matmul_rm(matmul_rm(transpose_rm(w1, 4, 4), g, 4, 4, 4), transpose_rm(w3, 4, 4), 4, 4, 4);
    const auto g3 = matmul_rm(transpose_rm(matmul_rm(w1, w2, 4, 4, 4), 4, 4), g, 4, 4, 4);
    const std::vector<std::vector<double>> expect{g1, g2, g3};
    for (size_t i = 0; i < 3; ++i) {
      CHECK(max_abs_diff(pr.grad_factors[i].to_f64_vector(), expect[i]) < 1e-5);
      // One forward per module, so the probe's share is the whole gradient.
      CHECK(max_abs_diff(ad.mixers()[i].grad().to_f64_vector(), expect[i]) < 1e-5);
    }
  }
  // One mixer gradient against a central finite difference of the loss.
  ChainAdapter& ad = *set.adapters[0].adapter;
  Tensor w = ad.mixers()[1];
  const double analytic = w.grad().to_f64_vector()[5];
  const double numeric = numeric_grad(m, w, 5);
  MESSAGE("dL/dW2[1,1]: analytic " << analytic << ", numeric " << numeric);
  CHECK(std::abs(analytic - numeric) <= 2e-3 * std::max(1.0, std::abs(analytic)));
}

TEST_CASE("chain probe with chain biases: β, ∂L/∂bᵢ and each factor's two shares") {
  Tiny m;
  AdapterConfig cfg = config(AdapterKind::LinChain, 3);
  cfg.chain_bias = true;
  AdapterSet set = attach_with_grads(m, cfg);
  for (const auto& a : set.adapters) {
    ChainAdapter& ad = *a.adapter;
    ops::ChainProbe& pr = ad.probe();
    REQUIRE(ad.biases().size() == 3);
    const auto w2 = ad.mixers()[1].to_f64_vector(), w3 = ad.mixers()[2].to_f64_vector();
    const auto b1 = ad.biases()[0].to_f64_vector(), b2 = ad.biases()[1].to_f64_vector(),
               b3 = ad.biases()[2].to_f64_vector();
    // β = b₁·W₂·W₃ + b₂·W₃ + b₃
    std::vector<double> beta = matmul_rm(matmul_rm(b1, w2, 1, 4, 4), w3, 1, 4, 4);
    const auto t2 = matmul_rm(b2, w3, 1, 4, 4);
    for (size_t i = 0; i < 4; ++i) beta[i] += t2[i] + b3[i];
    REQUIRE(pr.beta.defined());
    CHECK(max_abs_diff(pr.beta.to_f64_vector(), beta) < 1e-6);
    CHECK(max_abs_diff(ad.beta().to_f64_vector(), beta) < 1e-6);
    REQUIRE(pr.grad_biases.size() == 3);
    REQUIRE(pr.grad_factors_bias.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      CHECK(max_abs_diff(pr.grad_biases[i].to_f64_vector(), ad.biases()[i].grad().to_f64_vector()) < 1e-7);
      // The whole gradient of a factor is its share through P plus the bias path's.
      std::vector<double> sum = pr.grad_factors[i].to_f64_vector();
      const std::vector<double> extra = i == 0 ? std::vector<double>(16, 0.0) : pr.grad_factors_bias[i].to_f64_vector();
      CHECK((i != 0 || !pr.grad_factors_bias[0].defined()));  // nothing is before b₁ to see W₁
      for (size_t e = 0; e < sum.size(); ++e) sum[e] += extra[e];
      CHECK(max_abs_diff(ad.mixers()[i].grad().to_f64_vector(), sum) < 1e-6);
    }
    // ∂L/∂b₃ = s·Bᵀ·Σ_rows ∂L/∂y is nonzero once B is (B was randomised).
    double gmax = 0;
    for (double v : pr.grad_biases[2].to_f64_vector()) gmax = std::max(gmax, std::abs(v));
    CHECK(gmax > 1e-6);
  }
  // One bias gradient against a central finite difference of the loss.
  ChainAdapter& ad = *set.adapters[0].adapter;
  Tensor b = ad.biases()[0];
  const double analytic = b.grad().to_f64_vector()[2];
  const double numeric = numeric_grad(m, b, 2);
  MESSAGE("dL/db1[2]: analytic " << analytic << ", numeric " << numeric);
  CHECK(std::abs(analytic - numeric) <= 2e-3 * std::max(1.0, std::abs(analytic)));
  AdapterConfig mos = config(AdapterKind::MoSLoRA, 1);
  mos.chain_bias = true;  // the authors' MoSLoRA mixer has no bias
  CHECK_THROWS_AS(mos.validate(), FormatError);
}

TEST_CASE("LoRA with a bias in B's span: Δy = s·(x·A + b)·Bᵀ, β = b, ∂L/∂b and ∂L/∂A by finite differences") {
  Tiny m;
  AdapterConfig cfg = config(AdapterKind::LoRA);
  cfg.chain_bias = true;
  CHECK(cfg.num_biases() == 1);
  const Tensor x = input();
  Tensor y_base;
  {
    NoGrad ng;
    y_base = m.q.forward(x);  // before any adapter
  }
  AdapterSet set = attach_with_grads(m, cfg);
  CHECK(set.store->numel() == (12 + 20) * 4 + (20 + 12) * 4 + 2 * 4);  // q and down: A, B, and b [r] each
  for (const auto& a : set.adapters) {
    ChainAdapter& ad = *a.adapter;
    REQUIRE(ad.biases().size() == 1);
    CHECK(ad.biases()[0].numel() == 4);
    CHECK(set.store->has(a.module + ".lora_A.bias"));
    // nn.Linear(r, r)'s bias init, U(±1/√r) = U(±0.5), and not all zero
    double bmax = 0;
    for (double v : ad.biases()[0].to_f64_vector()) bmax = std::max(bmax, std::abs(v));
    CHECK(bmax > 0);
    CHECK(bmax <= 0.5);
    CHECK(max_abs_diff(ad.beta().to_f64_vector(), ad.biases()[0].to_f64_vector()) == 0);
    // Δb = s·B·b
    const auto B = ad.b().to_f64_vector(), bv = ad.biases()[0].to_f64_vector();
    const int64_t out = ad.out_features();
    std::vector<double> db(static_cast<size_t>(out), 0.0);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < 4; ++k)
        db[static_cast<size_t>(o)] += ad.scale() * B[static_cast<size_t>(o * 4 + k)] * bv[static_cast<size_t>(k)];
    CHECK(max_abs_diff(ad.delta_bias().to_f64_vector(), db) < 1e-6);
    CHECK(!ad.probe().beta.defined());  // LoRA has no span to report β on
  }
  // The forward of q_proj against the formula, in double on the host.
  {
    NoGrad ng;
    ChainAdapter& ad = *set.adapters[0].adapter;
    const auto xv = x.to_f64_vector(), A = ad.a().to_f64_vector(), B = ad.b().to_f64_vector(),
               bv = ad.biases()[0].to_f64_vector(), yb = y_base.to_f64_vector();
    const int64_t rows = 10, in = 12, out = 20, r = 4;
    std::vector<double> expect = yb;
    for (int64_t i = 0; i < rows; ++i) {
      std::vector<double> h(static_cast<size_t>(r));
      for (int64_t k = 0; k < r; ++k) {
        h[static_cast<size_t>(k)] = bv[static_cast<size_t>(k)];
        for (int64_t c = 0; c < in; ++c)
          h[static_cast<size_t>(k)] += xv[static_cast<size_t>(i * in + c)] * A[static_cast<size_t>(c * r + k)];
      }
      for (int64_t o = 0; o < out; ++o)
        for (int64_t k = 0; k < r; ++k)
          expect[static_cast<size_t>(i * out + o)] +=
              ad.scale() * h[static_cast<size_t>(k)] * B[static_cast<size_t>(o * r + k)];
    }
    CHECK(max_abs_diff(m.q.forward(x).to_f64_vector(), expect) < 1e-5);
  }
  // ∂L/∂b and ∂L/∂A against central differences of the loss (every module, one element each).
  for (const auto& a : set.adapters) {
    ChainAdapter& ad = *a.adapter;
    for (const auto& [t, i] : {std::pair<Tensor, size_t>{ad.biases()[0], 1}, std::pair<Tensor, size_t>{ad.a(), 5}}) {
      const double analytic = t.grad().to_f64_vector()[i];
      const double numeric = numeric_grad(m, t, i);
      INFO(a.module << " element " << i << ": analytic " << analytic << ", numeric " << numeric);
      CHECK(std::abs(analytic) > 1e-5);  // B is random: the bias has a gradient
      CHECK(std::abs(analytic - numeric) <= 2e-3 * std::max(1.0, std::abs(analytic)));
    }
  }
  // Merging folds s·B·b into the output bias and changes nothing else.
  {
    NoGrad ng;
    const Tensor y = m.forward(x);
    set.merge_all();
    CHECK(m.q.bias.defined());
    CHECK(max_abs_diff(m.forward(x).to_f64_vector(), y.to_f64_vector()) < 1e-5);
    set.unmerge_all();
  }
}

TEST_CASE("frozen base: no grad buffers, no weight-gradient GEMMs") {
  Tiny m;
  AdapterSet set = attach_adapters(m.linears(), config(AdapterKind::LinChain, 3), 2);
  randomize_b(set);
  const Tensor x = input();
  auto backward_gemms = [&] {
    set.store->zero_grad();
    Tensor l = m.loss(x);
    Backend& be = backend_for(Device::CPU);
    const int64_t before = be.stats().gemm_calls;
    backward(l);
    return be.stats().gemm_calls - before;
  };
  const int64_t frozen = backward_gemms();
  CHECK(!m.q.weight.requires_grad());
  CHECK(!m.q.weight.grad().defined());
  CHECK(!m.o.weight.grad().defined());
  CHECK(!m.base.flat_grad().defined());
  CHECK(set.adapters[0].adapter->a().grad().defined());
  m.base.set_trainable(true);
  const int64_t full = backward_gemms();
  MESSAGE("backward GEMMs: frozen base " << frozen << ", trainable base " << full);
  // Exactly one weight-gradient GEMM per base Linear goes away.
  CHECK(full - frozen == 3);
}

TEST_CASE("optimizer: AdamW and SGD by hand for two steps") {
  auto make_store = [] {
    auto s = std::make_unique<ParamStore>("p");
    s->add("a", Tensor::from({1.0, -2.0, 0.5}, {3}));
    s->add("b", Tensor::from({0.25}, {1}));
    s->finalize();
    s->set_trainable(true);
    return s;
  };
  const std::vector<std::vector<double>> grads{{0.1, -0.3, 2.0, -0.05}, {0.2, 0.1, -1.0, 0.4}};
  auto set_grad = [](ParamStore& s, const std::vector<double>& g) { s.flat_grad().copy_from(Tensor::from(g, {4})); };

  SUBCASE("adamw") {
    auto s = make_store();
    OptimConfig c;
    c.lr = 0.1;
    c.weight_decay = 0.01;
    c.clip = 0;
    Optimizer opt(*s, c);
    std::vector<double> p{1.0, -2.0, 0.5, 0.25}, mm1(4, 0.0), vv(4, 0.0);
    for (int t = 1; t <= 2; ++t) {
      set_grad(*s, grads[static_cast<size_t>(t - 1)]);
      const auto info = opt.step();
      CHECK(info.lr == doctest::Approx(0.1));
      for (size_t i = 0; i < 4; ++i) {
        const double g = grads[static_cast<size_t>(t - 1)][i];
        p[i] *= 1 - 0.1 * 0.01;
        mm1[i] = 0.9 * mm1[i] + 0.1 * g;
        vv[i] = 0.999 * vv[i] + 0.001 * g * g;
        const double mhat = mm1[i] / (1 - std::pow(0.9, t)), vhat = vv[i] / (1 - std::pow(0.999, t));
        p[i] -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
      }
      // float32 state: 1 − β₂ alone is off by 5e-5 relative in f32.
      CHECK(max_abs_diff(s->flat().to_f64_vector(), p) < 1e-5);
      CHECK(max_abs_diff(opt.m().to_f64_vector(), mm1) < 1e-6);
      CHECK(max_abs_diff(opt.v().to_f64_vector(), vv) < 1e-4 * 0.004);
    }
    CHECK(opt.step_count() == 2);
  }
  SUBCASE("sgd with momentum and plain sgd") {
    for (double mom : {0.0, 0.9}) {
      auto s = make_store();
      OptimConfig c;
      c.name = "sgd";
      c.lr = 0.5;
      c.momentum = mom;
      c.clip = 0;
      Optimizer opt(*s, c);
      CHECK(opt.m().defined() == (mom != 0));
      CHECK(!opt.v().defined());
      std::vector<double> p{1.0, -2.0, 0.5, 0.25}, buf(4, 0.0);
      for (int t = 0; t < 2; ++t) {
        set_grad(*s, grads[static_cast<size_t>(t)]);
        opt.step();
        for (size_t i = 0; i < 4; ++i) {
          buf[i] = mom * buf[i] + grads[static_cast<size_t>(t)][i];
          p[i] -= 0.5 * buf[i];
        }
        CHECK(max_abs_diff(s->flat().to_f64_vector(), p) < 1e-6);
      }
    }
  }
  SUBCASE("clipping") {
    auto s = make_store();
    set_grad(*s, {3.0, 0.0, 4.0, 0.0});
    CHECK(clip_grad_norm(*s, 0) == doctest::Approx(5.0));  // off: norm only
    CHECK(s->grad_norm() == doctest::Approx(5.0));
    CHECK(clip_grad_norm(*s, 1.0) == doctest::Approx(5.0));
    CHECK(s->grad_norm() == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(clip_grad_norm(*s, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // below max: untouched
    CHECK(s->grad_norm() == doctest::Approx(1.0).epsilon(1e-5));
    OptimConfig c;
    c.name = "sgd";
    c.lr = 1.0;
    c.clip = 0.5;
    Optimizer opt(*s, c);
    const auto info = opt.step();
    CHECK(info.grad_norm == doctest::Approx(1.0).epsilon(1e-5));
    // p −= lr · g·0.5/‖g‖: a moved by −0.3, c by −0.4 (g was (0.6, 0, 0.8, 0) after clipping to 1).
    CHECK(s->flat().to_f64_vector()[0] == doctest::Approx(1.0 - 0.3).epsilon(1e-5));
    CHECK(s->flat().to_f64_vector()[2] == doctest::Approx(0.5 - 0.4).epsilon(1e-5));
  }
  SUBCASE("schedule") {
    auto s = make_store();
    OptimConfig c;
    c.lr = 1.0;
    c.warmup = 4;
    c.total_steps = 14;
    c.min_lr_frac = 0.1;
    Optimizer opt(*s, c);
    CHECK(opt.lr_at(0) == doctest::Approx(0.25));
    CHECK(opt.lr_at(3) == doctest::Approx(1.0));
    CHECK(opt.lr_at(4) == doctest::Approx(1.0));
    CHECK(opt.lr_at(9) == doctest::Approx(0.1 + 0.9 * 0.5));
    CHECK(opt.lr_at(14) == doctest::Approx(0.1));
    CHECK(opt.lr_at(100) == doctest::Approx(0.1));
    c.warmup = 0;
    c.total_steps = 0;
    Optimizer flat(*s, c);
    CHECK(flat.lr_at(0) == 1.0);
    CHECK(flat.lr_at(1000) == 1.0);
    c.name = "lion";
    CHECK_THROWS_AS(Optimizer(*s, c), FormatError);
    ParamStore frozen("f");
    frozen.add("x", Tensor::zeros({2}));
    frozen.finalize();
    CHECK_THROWS(Optimizer(frozen, OptimConfig{}));
  }
}

TEST_CASE("gradient accumulation: k micro-batches with loss/k equal one big batch") {
  Tiny m;
  AdapterSet set = attach_adapters(m.linears(), config(AdapterKind::MoSLoRA), 4);
  randomize_b(set);
  const Tensor x = input(3, 4, 5);
  set.store->zero_grad();
  backward(m.loss(x));
  const std::vector<double> whole = set.store->flat_grad().to_f64_vector();
  set.store->zero_grad();
  for (int i = 0; i < 2; ++i) backward(ops::mul_scalar(m.loss(ops::slice(x, 0, 2 * i, 2)), 0.5));
  CHECK(max_abs_diff(set.store->flat_grad().to_f64_vector(), whole) < 1e-6);
}

// ChainAdapter::measure_terms: the two parts of the adapter's output, Δy = (input-dependent)
// + Δb, checked against the layer's own output: y − x·W₀ᵀ − Δb row by row, in double.
TEST_CASE("measured term sizes: the input-dependent part's RMS and ‖Δb‖ add up to the layer's Δy") {
  struct Case {
    AdapterKind kind;
    int chain;
    bool bias;
  };
  for (const Case c : {Case{AdapterKind::LoRA, 0, false}, Case{AdapterKind::LoRA, 0, true},
                       Case{AdapterKind::LinChain, 3, false}, Case{AdapterKind::LinChain, 3, true}}) {
    CAPTURE(adapter_kind_name(c.kind));
    CAPTURE(c.bias);
    Tiny m;
    AdapterConfig cfg = config(c.kind, c.chain);
    cfg.chain_bias = c.bias;
    const Tensor x = input();
    Tensor y_base;
    {
      NoGrad ng;
      y_base = m.q.forward(x);
    }
    AdapterSet set = attach_with_grads(m, cfg);
    ChainAdapter& ad = *set.adapters[0].adapter;
    CHECK(ad.measured_terms().rows == 0);  // off until asked
    ad.measure_terms(true);
    Tensor y;
    {
      NoGrad ng;
      y = m.q.forward(x);
      y = m.q.forward(x);  // two forwards: the sizes are over both
    }
    const ChainAdapter::TermSizes t = ad.measured_terms();
    ad.measure_terms(false);
    CHECK(t.rows == 2 * 2 * 5);
    const auto yv = y.to_f64_vector(), yb = y_base.to_f64_vector();
    std::vector<double> db(static_cast<size_t>(ad.out_features()), 0.0);
    if (c.bias) db = ad.delta_bias().to_f64_vector();
    double sq = 0, bsq = 0;
    for (size_t i = 0; i < yv.size(); ++i) {
      const double d = yv[i] - yb[i] - db[i % db.size()];
      sq += d * d;
    }
    for (double v : db) bsq += v * v;
    const double rms = std::sqrt(sq / 10.0);  // 10 rows
    CHECK(rms > 1e-3);
    CHECK(std::abs(t.input_rms - rms) <= 1e-5 * rms);
    CHECK(std::abs(t.bias_norm - std::sqrt(bsq)) <= 1e-6 * std::max(1.0, std::sqrt(bsq)));
    if (c.bias) CHECK(t.bias_norm > 1e-3);
    ad.measure_terms(false);
    CHECK(ad.measured_terms().rows == 0);
  }
}
