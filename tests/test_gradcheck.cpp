// tests/test_gradcheck.cpp — the finite-difference checker itself: it passes a correct
// op, fails a deliberately wrong backward, and the registry covers every op family.
#include <doctest/doctest.h>

#include <set>

#include "engine/backend.h"
#include "engine/tape.h"
#include "ops/detail.h"
#include "ops/gradcheck.h"
#include "ops/ops.h"

using namespace cg;

namespace {
// y = x², with a backward that is off by a factor 1.5 (3x instead of 2x).
Tensor wrong_square(const Tensor& x) {
  Tensor y = ops::detail::empty_like(x);
  backend(x).binary(BinaryOp::Mul, x, x, y);
  record("wrong_square", y, {x}, [x](const Tensor& gy) {
    Tensor g = ops::detail::empty_like(x);
    backend(x).binary(BinaryOp::Mul, gy, x, g);
    backend(x).unary(UnaryOp::MulScalar, g, g, 3.0);
    accumulate(x, g);
  });
  return y;
}
}  // namespace

TEST_CASE("gradcheck fails a wrong backward and passes a right one") {
  Rng rng(2);
  ops::GradCase bad{"wrong_square",
                    "[4]",
                    {rand_uniform({4}, 0.5, 1.0, rng, DType::F64)},
                    [](const std::vector<Tensor>& in) { return wrong_square(in[0]); }};
  const auto r = ops::gradcheck(bad);
  CHECK_FALSE(r.pass);
  CHECK(r.max_rel_err > 0.1);
  ops::GradCase good{"square",
                     "[4]",
                     {rand_uniform({4}, 0.5, 1.0, rng, DType::F64)},
                     [](const std::vector<Tensor>& in) { return ops::mul(in[0], in[0]); }};
  CHECK(ops::gradcheck(good).pass);
}

TEST_CASE("the registry holds every op of ops/ops.h, ChainMatmul and AdaptedLinear, and all pass") {
  const std::set<std::string> expected{"matmul",  "linear",      "add",        "sub",          "mul",
                                       "div",     "add_scalar",  "mul_scalar", "pow_scalar",   "neg",
                                       "exp",     "log",         "sqrt",       "silu",         "gelu",
                                       "relu",    "sum",         "mean",       "sum_all",      "mean_all",
                                       "softmax", "log_softmax", "rmsnorm",    "layernorm",    "cross_entropy",
                                       "rope",    "embedding",   "attention",  "reshape",      "transpose",
                                       "slice",   "concat",      "dropout",    "chain_matmul", "adapted_linear"};
  std::set<std::string> got;
  for (const auto& op : ops::grad_registry()) {
    got.insert(op.name);
    Rng rng(0);
    for (const auto& c : op.make(rng)) {
      INFO(op.name << " " << c.detail);
      CHECK(ops::gradcheck(c).pass);
    }
  }
  CHECK(got == expected);
}
