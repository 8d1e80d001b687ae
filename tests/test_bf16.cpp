// tests/test_bf16.cpp — GemmPrecision::BF16 (--precision bf16): the rounding to bfloat16
// against a reference written with frexp/nearbyint; bf16 GEMMs against the float64 product
// of the bf16-rounded inputs, within the f32-accumulation bound, and measurably away from
// the f32 product (so the rounding really happens); the same bits for 1, 2 and 3 threads on
// each way the CPU splits a product; and one training step's gradients bf16 against f32,
// with the relative error printed and bounded by what bf16 rounding predicts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/backend.h"
#include "engine/cpu/cpu_dnnl.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/llama/llama.h"
#include "tests/test_util.h"

using namespace cg;

namespace {

// The GEMM precision for one scope (restored after, also on a failed check).
struct PrecisionScope {
  GemmPrecision prev = gemm_precision();
  explicit PrecisionScope(GemmPrecision p) { set_gemm_precision(p); }
  ~PrecisionScope() { set_gemm_precision(prev); }
};

// The reference rounding: the nearest value with an 8-bit significand (7 stored bits),
// ties to even (nearbyint in the default rounding mode), subnormal spacing 2^-133, and ±inf
// past the largest bf16, (2 − 2^-7)·2^127.
double ref_bf16(double x) {
  if (std::isnan(x) || std::isinf(x) || x == 0) return x;
  int e = 0;
  std::frexp(x, &e);  // |x| = f·2^e, f in [0.5, 1)
  const double q = std::ldexp(1.0, std::max(e - 8, -133));
  const double r = std::nearbyint(x / q) * q;
  return std::abs(r) > std::ldexp(2.0 - std::ldexp(1.0, -7), 127) ? std::copysign(INFINITY, x) : r;
}

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// op(V_b)[r, c] of an f32 view, as double.
double at(const MatView& v, int64_t b, int64_t r, int64_t c) {
  const int64_t i = v.trans ? c : r, j = v.trans ? r : c;
  return static_cast<const float*>(v.data)[(v.batch == 1 ? 0 : b * v.stride) + i * v.ld + j];
}

// Runs the product at `p` on a copy of C and returns, for every element of C, (got, the
// float64 value of the product of the bf16-rounded inputs, the f32-accumulation bound).
struct Compared {
  std::vector<double> got, want, bound;
};
Compared run_against_reference(const MatView& a, const MatView& b, const MatView& c0, double alpha, double beta,
                               GemmPrecision p) {
  const int64_t m = c0.rows, n = c0.cols, k = a.op_cols(), batch = std::max({a.batch, b.batch, c0.batch});
  const int64_t len = (c0.batch - 1) * c0.stride + (m - 1) * c0.ld + n;
  std::vector<float> cbuf(static_cast<const float*>(c0.data), static_cast<const float*>(c0.data) + len);
  MatView c = c0;
  c.data = cbuf.data();
  std::vector<double> want(cbuf.begin(), cbuf.end()), mag(cbuf.size(), 0.0);
  for (int64_t e = 0; e < batch; ++e)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, sa = 0;
        for (int64_t q = 0; q < k; ++q) {
          const double t = ref_bf16(at(a, e, i, q)) * ref_bf16(at(b, e, q, j));
          s += t;
          sa += std::abs(t);
        }
        const size_t o = static_cast<size_t>((c.batch == 1 ? 0 : e * c.stride) + i * c.ld + j);
        const double be = (c.batch == 1 && e > 0) ? 1.0 : beta;
        mag[o] = std::abs(alpha) * sa + std::abs(be) * mag[o] + std::abs(be * want[o]);
        want[o] = alpha * s + be * want[o];
      }
  {
    const PrecisionScope ps(p);
    backend_for(Device::CPU).gemm(a, b, c, alpha, beta);
  }
  Compared r;
  r.got.assign(cbuf.begin(), cbuf.end());
  r.want = want;
  // f32 accumulation of k exact products (each product of two bf16 values is exact in
  // f32), the scaling by alpha and beta and the batch's sums: |error| ≤ (k + 4·batch)·u·Σ|terms|,
  // u = 2^-24, plus the final rounding of C.
  for (size_t i = 0; i < cbuf.size(); ++i)
    r.bound.push_back((k + 4.0 * batch) * 0x1.0p-24 * mag[i] + 0x1.0p-24 * std::abs(want[i]) + 1e-30);
  return r;
}

// The worst |got − want| / bound over C.
double worst(const Compared& r) {
  double w = 0;
  for (size_t i = 0; i < r.got.size(); ++i) w = std::max(w, std::abs(r.got[i] - r.want[i]) / r.bound[i]);
  return w;
}

void check_bf16_gemm(const MatView& a, const MatView& b, const MatView& c, double alpha, double beta) {
  const Compared bf = run_against_reference(a, b, c, alpha, beta, GemmPrecision::BF16);
  const Compared f32 = run_against_reference(a, b, c, alpha, beta, GemmPrecision::F32);
  const std::string what = a.desc() + " · " + b.desc() + " → " + c.desc();
  CHECK_MESSAGE(worst(bf) <= 1.0, what << ": bf16 error " << worst(bf) << " × the f32-accumulation bound");
  // The f32 product of the unrounded inputs is far from the bf16 one: the rounding happened.
  CHECK_MESSAGE(worst(f32) > 4.0, what << ": f32 GEMM within " << worst(f32) << " × bound of the bf16 product");
}

}  // namespace

TEST_CASE("bf16 rounding: nearest, ties to even, subnormals kept, NaN stays NaN, overflow to inf") {
  Rng rng(21);
  std::vector<uint32_t> patterns{
      0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f817fffu,  // ties and near-ties
      0x7f7fffffu, 0x7f7f7fffu, 0x7f7f8000u, 0x00000001u,  // the largest, overflow, subnormals
      0x00008000u, 0x00018000u, 0x80010000u, 0x007fffffu, 0x00800000u};
  for (int i = 0; i < 200000; ++i) patterns.push_back(static_cast<uint32_t>(rng.next_u64()));
  int64_t checked = 0;
  for (uint32_t u : patterns) {
    const float x = bits_to_float(u);
    const float got = cpu::bf16_round(x);
    uint32_t gb;
    std::memcpy(&gb, &got, sizeof gb);
    CHECK((gb & 0xffffu) == 0);  // a bf16 value: the low 16 bits are zero
    const uint32_t shifted = static_cast<uint32_t>(cpu::bf16_bits(x)) << 16;
    CHECK(shifted == gb);
    if (std::isnan(x)) {
      CHECK(std::isnan(got));
      continue;
    }
    const double want = ref_bf16(static_cast<double>(x));
    if (static_cast<double>(got) != want)
      FAIL_CHECK("bf16(" << std::hexfloat << x << ") = " << got << ", want " << want);
    ++checked;
  }
  CHECK(checked > 190000);
  // The ties, spelled out: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even 1.
  CHECK(cpu::bf16_round(1.0f + 0x1.0p-8f) == 1.0f);
  CHECK(cpu::bf16_round(1.0f + 3 * 0x1.0p-8f) == 1.0f + 4 * 0x1.0p-8f);
}

TEST_CASE("bf16 GEMM matches the float64 product of the bf16-rounded inputs") {
  MESSAGE("bf16 GEMMs here: " << cpu_bf16_gemm_path());
  Rng rng(23);
  const Tensor a = rand_uniform({3, 7, 5}, -1, 1, rng), b = rand_uniform({3, 5, 6}, -1, 1, rng);
  const Tensor at_ = rand_uniform({3, 5, 7}, -1, 1, rng), bt = rand_uniform({3, 6, 5}, -1, 1, rng);
  const Tensor c = rand_uniform({3, 7, 6}, -1, 1, rng), c1 = rand_uniform({7, 6}, -1, 1, rng);
  SUBCASE("every transpose pair, alpha and beta") {
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        check_bf16_gemm((ta ? mat(at_, 3, 5, 7) : mat(a, 3, 7, 5)).t(ta).sub(0, ta ? 5 : 7, 0, ta ? 7 : 5),
                        (tb ? mat(bt) : mat(b)).rows_from(0, tb ? 6 : 5).t(tb), mat(c).rows_from(0, 7), 0.5, 0.25);
  }
  SUBCASE("batched, shared B, sub-views, a C that sums the batch") {
    check_bf16_gemm(mat(a, 3, 7, 5), mat(b, 3, 5, 6), mat(c, 3, 7, 6), 1.0, 0.0);
    check_bf16_gemm(mat(a, 3, 7, 5), mat(b, 1, 5, 6), mat(c, 3, 7, 6), -2.0, 1.0);
    check_bf16_gemm(mat(a, 3, 7, 5).sub(2, 4, 1, 3), mat(b, 3, 5, 6).sub(1, 3, 0, 4), mat(c, 3, 7, 6).sub(3, 4, 2, 4),
                    1.0, 0.5);
    check_bf16_gemm(mat(a, 3, 7, 5), mat(b, 3, 5, 6), mat(c1), 0.5, 0.25);
    check_bf16_gemm(mat(at_, 3, 5, 7).t(), mat(bt, 3, 6, 5).t(), mat(c1), 1.0, 0.0);
  }
  SUBCASE("large products, cut by rows and by columns, transposed operands") {
    const Tensor x = rand_uniform({512, 160}, -1, 1, rng), w = rand_uniform({192, 160}, -1, 1, rng);
    const Tensor y = rand_uniform({512, 192}, -1, 1, rng);
    check_bf16_gemm(mat(x), mat(w).t(), mat(y), 1.0, 0.0);  // x·wᵀ, cut by rows (a linear layer)
    check_bf16_gemm(mat(y).t(), mat(x), mat(Tensor::zeros({192, 160})), 1.0, 1.0);  // yᵀ·x (its weight gradient)
    const Tensor p = rand_uniform({96, 128}, -1, 1, rng), q = rand_uniform({128, 1024}, -1, 1, rng);
    check_bf16_gemm(mat(p), mat(q), mat(Tensor::zeros({96, 1024})), 1.0, 0.0);  // cut by columns
  }
}

TEST_CASE("bf16 GEMM gives the same bits with 1, 2 and 3 threads on each way the CPU splits work") {
  Rng rng(25);
  const int prev = num_threads();
  const PrecisionScope ps(GemmPrecision::BF16);
  struct Case {
    const char* what;
    int64_t batch, m, n, k;
  };
  for (const Case& cs :
       {Case{"batch of small", 16, 40, 48, 56}, Case{"rows", 1, 512, 192, 160}, Case{"columns", 1, 96, 1024, 128}}) {
    const Tensor a = rand_uniform({cs.batch, cs.m, cs.k}, -1, 1, rng),
                 b = rand_uniform({cs.batch, cs.k, cs.n}, -1, 1, rng);
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      Tensor c = Tensor::zeros({cs.batch, cs.m, cs.n});
      backend_for(Device::CPU)
          .gemm(mat(a, cs.batch, cs.m, cs.k), mat(b, cs.batch, cs.k, cs.n), mat(c, cs.batch, cs.m, cs.n));
      runs.push_back(c.to_f32_vector());
    }
    CHECK_MESSAGE(runs[0] == runs[1], cs.what);
    CHECK_MESSAGE(runs[0] == runs[2], cs.what);
  }
  set_num_threads(prev);
}

TEST_CASE("one training step's gradients, bf16 against f32: the relative error bf16 rounding predicts") {
  // A small Llama (dim 64, 2 layers) on one batch: loss and every parameter's gradient with
  // f32 GEMMs, then with bf16 GEMMs, from the same weights.
  models::LlamaConfig cfg = cg::testing::tiny_llama_config(32);
  cfg.dim = 64, cfg.hidden_dim = 128, cfg.vocab_size = 96;
  models::LlamaModel model(cfg, 7);
  model.params().set_trainable(true);
  Rng rng(8);
  const int64_t B = 4, T = cfg.seq_len;
  std::vector<int32_t> in(static_cast<size_t>(B * T)), tg(in.size());
  for (auto& v : in) v = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size)));
  for (auto& v : tg) v = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size)));
  const Tensor ids = Tensor::from_i32(in, {B, T}), targets = Tensor::from_i32(tg, {B, T});
  auto step = [&](GemmPrecision p) {
    const PrecisionScope ps(p);
    model.params().zero_grad();
    Tensor loss = model.loss(ids, targets);
    backward(loss);
    std::vector<std::vector<double>> g{{loss.item()}};
    for (const auto& [name, t] : model.params().params()) g.push_back(t.grad().to_f64_vector());
    return g;
  };
  const auto f32 = step(GemmPrecision::F32), bf = step(GemmPrecision::BF16), f32_again = step(GemmPrecision::F32);
  CHECK(f32 == f32_again);  // the switch leaves nothing behind
  // Each GEMM input is rounded with a relative error of at most 2^-9 (round to nearest,
  // 8 significant bits), so a product of two rounded inputs carries up to 2^-8, and so, in
  // norm, does each GEMM's output. A gradient passes through a chain of GEMMs — per layer
  // the attention (q/k/v, scores, values, o) and MLP (gate/up, down) products forward and
  // their transposes backward, plus the head's two — whose errors have independent signs and
  // add in quadrature: the prediction is √(GEMMs on the longest path)·2^-8 (the worst case,
  // errors all aligned, would be the path length times 2^-8).
  const double per_gemm = 0x1.0p-8;
  const double path = 2.0 * 6 * static_cast<double>(cfg.n_layers) + 2;
  const double bound = std::sqrt(path) * per_gemm;
  const double loss_rel = std::abs(bf[0][0] - f32[0][0]) / std::abs(f32[0][0]);
  MESSAGE("loss f32 " << f32[0][0] << ", bf16 " << bf[0][0] << ": relative difference " << loss_rel);
  CHECK(loss_rel <= 2 * per_gemm);
  double worst = 0, smallest = 1;
  size_t i = 1;
  for (const auto& [name, t] : model.params().params()) {
    double d2 = 0, n2 = 0;
    for (size_t j = 0; j < f32[i].size(); ++j) {
      d2 += (bf[i][j] - f32[i][j]) * (bf[i][j] - f32[i][j]);
      n2 += f32[i][j] * f32[i][j];
    }
    const double rel = std::sqrt(d2 / n2);
    MESSAGE(name << ": ‖g_bf16 − g_f32‖ / ‖g_f32‖ = " << rel << " (" << rel / per_gemm << " × 2^-8)");
    worst = std::max(worst, rel);
    smallest = std::min(smallest, rel);
    ++i;
  }
  MESSAGE("worst relative gradient error " << worst << " = " << worst / per_gemm << " × 2^-8; bound " << bound);
  CHECK(worst <= bound);
  // And bf16 really changed every gradient (f32 GEMMs alone agree to ~2^-20).
  CHECK(smallest > 0x1.0p-16);
}
