// tests/test_chain_matmul.cpp — ChainMatmul against a naive chain of matmul ops, its
// FLOP accounting against a brute-force optimum, and the observable middle gradient.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"
#include "tests/test_util.h"

using namespace cg;
using cg::testing::max_abs_diff;

namespace {

// Minimum multiplication count over every parenthesisation, by plain recursion
// (independent of the DP in ops/chain_matmul.cpp).
double brute_force_cost(const std::vector<int64_t>& p, int i, int j) {
  if (i == j) return 0;
  double best = std::numeric_limits<double>::infinity();
  for (int s = i; s < j; ++s)
    best =
        std::min(best, brute_force_cost(p, i, s) + brute_force_cost(p, s + 1, j) + double(p[i]) * p[s + 1] * p[j + 1]);
  return best;
}

}  // namespace

TEST_CASE("chain_matmul equals a naive chain of matmuls, values and gradients (f64, k = 1..6)") {
  Rng rng(7);
  for (int k = 1; k <= 6; ++k) {
    for (int trial = 0; trial < 3; ++trial) {
      // Mixed shapes: dims drawn from 1..9, x with a leading batch dim on odd trials.
      std::vector<int64_t> d;
      for (int i = 0; i <= k + 1; ++i) d.push_back(1 + static_cast<int64_t>(rng.below(9)));
      Tensor x = trial % 2 ? rand_uniform({2, d[0], d[1]}, -1, 1, rng, DType::F64)
                           : rand_uniform({d[0], d[1]}, -1, 1, rng, DType::F64);
      std::vector<Tensor> f;
      std::vector<bool> tr;
      for (int i = 1; i <= k; ++i) {
        const bool t = rng.below(2) == 1;
        tr.push_back(t);
        f.push_back(t ? rand_uniform({d[i + 1], d[i]}, -1, 1, rng, DType::F64)
                      : rand_uniform({d[i], d[i + 1]}, -1, 1, rng, DType::F64));
      }
      auto leaves = [&] {
        std::vector<Tensor> v{x.clone().set_requires_grad(true)};
        for (auto& t : f) v.push_back(t.clone().set_requires_grad(true));
        return v;
      };
      Shape out_shape;
      // ChainMatmul.
      auto a = leaves();
      std::vector<ops::ChainFactor> cf;
      for (int i = 0; i < k; ++i) cf.emplace_back(a[i + 1], tr[i]);
      Tensor ya = ops::chain_matmul(a[0], cf);
      Rng wr(99);
      Tensor w = rand_uniform(ya.shape(), -1, 1, wr, DType::F64);
      backward(ops::sum_all(ops::mul(ya, w)));
      // Naive left-to-right chain of matmul ops.
      auto b = leaves();
      Tensor yb = b[0];
      for (int i = 0; i < k; ++i) yb = ops::matmul(yb, b[i + 1], false, tr[i]);
      backward(ops::sum_all(ops::mul(yb, w)));
      INFO("k=" << k << " trial=" << trial);
      CHECK(ya.shape() == yb.shape());
      CHECK(max_abs_diff(ya, yb) <= 1e-10);
      for (size_t i = 0; i < a.size(); ++i) CHECK(max_abs_diff(a[i].grad(), b[i].grad()) <= 1e-10);
    }
  }
}

TEST_CASE("chain_matmul reports the optimal FLOPs where left-to-right costs 10x more") {
  // x[600,600]·F1[600,600]·F2[600,8]·F3[8,4]: left-to-right multiplies the two big
  // matrices first; the optimum folds the thin factors in from the right.
  const std::vector<int64_t> p{600, 600, 600, 8, 4};
  double ltr = 0;
  for (size_t i = 1; i + 1 < p.size(); ++i) ltr += double(p[0]) * p[i] * p[i + 1];
  const double best = brute_force_cost(p, 0, static_cast<int>(p.size()) - 2);
  REQUIRE(ltr >= 10 * best);
  Rng rng(1);
  Tensor x = rand_uniform({p[0], p[1]}, -1, 1, rng);
  std::vector<ops::ChainFactor> f;
  for (size_t i = 1; i + 1 < p.size(); ++i) f.emplace_back(rand_uniform({p[i], p[i + 1]}, -1, 1, rng));
  ops::ChainProbe probe;
  ops::chain_matmul(x, f, &probe);
  MESSAGE("order " << probe.order << ": " << probe.forward_flops << " FLOPs; left-to-right would be " << 2 * ltr);
  CHECK(probe.forward_flops == 2 * best);
  CHECK(ops::chain_order_cost(p) == best);
}

TEST_CASE("the LinChain middle: dL/dP and its split across factors") {
  // x[8,6]·A[6,3]·W1·W2·W3·B[5,3]ᵀ, span = the three r×r factors.
  Rng rng(3);
  auto mk = [&](Shape s) { return rand_uniform(s, -1, 1, rng, DType::F64).set_requires_grad(true); };
  Tensor x = mk({8, 6}), A = mk({6, 3}), W1 = mk({3, 3}), W2 = mk({3, 3}), W3 = mk({3, 3}), B = mk({5, 3});
  ops::ChainProbe probe;
  probe.span_begin = 1;
  probe.span_end = 4;
  Tensor y = ops::chain_matmul(x, {A, W1, W2, W3, ops::transposed_factor(B)}, &probe);
  Tensor w = rand_uniform(y.shape(), -1, 1, rng, DType::F64);
  backward(ops::sum_all(ops::mul(y, w)));
  REQUIRE(probe.grad_product.defined());
  REQUIRE(probe.grad_factors.size() == 3);
  MESSAGE("order " << probe.order);
  // P = W1·W2·W3 and dL/dP = (xA)ᵀ · G · B  with G = w.
  NoGrad ng;
  Tensor P = ops::matmul(ops::matmul(W1, W2), W3);
  CHECK(max_abs_diff(probe.product, P) <= 1e-12);
  Tensor dP = ops::matmul(ops::matmul(ops::matmul(x, A), w, true, false), B);
  CHECK(max_abs_diff(probe.grad_product, dP) <= 1e-10);
  // dL/dWi = (W1⋯Wi−1)ᵀ · dP · (Wi+1⋯Wn)ᵀ
  Tensor g1 = ops::matmul(dP, ops::matmul(W2, W3), false, true);
  Tensor g2 = ops::matmul(ops::matmul(W1, dP, true, false), W3, false, true);
  Tensor g3 = ops::matmul(ops::matmul(W1, W2), dP, true, false);
  CHECK(max_abs_diff(probe.grad_factors[0], g1) <= 1e-10);
  CHECK(max_abs_diff(probe.grad_factors[1], g2) <= 1e-10);
  CHECK(max_abs_diff(probe.grad_factors[2], g3) <= 1e-10);
  // The split is exactly what reached the leaves.
  CHECK(max_abs_diff(W1.grad(), g1) <= 1e-10);
  CHECK(max_abs_diff(W2.grad(), g2) <= 1e-10);
  CHECK(max_abs_diff(W3.grad(), g3) <= 1e-10);
}

TEST_CASE("chain_matmul rejects factors that do not chain") {
  Tensor x = Tensor::zeros({4, 3});
  CHECK_THROWS_AS(ops::chain_matmul(x, {Tensor::zeros({4, 2})}), ShapeError);
  CHECK_THROWS_AS(ops::chain_matmul(x, {}), ShapeError);
  CHECK_THROWS_AS(ops::chain_matmul(x, {Tensor::zeros({3, 2}), Tensor::zeros({3, 2})}), ShapeError);
  ops::ChainProbe bad;
  bad.span_begin = 0;
  bad.span_end = 3;
  CHECK_THROWS_AS(ops::chain_matmul(x, {Tensor::zeros({3, 2})}, &bad), ShapeError);
  try {
    ops::chain_matmul(x, {Tensor::zeros({3, 2}), Tensor::zeros({5, 2})});
    FAIL("no throw");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()).find("chain_matmul") != std::string::npos);
    CHECK(std::string(e.what()).find("[5,2]") != std::string::npos);
  }
}

TEST_CASE("adapted_linear equals linear + s·chain_matmul: values, gradients and the probe (f64)") {
  // y = x·w0ᵀ + s·x·A·W1·W2·B ᵀ as one op, against the three-op composition; every input
  // trainable, then the base frozen. x[2,7,6] (rows 14), in 6, r 3, out 5.
  const double s = 1.75;
  for (bool frozen_base : {false, true}) {
    Rng rng(11);
    auto mk = [&](Shape sh) { return rand_uniform(sh, -1, 1, rng, DType::F64); };
    const Tensor x = mk({2, 7, 6}), w0 = mk({5, 6}), A = mk({6, 3}), W1 = mk({3, 3}), W2 = mk({3, 3}), B = mk({5, 3});
    const Tensor g = mk({2, 7, 5});
    auto leaves = [&] {
      std::vector<Tensor> v;
      for (const Tensor& t : {x, w0, A, W1, W2, B}) v.push_back(t.clone().set_requires_grad(true));
      if (frozen_base) v[1].set_requires_grad(false);
      return v;
    };
    ops::ChainProbe pf, pc;
    pf.span_begin = pc.span_begin = 1;
    pf.span_end = pc.span_end = 3;
    auto f = leaves();
    Tensor yf = ops::adapted_linear(f[0], f[1], {f[2], f[3], f[4], ops::transposed_factor(f[5])}, s, &pf);
    CHECK(tape_nodes().size() == 1);  // one node: no separate chain, scale or add
    backward(ops::sum_all(ops::mul(yf, g)));
    auto c = leaves();
    Tensor yc =
        ops::add(ops::linear(c[0], c[1]),
                 ops::mul_scalar(ops::chain_matmul(c[0], {c[2], c[3], c[4], ops::transposed_factor(c[5])}, &pc), s));
    backward(ops::sum_all(ops::mul(yc, g)));
    INFO("frozen base " << frozen_base);
    CHECK(f[1].grad().defined() == !frozen_base);
    CHECK(yf.shape() == yc.shape());
    CHECK(max_abs_diff(yf, yc) <= 1e-12);
    for (size_t i = 0; i < f.size(); ++i) {
      INFO("input " << i);
      REQUIRE(f[i].grad().defined() == c[i].grad().defined());
      if (f[i].grad().defined()) CHECK(max_abs_diff(f[i].grad(), c[i].grad()) <= 1e-12);
    }
    CHECK(pf.order == pc.order);
    CHECK(pf.forward_flops == pc.forward_flops);
    CHECK(pf.backward_flops == pc.backward_flops);
    CHECK(max_abs_diff(pf.product, pc.product) == 0);
    CHECK(max_abs_diff(pf.grad_product, pc.grad_product) <= 1e-12);
    REQUIRE(pf.grad_factors.size() == 2);
    for (size_t i = 0; i < 2; ++i) CHECK(max_abs_diff(pf.grad_factors[i], pc.grad_factors[i]) <= 1e-12);
  }
}

TEST_CASE("adapted_linear: x's gradient from the root when the chain is x·(A·Bᵀ)") {
  // in 2, r 6, out 2: forming A·Bᵀ first is cheaper, so x is the root's left child and its
  // share of gx comes from the root's GEMM with alpha = s.
  Rng rng(4);
  auto mk = [&](Shape sh) { return rand_uniform(sh, -1, 1, rng, DType::F64).set_requires_grad(true); };
  Tensor x = mk({5, 2}), w0 = mk({2, 2}), A = mk({2, 6}), B = mk({2, 6});
  ops::ChainProbe probe;
  Tensor y = ops::adapted_linear(x, w0, {A, ops::transposed_factor(B)}, 0.5, &probe);
  CHECK(probe.order == "(x·(F1·F2))");
  backward(ops::sum_all(y));
  NoGrad ng;
  // gx = 1·w0 + 0.5·1·(A·Bᵀ)ᵀ summed over the output columns.
  Tensor ones = Tensor::ones({5, 2}, DType::F64);
  Tensor want = ops::add(ops::matmul(ones, w0),
                         ops::mul_scalar(ops::matmul(ones, ops::matmul(A, B, false, true), false, true), 0.5));
  CHECK(max_abs_diff(x.grad(), want) <= 1e-12);
}

TEST_CASE("adapted_linear rejects a chain that does not end in the weight's out features") {
  Tensor x = Tensor::zeros({4, 3}), w = Tensor::zeros({5, 3});
  CHECK_THROWS_AS(ops::adapted_linear(x, w, {Tensor::zeros({3, 2}), ops::transposed_factor(Tensor::zeros({4, 2}))},
                                      1.0),
                  ShapeError);
  CHECK_THROWS_AS(ops::adapted_linear(x, Tensor::zeros({5, 4}), {Tensor::zeros({3, 2})}, 1.0), ShapeError);
  try {
    ops::adapted_linear(x, w, {Tensor::zeros({4, 2})}, 1.0);
    FAIL("no throw");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()).find("adapted_linear") != std::string::npos);
  }
}
