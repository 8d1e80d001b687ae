// tests/test_errors.cpp — bad shapes, dtypes and devices give typed exceptions whose
// message names the op and the shapes; one case per op family.
#include <doctest/doctest.h>

#include <string>

#include "engine/backend.h"
#include "engine/rng.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"
#include "tests/skip.h"

using namespace cg;

namespace {
// Runs f, requires an exception of type E whose message contains every needle.
template <class E, class F>
void expect_error(F f, std::initializer_list<const char*> needles) {
  try {
    f();
    FAIL("expected an exception");
  } catch (const E& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const char* n : needles) CHECK(msg.find(n) != std::string::npos);
  }
}
Tensor z(Shape s, DType t = DType::F32) { return Tensor::zeros(s, t); }
}  // namespace

TEST_CASE("matmul family") {
  expect_error<ShapeError>([] { ops::matmul(z({2, 3}), z({4, 5})); }, {"matmul", "[2,3]", "[4,5]"});
  expect_error<ShapeError>([] { ops::matmul(z({2, 2, 3}), z({3, 3, 4})); }, {"matmul", "batch"});
  expect_error<ShapeError>([] { ops::linear(z({2, 3}), z({4, 5})); }, {"linear", "[2,3]", "[4,5]"});
  expect_error<DTypeError>([] { ops::matmul(z({2, 3}), z({3, 2}, DType::F64)); }, {"matmul", "f32", "f64"});
  expect_error<ShapeError>([] { ops::matmul(z({3}), z({3, 2})); }, {"matmul", "rank"});
}

TEST_CASE("elementwise family") {
  expect_error<ShapeError>([] { ops::add(z({2, 3}), z({2, 4})); }, {"add", "[2,3]", "[2,4]", "broadcast"});
  expect_error<ShapeError>([] { ops::mul(z({5, 3}), z({2, 3})); }, {"mul", "[5,3]", "[2,3]"});
  expect_error<DTypeError>([] { ops::div(z({3}), z({3}, DType::F64)); }, {"div"});
  expect_error<DTypeError>([] { ops::exp(z({3}, DType::I32)); }, {"exp", "i32"});
}

TEST_CASE("reduction and shape family") {
  expect_error<ShapeError>([] { ops::sum(z({2, 3}), 2); }, {"axis 2", "[2,3]"});
  expect_error<ShapeError>([] { ops::reshape(z({2, 3}), {4, 2}); }, {"reshape", "[2,3]", "[4,2]"});
  expect_error<ShapeError>([] { ops::slice(z({2, 3}), 1, 2, 2); }, {"slice", "[2,3]"});
  expect_error<ShapeError>([] { ops::concat({z({2, 3}), z({3, 3})}, 1); }, {"concat", "[3,3]"});
  expect_error<ShapeError>([] { ops::transpose(z({2, 3}), 0, 5); }, {"axis 5"});
}

TEST_CASE("normalisation, softmax and loss family") {
  expect_error<ShapeError>([] { ops::rmsnorm(z({2, 8}), z({7})); }, {"rmsnorm", "[7]", "[2,8]"});
  expect_error<ShapeError>([] { ops::layernorm(z({2, 8}), z({8}), z({7})); }, {"layernorm"});
  expect_error<ShapeError>([] { ops::softmax(z({2, 5, 3}), true); }, {"softmax", "causal"});
  expect_error<ShapeError>(
      [] {
        ops::cross_entropy(z({4, 5}), Tensor::from_i32({0, 1, 2}, {3}));
      },
      {"cross_entropy", "3 targets"});
  expect_error<ShapeError>(
      [] {
        ops::cross_entropy(z({2, 5}), Tensor::from_i32({0, 9}, {2}));
      },
      {"cross_entropy", "out of range"});
  expect_error<DTypeError>([] { ops::cross_entropy(z({2, 5}), z({2})); }, {"cross_entropy", "i32"});
}

TEST_CASE("transformer family") {
  expect_error<ShapeError>([] { ops::rope(z({2, 3, 4})); }, {"rope", "[2,3,4]"});
  expect_error<ShapeError>([] { ops::rope(z({1, 2, 2, 5})); }, {"rope", "even"});
  expect_error<ShapeError>([] { ops::embedding(z({5, 3}), Tensor::from_i32({7}, {1})); }, {"embedding", "7", "[5,3]"});
  expect_error<ShapeError>(
      [] {
        ops::attention(z({1, 3, 2, 4}), z({1, 2, 2, 4}), z({1, 2, 2, 4}));
      },
      {"attention", "multiple"});
  expect_error<ShapeError>([] { ops::attention(z({1, 2, 2, 4}), z({1, 2, 2, 4}), z({1, 2, 3, 4})); }, {"attention"});
  expect_error<ShapeError>([] { ops::dropout(z({3}), 1.5, 1); }, {"dropout"});
}

TEST_CASE("device family: CUDA tensors in a build or on a machine without CUDA") {
  if (cuda_available()) {
    cg::testing::skip(cg::testing::SkipKind::Other, "a CUDA device is present, so no device error to test");
    return;
  }
  expect_error<DeviceError>([] { Tensor::zeros({2}, DType::F32, Device::CUDA); }, {"CUDA"});
}
