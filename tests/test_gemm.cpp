// tests/test_gemm.cpp — Backend::gemm on MatViews: results against a plain float64 loop
// (transposes, sub-views, shared and batched operands, a C that sums the batch, one-row
// products), the shape errors, and the same bits for every thread count on each way the CPU
// splits work.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/backend.h"
#include "engine/rng.h"

using namespace cg;

namespace {

double at(const MatView& v, int64_t b, int64_t r, int64_t c) {  // op(V_b)[r, c]
  const int64_t i = v.trans ? c : r, j = v.trans ? r : c;
  return static_cast<const double*>(v.data)[(v.batch == 1 ? 0 : b * v.stride) + i * v.ld + j];
}

// The reference: C_b = alpha·op(A_b)·op(B_b) + beta·C_b, or the in-order sum when C has batch 1.
std::vector<double> naive(const MatView& a, const MatView& b, const MatView& c, double alpha, double beta) {
  const int64_t m = c.rows, n = c.cols, k = a.op_cols(), batch = std::max({a.batch, b.batch, c.batch});
  std::vector<double> out(static_cast<const double*>(c.data),
                          static_cast<const double*>(c.data) + (c.batch - 1) * c.stride + (m - 1) * c.ld + n);
  for (int64_t e = 0; e < batch; ++e)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += at(a, e, i, p) * at(b, e, p, j);
        double& o = out[(c.batch == 1 ? 0 : e * c.stride) + i * c.ld + j];
        o = alpha * s + ((c.batch == 1 && e > 0) ? 1.0 : beta) * o;
      }
  return out;
}

void check_against_naive(const MatView& a, const MatView& b, const MatView& c, double alpha, double beta) {
  const int64_t len = (c.batch - 1) * c.stride + (c.rows - 1) * c.ld + c.cols;
  std::vector<double> before(static_cast<double*>(c.data), static_cast<double*>(c.data) + len);
  const std::vector<double> want = naive(a, b, c, alpha, beta);
  backend_for(Device::CPU).gemm(a, b, c, alpha, beta);
  const double* got = static_cast<const double*>(c.data);
  const int64_t k = a.op_cols();
  double worst = 0;
  for (int64_t i = 0; i < len; ++i) {
    // |error| ≤ k·eps·Σ|terms| + rounding of alpha, beta; the terms are below 1 in size.
    const double tol = (k + 4) * 0x1.0p-52 * (std::abs(alpha) * k * std::max<int64_t>(1, a.batch) + std::abs(beta) + 1);
    worst = std::max(worst, std::abs(got[i] - want[i]) / tol);
  }
  CHECK_MESSAGE(worst <= 1.0, a.desc() << " · " << b.desc() << " → " << c.desc() << ": error " << worst << " × bound");
  std::memcpy(c.data, before.data(), static_cast<size_t>(len) * sizeof(double));
}

std::vector<float> bits(const Tensor& t) { return t.to_f32_vector(); }

}  // namespace

TEST_CASE("gemm on views matches a float64 loop") {
  Rng rng(3);
  const Tensor a = rand_uniform({3, 7, 5}, -1, 1, rng, DType::F64), b = rand_uniform({3, 5, 6}, -1, 1, rng, DType::F64);
  const Tensor at_ = rand_uniform({3, 5, 7}, -1, 1, rng, DType::F64),
               bt = rand_uniform({3, 6, 5}, -1, 1, rng, DType::F64);
  Tensor c = rand_uniform({3, 7, 6}, -1, 1, rng, DType::F64), c1 = rand_uniform({7, 6}, -1, 1, rng, DType::F64);
  SUBCASE("every transpose pair, one matrix") {
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        check_against_naive((ta ? mat(at_, 3, 5, 7) : mat(a, 3, 7, 5)).t(ta).sub(0, ta ? 5 : 7, 0, ta ? 7 : 5),
                            (tb ? mat(bt) : mat(b)).rows_from(0, tb ? 6 : 5).t(tb), mat(c).rows_from(0, 7), 0.5, 0.25);
  }
  SUBCASE("batched, shared B, sub-views with a leading dim") {
    check_against_naive(mat(a, 3, 7, 5), mat(b, 3, 5, 6), mat(c, 3, 7, 6), 1.0, 0.0);
    check_against_naive(mat(a, 3, 7, 5), mat(b, 1, 5, 6), mat(c, 3, 7, 6), -2.0, 1.0);
    check_against_naive(mat(a, 3, 7, 5).sub(2, 4, 1, 3), mat(b, 3, 5, 6).sub(1, 3, 0, 4),
                        mat(c, 3, 7, 6).sub(3, 4, 2, 4), 1.0, 0.5);
  }
  SUBCASE("one row (the CPU runs a row times a matrix as a GEMV): every transpose pair, strided rows, batched") {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        // op(A) [1,5]: row 2 of a, or column 3 of at_ transposed (its entries ld = 7 apart)
        const MatView a1 = ta ? mat(at_, 3, 5, 7).sub(0, 5, 3, 1).t() : mat(a, 3, 7, 5).sub(2, 1, 0, 5);
        check_against_naive(a1, (tb ? mat(bt) : mat(b)).rows_from(0, tb ? 6 : 5).t(tb), mat(c).sub(1, 1, 0, 6), 0.5,
                            0.25);
        check_against_naive(a1, tb ? mat(bt).sub(0, 4, 0, 5).t() : mat(b).sub(0, 5, 1, 4), mat(c).sub(3, 1, 2, 4), -1.0,
                            0.0);
      }
    check_against_naive(mat(a, 3, 7, 5).sub(2, 1, 0, 5), mat(b, 3, 5, 6), mat(c, 3, 7, 6).sub(4, 1, 0, 6), 1.0, 0.5);
    check_against_naive(mat(a, 3, 7, 5).sub(2, 1, 0, 5), mat(bt, 3, 6, 5).t(), mat(c1).sub(0, 1, 0, 6), 1.0, 0.0);
    // beta = 0 ignores what C held, NaN included
    Tensor cn = Tensor::zeros({1, 6}, DType::F64), cz = Tensor::zeros({1, 6}, DType::F64);
    std::fill(cn.data<double>(), cn.data<double>() + 6, std::nan(""));
    backend_for(Device::CPU).gemm(mat(a, 3, 7, 5).sub(0, 1, 0, 5), mat(b).rows_from(0, 5), mat(cn));
    backend_for(Device::CPU).gemm(mat(a, 3, 7, 5).sub(0, 1, 0, 5), mat(b).rows_from(0, 5), mat(cz));
    CHECK(cn.to_f64_vector() == cz.to_f64_vector());
  }
  SUBCASE("a C of batch 1 sums the batch in order, beta on the first entry only") {
    check_against_naive(mat(a, 3, 7, 5), mat(b, 3, 5, 6), mat(c1), 0.5, 0.25);
    check_against_naive(mat(at_, 3, 5, 7).t(), mat(bt, 3, 6, 5).t(), mat(c1), 1.0, 0.0);
  }
}

TEST_CASE("gemm names the three views when they do not fit") {
  Backend& be = backend_for(Device::CPU);
  const Tensor a = Tensor::zeros({4, 3}), b = Tensor::zeros({5, 2}), c = Tensor::zeros({4, 2});
  auto message = [&](auto f) {
    try {
      f();
    } catch (const ShapeError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string inner = message([&] { be.gemm(mat(a), mat(b), mat(c)); });
  CHECK(inner.find("inner dims differ (3 vs 5)") != std::string::npos);
  CHECK(inner.find("f32[4×3]") != std::string::npos);
  CHECK(inner.find("f32[5×2]") != std::string::npos);
  CHECK(message([&] { be.gemm(mat(a), mat(b).rows_from(0, 3), mat(c).t()); }).find("transposed") != std::string::npos);
  CHECK(message([&] { be.gemm(mat(a).t(), mat(a), mat(c)); }).find("C must be 3×3") != std::string::npos);
  const Tensor a3 = Tensor::zeros({2, 4, 3}), b3 = Tensor::zeros({3, 3, 2}), c3 = Tensor::zeros({3, 4, 2});
  CHECK(message([&] { be.gemm(mat(a3, 2, 4, 3), mat(b3, 3, 3, 2), mat(c3, 3, 4, 2)); }).find("batch counts differ") !=
        std::string::npos);
  CHECK(message([&] {
          be.gemm(mat(a), mat(Tensor::zeros({3, 2}, DType::F64)), mat(c));
        }).find("dtypes differ") != std::string::npos);
  CHECK(message([&] { (void)mat(a).sub(2, 3, 0, 3); }).find("outside f32[4×3]") != std::string::npos);
  CHECK(message([&] { (void)mat(a, 2, 4, 3); }).find("do not fit") != std::string::npos);
}

TEST_CASE("gemm gives the same bits with 1, 2 and 3 threads on each way the CPU splits work") {
  Rng rng(5);
  const int prev = num_threads();
  struct Case {
    const char* what;
    int64_t batch, m, n, k;
  };
  // A batch of small products; one large product cut by rows; one cut by columns; the
  // same for one-row products (GEMVs).
  for (const Case& cs :
       {Case{"batch of small", 16, 40, 48, 56}, Case{"rows", 1, 512, 192, 160}, Case{"columns", 1, 96, 1024, 128},
        Case{"batch of one-row", 64, 1, 128, 64}, Case{"one row, columns", 1, 1, 20000, 256}}) {
    const Tensor a = rand_uniform({cs.batch, cs.m, cs.k}, -1, 1, rng),
                 b = rand_uniform({cs.batch, cs.k, cs.n}, -1, 1, rng);
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      Tensor c = Tensor::zeros({cs.batch, cs.m, cs.n});
      backend_for(Device::CPU)
          .gemm(mat(a, cs.batch, cs.m, cs.k), mat(b, cs.batch, cs.k, cs.n), mat(c, cs.batch, cs.m, cs.n));
      runs.push_back(bits(c));
    }
    CHECK_MESSAGE(runs[0] == runs[1], cs.what);
    CHECK_MESSAGE(runs[0] == runs[2], cs.what);
  }
  set_num_threads(prev);
}
