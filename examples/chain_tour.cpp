// examples/chain_tour.cpp — docs/03-chainmatmul.md: the matrix-chain order with its FLOP
// counts, then ∂L/∂P and every ∂L/∂Wᵢ of a small LinChain-shaped chain
//   y = x · A · W₁ W₂ W₃ · Bᵀ,   P = W₁W₂W₃,   L = Σ y ⊙ R  (R fixed, so ∂L/∂y = R),
// each checked here against central finite differences in float64. Exit 1 on a mismatch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"

using namespace cg;

namespace {

void show(const char* name, const Tensor& m) {  // a rank-2 tensor, one row per line
  const auto v = m.to_f64_vector();
  for (int64_t i = 0; i < m.dim(0); ++i) {
    std::printf("  %-8s", i == 0 ? name : "");
    for (int64_t j = 0; j < m.dim(1); ++j) std::printf(" %9.5f", v[static_cast<size_t>(i * m.dim(1) + j)]);
    std::printf("\n");
  }
}

// max|analytic − numeric| / max|numeric| over the elements of t, with t's elements nudged
// by ±eps in place and loss() re-evaluated (central differences).
double fd_check(const char* name, Tensor t, const Tensor& analytic, const std::function<double()>& loss) {
  const double eps = 1e-6;
  const auto ga = analytic.to_f64_vector();
  double* p = t.data<double>();
  double max_diff = 0, max_mag = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double orig = p[i];
    p[i] = orig + eps;
    const double lp = loss();
    p[i] = orig - eps;
    const double lm = loss();
    p[i] = orig;
    const double gn = (lp - lm) / (2 * eps);
    max_diff = std::max(max_diff, std::fabs(gn - ga[static_cast<size_t>(i)]));
    max_mag = std::max(max_mag, std::fabs(gn));
  }
  const double rel = max_diff / std::max(max_mag, 1e-12);
  std::printf("  %-8s rel err vs finite differences %s\n", name, rel < 1e-7 ? "< 1e-7  ok" : "TOO LARGE");
  return rel;
}

}  // namespace

int main() {
  // ---- 1. the order ------------------------------------------------------------------------
  std::printf("== 1. the matrix-chain order (multiplications m·n·k per product)\n");
  std::string order;
  double best = ops::chain_order_cost({10, 30, 5, 60}, &order, {"A", "B", "C"});
  std::printf("A[10,30]·B[30,5]·C[5,60]: best %s = %.0f;  left (A·B)·C = %d, right A·(B·C) = %d\n", order.c_str(), best,
              10 * 30 * 5 + 10 * 5 * 60, 30 * 5 * 60 + 10 * 30 * 60);

  const int64_t N = 64, d = 32, r = 4;  // x[N,d]·A[d,r]·W₁·W₂·W₃[r,r]·Bᵀ[r,d]
  best = ops::chain_order_cost({N, d, r, r, r, r, d}, &order, {"x", "A", "W1", "W2", "W3", "Bt"});
  std::printf("x[%lld,%lld]·A·W1·W2·W3·Bt, r = %lld: best %s = %.0f\n", (long long)N, (long long)d, (long long)r,
              order.c_str(), best);
  std::printf("  strictly left to right: %lld\n", (long long)(N * d * r + 3 * N * r * r + N * r * d));
  Rng g(7);
  auto rnd = [&](const Shape& s) { return rand_uniform(s, -1.0, 1.0, g, DType::F64); };
  {
    NoGrad ng;
    Tensor xb = rnd({N, d}), Ab = rnd({d, r}), W1 = rnd({r, r}), W2 = rnd({r, r}), W3 = rnd({r, r}), Bb = rnd({d, r});
    ops::ChainProbe probe;  // no span: the op plans the whole chain
    ops::chain_matmul(xb, {Ab, W1, W2, W3, ops::transposed_factor(Bb)}, &probe);
    std::printf("chain_matmul: order %s, forward_flops %.0f (= 2 × multiplications)\n", probe.order.c_str(),
                probe.forward_flops);
  }

  // ---- 2. the gradients ----------------------------------------------------------------------
  std::printf("== 2. gradients of L = sum(y * R), y = x·A·W1·W2·W3·Bt  (x[2,3], A[3,2], Wi[2,2], B[3,2])\n");
  Tensor x = rnd({2, 3}), A = rnd({3, 2}), B = rnd({3, 2}), R = rnd({2, 3});
  std::vector<Tensor> W{rnd({2, 2}), rnd({2, 2}), rnd({2, 2})};
  for (Tensor* t : {&A, &B, &W[0], &W[1], &W[2]}) t->set_requires_grad(true);

  ops::ChainProbe probe;
  probe.span_begin = 1;  // factors 1..3 of {A, W1, W2, W3, Bt} form P
  probe.span_end = 4;
  auto y_of = [&](ops::ChainProbe* pr) {
    return ops::chain_matmul(x, {A, W[0], W[1], W[2], ops::transposed_factor(B)}, pr);
  };
  Tensor loss = ops::sum_all(ops::mul(y_of(&probe), R));
  backward(loss);
  std::printf("order %s, forward_flops %.0f, backward_flops %.0f\n", probe.order.c_str(), probe.forward_flops,
              probe.backward_flops);
  show("P", probe.product);
  show("dL/dP", probe.grad_product);
  for (int i = 0; i < 3; ++i)
    show(("dL/dW" + std::to_string(i + 1)).c_str(), probe.grad_factors[static_cast<size_t>(i)]);

  std::printf("== checks\n");
  bool ok = true;
  auto L = [&] {  // the loss again, without recording
    NoGrad ng;
    return ops::sum_all(ops::mul(y_of(nullptr), R)).item();
  };
  for (int i = 0; i < 3; ++i) {
    const std::string n = "dL/dW" + std::to_string(i + 1);
    ok &= fd_check(n.c_str(), W[static_cast<size_t>(i)], probe.grad_factors[static_cast<size_t>(i)], L) < 1e-7;
  }
  Tensor P = probe.product.clone();  // L as a function of P alone: Σ (x·A·P·Bᵀ) ⊙ R
  ok &= fd_check("dL/dP", P, probe.grad_product, [&] {
          NoGrad ng;
          return ops::sum_all(ops::mul(ops::chain_matmul(x, {A, P, ops::transposed_factor(B)}), R)).item();
        }) < 1e-7;
  {  // the split: dL/dWi = (W1⋯Wi−1)ᵀ · dL/dP · (Wi+1⋯Wn)ᵀ
    NoGrad ng;
    const Tensor& G = probe.grad_product;
    const Tensor split[3] = {ops::matmul(G, ops::matmul(W[1], W[2]), false, true),
                             ops::matmul(ops::matmul(W[0], G, true, false), W[2], false, true),
                             ops::matmul(ops::matmul(W[0], W[1]), G, true, false)};
    double worst = 0;
    for (int i = 0; i < 3; ++i) {
      const auto a = split[i].to_f64_vector(), b = W[static_cast<size_t>(i)].grad().to_f64_vector();
      for (size_t j = 0; j < a.size(); ++j) worst = std::max(worst, std::fabs(a[j] - b[j]));
    }
    std::printf("  split    (W1..Wi-1)^T·dL/dP·(Wi+1..Wn)^T equals each Wi.grad(): %s\n", worst < 1e-12 ? "yes" : "NO");
    ok &= worst < 1e-12;
  }
  std::printf("%s\n", ok ? "all gradients agree" : "MISMATCH");
  return ok ? 0 : 1;
}
