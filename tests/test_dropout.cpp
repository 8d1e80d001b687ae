// tests/test_dropout.cpp — adapter dropout (PEFT's lora_dropout): p = 0 is bit-identical to no
// dropout, the fused op equals base + chain(ops::dropout(x)) with the same mask, the mask
// keeps 1 − p of the elements and scales them by 1/(1 − p), and through the Trainer the same
// seed gives bit-identical losses, another seed other ones, and evaluation runs without it.
// (Finite differences with a fixed mask: the gradcheck cases "dropout p=…".)
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/llama/llama.h"
#include "models/train/trainer.h"
#include "nn/adapters.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"

using namespace cg;

namespace {

bool bitwise(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), static_cast<size_t>(a.nbytes())) == 0;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_f64_vector(), y = b.to_f64_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

models::LlamaConfig tiny() {
  models::LlamaConfig c;
  c.dim = 32, c.hidden_dim = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 40, c.seq_len = 16;
  return c;
}

// Losses of `steps` Trainer steps of a LinChain fine-tune with the given dropout and seed.
std::vector<double> losses(double p, uint64_t seed, int steps, bool pass_adapters = true) {
  models::LlamaModel model(tiny(), 3);
  nn::AdapterConfig ac;
  ac.kind = nn::AdapterKind::LinChain;
  ac.rank = 4;
  ac.dropout = p;
  nn::AdapterSet set = nn::attach_adapters(model.linears(), ac, 9);
  Rng rng(6);
  std::vector<int32_t> tokens(2000);
  for (auto& x : tokens) x = static_cast<int32_t>(rng.below(40));
  const models::TokenDataset data(tokens, 0.1, 16);
  nn::OptimConfig oc;
  oc.lr = 1e-2;
  models::TrainOptions to;
  to.batch = 2;
  to.accum = 2;
  to.data_seed = seed;
  to.adapters = pass_adapters ? &set : nullptr;
  models::Trainer trainer(model, *set.store, oc, data, to);
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) out.push_back(trainer.step().loss);
  return out;
}

}  // namespace

TEST_CASE("dropout: p = 0 is bit-identical to no dropout (forward and gradients)") {
  Rng g(1);
  const Tensor w = rand_uniform({5, 6}, -1, 1, g);
  auto run = [&](bool with_p0) {
    Rng r(2);
    Tensor x = rand_uniform({3, 4, 6}, -1, 1, r), a = rand_uniform({6, 2}, -1, 1, r),
           m = rand_uniform({2, 2}, -1, 1, r), b = rand_uniform({5, 2}, -1, 1, r);
    for (Tensor* t : {&x, &a, &m, &b}) t->set_requires_grad(true);
    const Tensor y = with_p0 ? ops::adapted_linear(x, w, {a, m, ops::transposed_factor(b)}, 0.5, nullptr, 0.0, 99)
                             : ops::adapted_linear(x, w, {a, m, ops::transposed_factor(b)}, 0.5);
    backward(ops::sum_all(ops::mul(y, y)));
    return std::vector<Tensor>{y, x.grad(), a.grad(), m.grad(), b.grad()};
  };
  const auto plain = run(false), p0 = run(true);
  for (size_t i = 0; i < plain.size(); ++i) CHECK(bitwise(plain[i], p0[i]));
  // Through the Trainer: config dropout 0 with the adapters passed = no adapters passed.
  CHECK(losses(0.0, 4, 3) == losses(0.0, 4, 3, /*pass_adapters=*/false));
}

TEST_CASE("dropout: the fused op is base(x) + chain(dropout(x)) with the same mask") {
  Rng g(3);
  const Tensor x = rand_uniform({4, 5, 8}, -1, 1, g), w = rand_uniform({6, 8}, -1, 1, g),
               a = rand_uniform({8, 3}, -1, 1, g), b = rand_uniform({6, 3}, -1, 1, g);
  NoGrad ng;
  const double p = 0.3, s = 2.0;
  const Tensor y = ops::adapted_linear(x, w, {a, ops::transposed_factor(b)}, s, nullptr, p, 12345);
  const Tensor ref =
      ops::add(ops::linear(x, w),
               ops::mul_scalar(ops::chain_matmul(ops::dropout(x, p, 12345), {a, ops::transposed_factor(b)}), s));
  const double d = max_abs_diff(y, ref);
  MESSAGE("|fused − base + s·chain(dropout(x))| = " << d);
  CHECK(d <= 1e-5);
  CHECK(max_abs_diff(y, ops::adapted_linear(x, w, {a, ops::transposed_factor(b)}, s)) >
        1e-2);  // the mask does something
}

TEST_CASE("dropout: the mask keeps 1 − p of the elements, scaled by 1/(1 − p)") {
  const int64_t n = 200000;
  const Tensor ones = Tensor::ones({n});
  for (double p : {0.05, 0.3, 0.5}) {
    Tensor y = Tensor::empty({n});
    backend(ones).dropout(ones, y, p, 7);
    const auto v = y.to_f64_vector();
    int64_t kept = 0;
    bool values_ok = true;
    for (double e : v) {
      if (e != 0) ++kept;
      values_ok &= e == 0 || std::abs(e - 1.0 / (1.0 - p)) < 1e-6;
    }
    const double frac = static_cast<double>(kept) / static_cast<double>(n);
    const double sigma = std::sqrt(p * (1 - p) / static_cast<double>(n));
    MESSAGE("p = " << p << ": kept " << frac << " (expected " << 1 - p << " ± " << 5 * sigma << ")");
    CHECK(std::abs(frac - (1 - p)) <= 5 * sigma);
    CHECK(values_ok);
    // Another seed draws another mask; the mean of y stays ≈ 1 (inverted dropout).
    Tensor y2 = Tensor::empty({n});
    backend(ones).dropout(ones, y2, p, 8);
    CHECK_FALSE(bitwise(y, y2));
  }
}

TEST_CASE("dropout through the Trainer: reproducible, seeded, off in evaluation") {
  const auto a = losses(0.2, 4, 4), b = losses(0.2, 4, 4), c = losses(0.2, 5, 4), plain = losses(0.0, 4, 4);
  CHECK(a == b);            // same seed: bit-identical losses
  CHECK(a[0] == plain[0]);  // step 0: B = 0, the adapter's output is zero whatever its input
  CHECK(a != plain);        // from step 1 on the masks show
  CHECK(a != c);            // another seed: another data order and other masks
  // Evaluation has no dropout: outside dropout_on (the Trainer's micro-batch forwards) the
  // forward is the plain one, bit for bit.
  models::LlamaModel model(tiny(), 3);
  nn::AdapterConfig ac;
  ac.kind = nn::AdapterKind::LinChain;
  ac.rank = 4;
  ac.dropout = 0.5;
  nn::AdapterSet set = nn::attach_adapters(model.linears(), ac, 9);
  Rng rng(1);
  for (auto& m : set.adapters) {
    Tensor bb = m.adapter->b();
    bb.copy_from(rand_uniform(bb.shape(), -0.5, 0.5, rng));
  }
  std::vector<int32_t> ids(2 * 16);
  for (auto& x : ids) x = static_cast<int32_t>(rng.below(40));
  const Tensor t = Tensor::from_i32(ids, {2, 16});
  NoGrad ng;
  const Tensor before = model.forward(t);
  set.dropout_on(3);
  const Tensor on = model.forward(t);
  set.dropout_off();
  CHECK(max_abs_diff(on, before) > 1e-4);    // on: the masks change the adapted output
  CHECK(bitwise(model.forward(t), before));  // off again: exactly the plain forward
}
