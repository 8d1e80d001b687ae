// tests/test_frozen.cpp — inputs that do not require grad cost no gradient work.
#include <doctest/doctest.h>

#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"

using namespace cg;

namespace {
struct GemmCount {
  int64_t calls0;
  double flops0;
  GemmCount()
      : calls0(backend_for(Device::CPU).stats().gemm_calls), flops0(backend_for(Device::CPU).stats().gemm_flops) {}
  int64_t calls() const { return backend_for(Device::CPU).stats().gemm_calls - calls0; }
  double flops() const { return backend_for(Device::CPU).stats().gemm_flops - flops0; }
};
}  // namespace

TEST_CASE("a frozen weight gets no weight-gradient GEMM") {
  Rng rng(5);
  Tensor x = rand_uniform({16, 32}, -1, 1, rng).set_requires_grad(true);
  Tensor w = rand_uniform({24, 32}, -1, 1, rng);  // frozen
  Tensor y = ops::linear(x, w);
  Tensor loss = ops::sum_all(y);
  GemmCount c;
  backward(loss);
  CHECK(c.calls() == 1);  // only gx = gy·w
  CHECK(c.flops() == doctest::Approx(2.0 * 16 * 24 * 32));
  CHECK_FALSE(w.grad().defined());
  CHECK(x.grad().defined());
}

TEST_CASE("nothing requires grad: nothing is recorded, backward refuses") {
  Tensor x = Tensor::ones({4, 4}), w = Tensor::ones({4, 4});
  const size_t before = tape_nodes().size();
  Tensor y = ops::sum_all(ops::linear(x, w));
  CHECK(tape_nodes().size() == before);
  CHECK_FALSE(y.requires_grad());
  CHECK_THROWS_AS(backward(y), Error);
}

TEST_CASE("a LoRA-style chain with a frozen base: gradients only for the trainable factors") {
  // y = x·W0ᵀ + x·A·Bᵀ with W0, x frozen: backward must do exactly the GEMMs that reach A and B.
  Rng rng(6);
  const int64_t N = 32, I = 64, O = 48, R = 4;
  Tensor x = rand_uniform({N, I}, -1, 1, rng);
  Tensor w0 = rand_uniform({O, I}, -1, 1, rng);
  Tensor A = rand_uniform({I, R}, -1, 1, rng).set_requires_grad(true);
  Tensor B = rand_uniform({O, R}, -1, 1, rng).set_requires_grad(true);
  Tensor y = ops::add(ops::linear(x, w0), ops::chain_matmul(x, {A, ops::transposed_factor(B)}));
  GemmCount c;
  backward(ops::sum_all(y));
  // chain (x·A)·Bᵀ: gB = gᵀ·(xA) [one GEMM], g(xA) = g·B [one GEMM], gA = xᵀ·g(xA) [one GEMM];
  // nothing for W0 (frozen) or x (frozen).
  CHECK(c.calls() == 3);
  CHECK_FALSE(w0.grad().defined());
  CHECK(A.grad().defined());
  CHECK(B.grad().defined());
}

TEST_CASE("adapted_linear with a frozen base: the adapter's GEMMs and no full-size extra tensor") {
  // y = x·W0ᵀ + s·x·A·Bᵀ with W0 frozen and x needing grad (a fine-tuning projection).
  Rng rng(7);
  const int64_t N = 32, I = 64, O = 48, R = 4;
  Tensor x = rand_uniform({N, I}, -1, 1, rng).set_requires_grad(true);
  Tensor w0 = rand_uniform({O, I}, -1, 1, rng);
  Tensor A = rand_uniform({I, R}, -1, 1, rng).set_requires_grad(true);
  Tensor B = rand_uniform({O, R}, -1, 1, rng).set_requires_grad(true);
  BackendStats& st = backend_for(Device::CPU).stats();
  const int64_t bytes0 = st.bytes_in_use;
  GemmCount cf;
  Tensor y = ops::adapted_linear(x, w0, {A, ops::transposed_factor(B)}, 2.0);
  // Forward: x·W0ᵀ, x·A, (xA)·Bᵀ added into y. What stays alive: y and x·A, nothing [N, O] else.
  CHECK(cf.calls() == 3);
  CHECK(st.bytes_in_use - bytes0 == static_cast<int64_t>(sizeof(float)) * (N * O + N * R));
  Tensor loss = ops::sum_all(y);
  GemmCount c;
  const int64_t bytes1 = st.bytes_in_use;
  st.reset_peak();
  backward(loss);
  // gx = gy·W0; gB = (s·gyᵀ·(xA))ᵀ; g(xA) = s·gy·B; gA = xᵀ·g(xA); gx += g(xA)·Aᵀ (beta = 1).
  CHECK(c.calls() == 5);
  // At most one [N, I] buffer (gx, adopted as x.grad) besides gy [N, O] and the thin
  // gradients: the chain's share of ∂L/∂x is never a tensor of its own.
  const int64_t thin = N * R + I * R + 2 * O * R;
  CHECK(st.peak_bytes - bytes1 <= static_cast<int64_t>(sizeof(float)) * (N * O + N * I + thin + 64));
  CHECK(c.flops() == doctest::Approx(2.0 * N * O * I + 2.0 * (2.0 * N * O * R) + 2.0 * (2.0 * N * I * R)));
  CHECK_FALSE(w0.grad().defined());
  CHECK(x.grad().defined());
  CHECK(A.grad().defined());
  CHECK(B.grad().defined());
}

TEST_CASE("no_grad records nothing and backward releases the tape") {
  Tensor a = Tensor::ones({3}).set_requires_grad(true);
  {
    NoGrad ng;
    Tensor y = ops::mul(a, a);
    CHECK_FALSE(y.requires_grad());
  }
  tape_clear();
  Tensor y = ops::sum_all(ops::mul(a, a));
  CHECK(tape_nodes().size() == 2);
  backward(y);
  CHECK(tape_nodes().empty());
  CHECK(a.grad().to_f64_vector() == std::vector<double>{2, 2, 2});
  // Again after zeroing: the same gradient, no stale state.
  a.zero_grad();
  backward(ops::sum_all(ops::mul(a, a)));
  CHECK(a.grad().to_f64_vector() == std::vector<double>{2, 2, 2});
  // Without zeroing, gradients accumulate.
  backward(ops::sum_all(ops::mul(a, a)));
  CHECK(a.grad().to_f64_vector() == std::vector<double>{4, 4, 4});
}

TEST_CASE("keep_tape allows a second backward; retain_grad keeps an intermediate's gradient") {
  Tensor a = Tensor::from({1, 2, 3}, {3}).set_requires_grad(true);
  Tensor h = ops::mul_scalar(a, 3.0);
  h.retain_grad();
  Tensor y = ops::sum_all(ops::mul(h, h));
  backward(y, /*keep_tape=*/true);
  CHECK(h.grad().to_f64_vector() == std::vector<double>{6, 12, 18});
  CHECK(a.grad().to_f64_vector() == std::vector<double>{18, 36, 54});
  a.zero_grad();
  backward(y);
  CHECK(a.grad().to_f64_vector() == std::vector<double>{18, 36, 54});
  CHECK(tape_nodes().empty());
}
