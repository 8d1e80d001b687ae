// tests/test_determinism.cpp — the same seed gives bit-identical gradients, with 1 and
// with 2 threads, with T = 64 (one attention block) and T = 160 (three blocks of the causal
// staircase), in f32 and with bf16 GEMMs.
#include <doctest/doctest.h>

#include <cstring>

#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"

using namespace cg;

namespace {

// A small transformer-like block, sized so OpenMP loops and OpenBLAS both go parallel.
// Returns the loss followed by every parameter gradient, flattened.
std::vector<float> run_block(uint64_t seed, int64_t T = 64) {
  Rng rng(seed);
  const int64_t B = T > 64 ? 2 : 4, H = 4, KV = 2, D = 32, C = H * D, V = 300;
  auto p = [&](Shape s, double sc) { return rand_uniform(s, -sc, sc, rng).set_requires_grad(true); };
  Tensor emb = p({V, C}, 0.5), wq = p({C, C}, 0.1), wk = p({KV * D, C}, 0.1), wv = p({KV * D, C}, 0.1);
  Tensor wo = p({C, C}, 0.1), norm = p({C}, 1.0), head = p({V, C}, 0.1);
  Tensor A = p({C, 8}, 0.1), M = p({8, 8}, 0.3), Bm = p({C, 8}, 0.1);
  std::vector<int32_t> ids(B * T), tg(B * T);
  for (auto& v : ids) v = static_cast<int32_t>(rng.below(V));
  for (auto& v : tg) v = static_cast<int32_t>(rng.below(V));
  Tensor x = ops::embedding(emb, Tensor::from_i32(ids, {B, T}));  // [B,T,C]
  Tensor h = ops::rmsnorm(x, norm);
  Tensor q = ops::add(ops::linear(h, wq), ops::chain_matmul(h, {A, M, ops::transposed_factor(Bm)}));  // [B,T,C]
  Tensor q4 = ops::transpose(ops::rope(ops::reshape(q, {B, T, H, D})), 1, 2);                         // [B,H,T,D]
  Tensor k4 = ops::transpose(ops::rope(ops::reshape(ops::linear(h, wk), {B, T, KV, D})), 1, 2);
  Tensor v4 = ops::transpose(ops::reshape(ops::linear(h, wv), {B, T, KV, D}), 1, 2);
  Tensor a = ops::reshape(ops::transpose(ops::attention(q4, k4, v4), 1, 2), {B, T, C});
  Tensor y = ops::add(x, ops::linear(ops::silu(a), wo));
  Tensor loss = ops::cross_entropy(ops::linear(y, head), Tensor::from_i32(tg, {B, T}));
  backward(loss);
  std::vector<float> out{static_cast<float>(loss.item())};
  for (const Tensor& t : {emb, wq, wk, wv, wo, norm, head, A, M, Bm}) {
    auto g = t.grad().to_f32_vector();
    out.insert(out.end(), g.begin(), g.end());
  }
  return out;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("same seed, same bits: twice, and with 1 and 2 threads") {
  const int prev = num_threads();
  set_num_threads(1);
  const auto one_a = run_block(11);
  const auto one_b = run_block(11);
  set_num_threads(2);
  const auto two_a = run_block(11);
  const auto two_b = run_block(11);
  set_num_threads(prev);
  CHECK(bit_equal(one_a, one_b));
  CHECK(bit_equal(two_a, two_b));
  CHECK(bit_equal(one_a, two_a));
  // And a different seed really changes the result (the check can fail).
  CHECK_FALSE(bit_equal(one_a, run_block(12)));
}

TEST_CASE("same seed, same bits with 1 and 2 threads over the multi-block causal attention (T = 160)") {
  const int prev = num_threads();
  set_num_threads(1);
  const auto one = run_block(13, 160);
  set_num_threads(2);
  const auto two = run_block(13, 160);
  const auto two_b = run_block(13, 160);
  set_num_threads(prev);
  CHECK(bit_equal(one, two));
  CHECK(bit_equal(two, two_b));
  CHECK_FALSE(bit_equal(one, run_block(14, 160)));
}

TEST_CASE("bf16 GEMMs: same seed, same bits with 1 and 2 threads (T = 64 and 160), and not the f32 bits") {
  const int prev = num_threads();
  const GemmPrecision prev_p = gemm_precision();
  set_num_threads(1);
  const auto f32 = run_block(15, 160);
  set_gemm_precision(GemmPrecision::BF16);
  std::vector<std::vector<float>> one, two;
  for (int64_t T : {64, 160}) one.push_back(run_block(15, T));
  set_num_threads(2);
  for (int64_t T : {64, 160}) two.push_back(run_block(15, T));
  const auto two_b = run_block(15, 160);
  set_gemm_precision(prev_p);
  set_num_threads(prev);
  CHECK(bit_equal(one[0], two[0]));
  CHECK(bit_equal(one[1], two[1]));
  CHECK(bit_equal(two[1], two_b));
  CHECK_FALSE(bit_equal(one[1], f32));  // the precision switch reached the GEMMs
}
