// tests/test_forward_ref.cpp — forward values of softmax (plain and causal), log_softmax,
// rmsnorm and layernorm (with an eps large enough to matter), cross-entropy with several
// ignored targets, and rope at a non-default θ, against loops written here in double.
// gradcheck proves each backward consistent with its forward; these prove the forwards.
// float64 must agree to rounding (1e-12 relative to the largest value); float32 to a bound
// from its machine epsilon (≈ 6e-8) times the few dozen roundings of each value: 1e-5.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/ops.h"

using namespace cg;

namespace {

constexpr int64_t kRows = 6, kCols = 11;

double max_rel_diff(const std::vector<double>& ref, const Tensor& got) {
  const auto g = got.to_f64_vector();
  REQUIRE(g.size() == ref.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, std::abs(g[i] - ref[i]));
    m = std::max(m, std::abs(ref[i]));
  }
  return d / std::max(m, 1e-300);
}

double tol(DType dt) { return dt == DType::F64 ? 1e-12 : 1e-5; }

std::vector<double> ref_softmax(const std::vector<double>& x, int64_t rows, int64_t cols, bool log, bool causal) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = causal ? std::min(cols, r % rows + 1 + (cols - rows)) : cols;  // keys ≤ t + (Tk − Tq)
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[r * cols + j]);
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(x[r * cols + j] - mx);
    for (int64_t j = 0; j < cols; ++j)
      y[r * cols + j] = j < n ? (log ? x[r * cols + j] - mx - std::log(s) : std::exp(x[r * cols + j] - mx) / s) : 0.0;
  }
  return y;
}

}  // namespace

TEST_CASE("forward vs double loops: softmax, causal softmax, log_softmax") {
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    Rng g(21);
    const Tensor x = rand_uniform({kRows, kCols}, -6, 6, g, dt);
    const auto xv = x.to_f64_vector();
    NoGrad ng;
    CHECK(max_rel_diff(ref_softmax(xv, kRows, kCols, false, false), ops::softmax(x)) <= tol(dt));
    CHECK(max_rel_diff(ref_softmax(xv, kRows, kCols, false, true), ops::softmax(x, true)) <= tol(dt));
    CHECK(max_rel_diff(ref_softmax(xv, kRows, kCols, true, false), ops::log_softmax(x)) <= tol(dt));
  }
}

TEST_CASE("forward vs double loops: rmsnorm and layernorm use the eps they are given") {
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    Rng g(22);
    // Small inputs (mean x² ≈ 3e-4) so that eps = 1e-3 against 1e-5 changes y by ~40%.
    const Tensor x = rand_uniform({kRows, kCols}, -0.03, 0.03, g, dt);
    const Tensor w = rand_uniform({kCols}, 0.5, 1.5, g, dt), b = rand_uniform({kCols}, -0.5, 0.5, g, dt);
    const auto xv = x.to_f64_vector(), wv = w.to_f64_vector(), bv = b.to_f64_vector();
    for (double eps : {1e-5, 1e-3}) {
      CAPTURE(eps);
      std::vector<double> rms(xv.size()), ln(xv.size());
      for (int64_t r = 0; r < kRows; ++r) {
        double ss = 0, mu = 0, var = 0;
        for (int64_t j = 0; j < kCols; ++j) {
          ss += xv[r * kCols + j] * xv[r * kCols + j];
          mu += xv[r * kCols + j];
        }
        mu /= kCols;
        for (int64_t j = 0; j < kCols; ++j) var += (xv[r * kCols + j] - mu) * (xv[r * kCols + j] - mu);
        var /= kCols;  // biased, as LayerNorm defines it
        for (int64_t j = 0; j < kCols; ++j) {
          rms[r * kCols + j] = xv[r * kCols + j] / std::sqrt(ss / kCols + eps) * wv[j];
          ln[r * kCols + j] = (xv[r * kCols + j] - mu) / std::sqrt(var + eps) * wv[j] + bv[j];
        }
      }
      NoGrad ng;
      CHECK(max_rel_diff(rms, ops::rmsnorm(x, w, eps)) <= tol(dt));
      CHECK(max_rel_diff(ln, ops::layernorm(x, w, b, eps)) <= tol(dt));
    }
  }
}

TEST_CASE("forward vs double loops: cross-entropy is the mean over the rows that are not ignored") {
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    Rng g(23);
    const int64_t rows = 9, V = 7;
    const Tensor logits = rand_uniform({rows, V}, -3, 3, g, dt);
    const std::vector<int32_t> tg{3, -1, 0, 6, -1, -1, 2, 5, -7};  // four ignored rows (any negative)
    const auto lv = logits.to_f64_vector();
    const auto lsm = ref_softmax(lv, rows, V, true, false);
    double sum = 0;
    int n = 0;
    for (int64_t r = 0; r < rows; ++r)
      if (tg[static_cast<size_t>(r)] >= 0) {
        sum -= lsm[static_cast<size_t>(r * V + tg[static_cast<size_t>(r)])];
        ++n;
      }
    NoGrad ng;
    const double got = ops::cross_entropy(logits, Tensor::from_i32(tg, {rows})).item();
    CHECK(std::abs(got - sum / n) <= tol(dt) * std::abs(sum / n));
    // the same rows as a [3, 3] batch
    const double got2 = ops::cross_entropy(ops::reshape(logits, {3, 3, V}), Tensor::from_i32(tg, {3, 3})).item();
    CHECK(std::abs(got2 - sum / n) <= tol(dt) * std::abs(sum / n));
  }
}

TEST_CASE("forward vs double loops: rope (rotate-half) at θ = 500000 and a position offset") {
  for (DType dt : {DType::F64, DType::F32}) {
    CAPTURE(dtype_name(dt));
    Rng g(24);
    const int64_t B = 1, T = 5, H = 2, D = 8, off = 3;
    const double theta = 500000.0;
    const Tensor x = rand_uniform({B, T, H, D}, -1, 1, g, dt);
    const auto xv = x.to_f64_vector();
    std::vector<double> y(xv.size());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < D / 2; ++i) {
          const double ang = static_cast<double>(t + off) * std::pow(theta, -2.0 * static_cast<double>(i) / D);
          const size_t base = static_cast<size_t>((t * H + h) * D);
          const double a = xv[base + i], b = xv[base + i + D / 2];
          y[base + i] = a * std::cos(ang) - b * std::sin(ang);
          y[base + i + D / 2] = b * std::cos(ang) + a * std::sin(ang);
        }
    NoGrad ng;
    CHECK(max_rel_diff(y, ops::rope(x, off, theta)) <= tol(dt));
  }
}
