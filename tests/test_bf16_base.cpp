// tests/test_bf16_base.cpp — DType::BF16, the storage type of a frozen base kept once in
// bfloat16 (finetune --base-dtype bf16): the f32 ↔ bf16 round trip; a bf16-stored GEMM
// operand gives exactly the bits of its f32 original under GemmPrecision::BF16, on the
// oneDNN and the OpenBLAS paths and on every way the CPU splits a product; a fine-tune with
// the base's matrices stored in bf16 gives the same losses, adapter gradients and updated
// adapters, bit for bit, as --precision bf16 with the f32 base rounded to bf16 once (the
// GEMMs' rounding moves to the load; the embedding lookup, no GEMM, then reads rounded
// rows: the one difference from the unrounded f32 base, measured); and the refusals
// (gradients, other ops, f32 products).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "engine/backend.h"
#include "engine/cpu/cpu_dnnl.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/llama/llama.h"
#include "nn/adapters.h"
#include "nn/optim.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace cg;

namespace {

struct PrecisionScope {
  GemmPrecision prev = gemm_precision();
  explicit PrecisionScope(GemmPrecision p) { set_gemm_precision(p); }
  ~PrecisionScope() { set_gemm_precision(prev); }
};

std::vector<uint32_t> float_bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

}  // namespace

TEST_CASE("bf16 tensors: 2 bytes an element, f32 → bf16 rounds to nearest even, bf16 → f32 is exact") {
  Rng rng(31);
  const Tensor x = rand_uniform({7, 33}, -3, 3, rng);
  const Tensor h = x.to(DType::BF16);
  CHECK(h.dtype() == DType::BF16);
  CHECK(h.nbytes() == 2 * 7 * 33);
  CHECK(h.desc() == "bf16[7,33]@cpu");
  const std::vector<float> xv = x.to_f32_vector(), back = h.to(DType::F32).to_f32_vector();
  int64_t changed = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    CHECK(back[i] == bf16_round(xv[i]));  // the nearest bf16, as the GEMM rounding gives it
    CHECK(h.data<uint16_t>()[i] == bf16_bits(xv[i]));
    changed += back[i] != xv[i];
  }
  CHECK(changed > 200);  // uniform floats are almost never bf16 values: the rounding happened
  // bf16 → f32 → bf16 keeps every bit; f64 goes through f32; the host readers widen.
  CHECK(h.to(DType::F32).to(DType::BF16).to_f64_vector() == h.to_f64_vector());
  CHECK(h.to(DType::F64).to_f32_vector() == back);
  CHECK(Tensor::from({1.0, 1.0 + 0x1.0p-8, -2.5}, {3}, DType::BF16).to_f64_vector() ==
        std::vector<double>{1.0, 1.0, -2.5});  // a tie goes to the even 1
  CHECK(Tensor::full({2}, 0.1, DType::BF16).to_f64_vector()[1] == static_cast<double>(bf16_round(0.1f)));
  CHECK(Tensor::from({0.75}, {1}, DType::BF16).item() == 0.75);
  CHECK(h.clone().to_f32_vector() == back);
}

TEST_CASE("a bf16-stored GEMM operand gives the bits of its f32 original under bf16 precision") {
  MESSAGE("bf16 GEMMs here: " << cpu_bf16_gemm_path());
  Rng rng(33);
  const PrecisionScope ps(GemmPrecision::BF16);
  Backend& be = backend_for(Device::CPU);
  struct Case {
    const char* what;
    int64_t m, n, k;
  };
  // Small (OpenBLAS on the widened values), large by rows and by columns (oneDNN where the
  // CPU has bf16 dot products, cpu_dnnl.h's size rule), a decode-like single row (GEMV).
  for (const Case& cs : {Case{"small", 7, 6, 5}, Case{"rows", 512, 192, 160}, Case{"columns", 96, 1024, 128},
                         Case{"one row", 1, 300, 64}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const Tensor a = ta ? rand_uniform({cs.k, cs.m}, -1, 1, rng) : rand_uniform({cs.m, cs.k}, -1, 1, rng);
        const Tensor b = tb ? rand_uniform({cs.n, cs.k}, -1, 1, rng) : rand_uniform({cs.k, cs.n}, -1, 1, rng);
        const Tensor c0 = rand_uniform({cs.m, cs.n}, -1, 1, rng);
        auto run = [&](const Tensor& aa, const Tensor& bb) {
          Tensor c = c0.clone();
          be.gemm(mat(aa).t(ta), mat(bb).t(tb), mat(c), 0.5, 0.25);
          return float_bits(c.to_f32_vector());
        };
        const auto want = run(a, b);
        const std::string what = std::string(cs.what) + (ta ? " Aᵀ" : " A") + (tb ? " Bᵀ" : " B");
        CHECK_MESSAGE(run(a, b.to(DType::BF16)) == want, what << ", B stored in bf16");
        CHECK_MESSAGE(run(a.to(DType::BF16), b) == want, what << ", A stored in bf16");
        CHECK_MESSAGE(run(a.to(DType::BF16), b.to(DType::BF16)) == want, what << ", both stored in bf16");
      }
  }
  SUBCASE("a batch sharing one bf16 B, and a sub-view of it") {
    const Tensor a = rand_uniform({3, 40, 48}, -1, 1, rng), b = rand_uniform({48, 56}, -1, 1, rng);
    const Tensor b16 = b.to(DType::BF16);
    Tensor c1 = Tensor::zeros({3, 40, 56}), c2 = Tensor::zeros({3, 40, 56});
    be.gemm(mat(a, 3, 40, 48), mat(b, 1, 48, 56), mat(c1, 3, 40, 56));
    be.gemm(mat(a, 3, 40, 48), mat(b16, 1, 48, 56), mat(c2, 3, 40, 56));
    CHECK(float_bits(c1.to_f32_vector()) == float_bits(c2.to_f32_vector()));
    Tensor d1 = Tensor::zeros({40, 20}), d2 = Tensor::zeros({40, 20});
    be.gemm(mat(a, 1, 40, 48), mat(b).sub(0, 48, 10, 20), mat(d1));  // ld 56 ≠ cols 20
    be.gemm(mat(a, 1, 40, 48), mat(b16).sub(0, 48, 10, 20), mat(d2));
    CHECK(float_bits(d1.to_f32_vector()) == float_bits(d2.to_f32_vector()));
  }
}

TEST_CASE("a fine-tune with the base stored in bf16 is bit-identical to --precision bf16 with its f32 values") {
  // The GEMMs cannot tell a bf16-stored weight from its f32 original (both multiply as the
  // same bf16 bits). The embedding lookup is no GEMM: it reads the table as stored, so the
  // bf16 base equals, bit for bit, the f32 base whose matrices were rounded to bf16 once;
  // against the unrounded f32 base it differs only by the rounded input embeddings.
  for (bool tied : {true, false}) {
    CAPTURE(tied);
    // Products large enough for oneDNN's bf16 path where the CPU has it (rows B·T = 128).
    models::LlamaConfig cfg = cg::testing::tiny_llama_config(32);
    cfg.dim = 64, cfg.hidden_dim = 128, cfg.vocab_size = 96, cfg.tied_embeddings = tied;
    Rng rng(35);
    const int64_t B = 4, T = cfg.seq_len;
    std::vector<int32_t> in(static_cast<size_t>(B * T)), tg(in.size());
    for (auto& v : in) v = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size)));
    for (auto& v : tg) v = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size)));
    const Tensor ids = Tensor::from_i32(in, {B, T}), targets = Tensor::from_i32(tg, {B, T});
    enum Base { F32, F32Rounded, BF16 };
    // Per step: the loss, then every adapter gradient; after the steps, the adapters and
    // the logits of a decoding step through the KV cache.
    auto run = [&](Base base) {
      const PrecisionScope ps(GemmPrecision::BF16);
      models::LlamaModel model(cfg, 11);
      nn::AdapterConfig ac;
      ac.kind = nn::AdapterKind::LinChain;
      ac.rank = 8;
      ac.targets = nn::parse_targets("q,k,v,o,gate,up,down");
      nn::AdapterSet set = nn::attach_adapters(model.linears(), ac, 13);
      if (base == F32Rounded)
        for (const auto& [name, p] : model.params().params())
          if (p.rank() == 2) Tensor(p).copy_from(p.to(DType::BF16).to(DType::F32));
      if (base == BF16) {
        const int64_t f32_before = model.params().flat().numel();
        model.store_base_bf16();
        CHECK(model.base_is_bf16());
        CHECK(model.layers()[0].q.weight.dtype() == DType::BF16);
        CHECK(model.layers()[1].attn_norm.dtype() == DType::F32);  // norms stay f32
        CHECK(model.lm_head().dtype() == DType::BF16);
        CHECK(model.params().flat().numel() + model.params().flat_bf16().numel() == f32_before);
        CHECK(model.params().flat().numel() == cfg.dim * (2 * cfg.n_layers + 1));  // the norms alone
        CHECK(model.params().numel() == f32_before);
      }
      nn::OptimConfig oc;
      oc.lr = 1e-2;
      nn::Optimizer opt(*set.store, oc);
      std::vector<std::vector<double>> out;
      for (int s = 0; s < 3; ++s) {
        set.store->zero_grad();
        Tensor loss = model.loss(ids, targets);
        backward(loss);
        out.push_back({loss.item()});
        out.push_back(set.store->flat_grad().to_f64_vector());
        opt.step();
      }
      out.push_back(set.store->flat().to_f64_vector());
      NoGrad ng;
      auto cache = model.make_cache(1, 8);
      out.push_back(model.forward(Tensor::from_i32({3, 5, 7}, {1, 3}), &cache).to_f64_vector());
      return out;
    };
    const auto f32 = run(F32), rounded = run(F32Rounded), bf16 = run(BF16);
    REQUIRE(rounded.size() == bf16.size());
    for (size_t i = 0; i < rounded.size(); ++i) CHECK_MESSAGE(rounded[i] == bf16[i], "entry " << i);
    // Against the unrounded f32 base: only the lookup's rounded embeddings differ (a relative
    // 2^-9 at most on each input, far less in the loss), and they do differ.
    const double rel = std::abs(bf16[0][0] - f32[0][0]) / f32[0][0];
    MESSAGE("tied " << tied << ": losses " << bf16[0][0] << ", " << bf16[2][0] << ", " << bf16[4][0]
                    << " (bf16 base); first loss vs the unrounded f32 base: relative " << rel);
    CHECK(rel > 0);
    CHECK(rel < 0x1.0p-9);
    CHECK(bf16[4][0] < bf16[0][0]);  // it trains
  }
}

TEST_CASE("bf16 tensors: not differentiable, refused by every op but the GEMM operand and the embedding table") {
  Rng rng(37);
  const Tensor x = rand_uniform({4, 8}, -1, 1, rng), w = rand_uniform({6, 8}, -1, 1, rng);
  const Tensor w16 = w.to(DType::BF16), x16 = x.to(DType::BF16);
  CHECK_THROWS_AS(Tensor(w16).set_requires_grad(true), DTypeError);
  CHECK_THROWS_AS(ops::add(x16, x16), DTypeError);
  CHECK_THROWS_AS(ops::silu(x16), DTypeError);
  CHECK_THROWS_AS(ops::rmsnorm(x, Tensor::ones({8}).to(DType::BF16)), DTypeError);
  CHECK_THROWS_AS(ops::matmul(x16, w, false, true), DTypeError);  // only the weight may be bf16
  CHECK_THROWS_AS(ops::linear(x.to(DType::F64), w16), DTypeError);
  {
    const PrecisionScope ps(GemmPrecision::F32);  // an f32 product of a bf16 weight: refused, not widened
    CHECK_THROWS_AS(ops::linear(x, w16), DTypeError);
  }
  {
    const PrecisionScope ps(GemmPrecision::BF16);
    const Tensor y = ops::linear(x, w16);
    CHECK(y.dtype() == DType::F32);
    CHECK(y.to_f64_vector() == ops::linear(x, w).to_f64_vector());
    const Tensor e = ops::embedding(w16, Tensor::from_i32({5, 0, 5}, {3}));
    CHECK(e.dtype() == DType::F32);
    CHECK(e.to_f64_vector() == ops::embedding(w16.to(DType::F32), Tensor::from_i32({5, 0, 5}, {3})).to_f64_vector());
  }
  models::LlamaModel model(cg::testing::tiny_llama_config(8), 3);
  model.store_base_bf16();
  CHECK_THROWS_AS(model.params().set_trainable(true), DTypeError);
  CHECK_THROWS_AS(model.store_base_bf16(), Error);  // once
}
