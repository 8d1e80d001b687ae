// tests/test_linalg.cpp — engine/linalg against matrices whose factorisations are known by
// construction: diagonal ones, and the same diagonals turned by plane rotations on both sides
// (U·D·Vᵀ has the singular values |D|); QR checked by its defining properties.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/linalg.h"
#include "tests/test_util.h"
#include "tests/tolerances.h"

using namespace cg;
using cg::testing::matmul_rm;
namespace tol = cg::testing::tol;

namespace {

using Mat = std::vector<double>;  // row-major

// The n×n rotation by theta in the plane of coordinates (p, q).
Mat rotation(int64_t n, int64_t p, int64_t q, double theta) {
  Mat g(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) g[static_cast<size_t>(i * n + i)] = 1;
  g[static_cast<size_t>(p * n + p)] = g[static_cast<size_t>(q * n + q)] = std::cos(theta);
  g[static_cast<size_t>(p * n + q)] = -std::sin(theta);
  g[static_cast<size_t>(q * n + p)] = std::sin(theta);
  return g;
}
// A product of rotations in every coordinate plane: a dense orthogonal n×n matrix.
Mat dense_orthogonal(int64_t n, double seed_angle) {
  Mat u = rotation(n, 0, 1, 0);
  for (int64_t p = 0; p < n; ++p)
    for (int64_t q = p + 1; q < n; ++q) u = matmul_rm(u, rotation(n, p, q, seed_angle * (1 + p + 2 * q)), n, n, n);
  return u;
}
Mat diagonal(int64_t rows, int64_t cols, const std::vector<double>& d) {
  Mat m(static_cast<size_t>(rows * cols), 0.0);
  for (size_t i = 0; i < d.size(); ++i) m[i * static_cast<size_t>(cols) + i] = d[i];
  return m;
}
double max_abs(const Mat& m) {
  double x = 0;
  for (double v : m) x = std::max(x, std::abs(v));
  return x;
}

}  // namespace

TEST_CASE("linalg: singular values of diagonal matrices") {
  // Square, unsorted, one negative entry: σ = |d| in descending order.
  auto s = linalg::singular_values(diagonal(4, 4, {1, -5, 0.5, 3}), 4, 4);
  REQUIRE(s.size() == 4);
  const double want[] = {5, 3, 1, 0.5};
  for (size_t i = 0; i < 4; ++i) CHECK(s[i] == doctest::Approx(want[i]).epsilon(tol::kLinalgRel));
  // Wide and tall: min(rows, cols) values.
  s = linalg::singular_values(diagonal(2, 5, {2, 7}), 2, 5);
  REQUIRE(s.size() == 2);
  CHECK(s[0] == doctest::Approx(7).epsilon(tol::kLinalgRel));
  CHECK(s[1] == doctest::Approx(2).epsilon(tol::kLinalgRel));
  s = linalg::singular_values(diagonal(5, 2, {2, 7}), 5, 2);
  REQUIRE(s.size() == 2);
  CHECK(s[0] == doctest::Approx(7).epsilon(tol::kLinalgRel));
  // The zero matrix: all zero.
  for (double x : linalg::singular_values(Mat(6, 0.0), 2, 3)) CHECK(x == 0);
}

TEST_CASE("linalg: singular values of a rotated diagonal") {
  const int64_t rows = 5, cols = 4;
  const std::vector<double> d{4, -2.5, 1, 0.25};
  const Mat u = dense_orthogonal(rows, 0.3), v = dense_orthogonal(cols, -0.7);
  Mat vt(static_cast<size_t>(cols * cols));
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) vt[static_cast<size_t>(i * cols + j)] = v[static_cast<size_t>(j * cols + i)];
  const Mat m = matmul_rm(matmul_rm(u, diagonal(rows, cols, d), rows, rows, cols), vt, rows, cols, cols);
  // The rotations must mix: a good part of M's mass is off its diagonal (else this is the diagonal case again).
  double off = 0, all = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const double x2 = m[static_cast<size_t>(i * cols + j)] * m[static_cast<size_t>(i * cols + j)];
      all += x2;
      if (i != j) off += x2;
    }
  REQUIRE(off > 0.25 * all);
  const auto s = linalg::singular_values(m, rows, cols);
  REQUIRE(s.size() == 4);
  const double want[] = {4, 2.5, 1, 0.25};
  for (size_t i = 0; i < 4; ++i) CHECK(s[i] == doctest::Approx(want[i]).epsilon(tol::kLinalgRel));
}

TEST_CASE("linalg: QR of a rotated diagonal") {
  const int64_t rows = 5, cols = 3;
  const Mat u = dense_orthogonal(rows, 0.45);
  const Mat a = matmul_rm(u, diagonal(rows, cols, {3, -1, 2}), rows, rows, cols);
  const linalg::QR f = linalg::qr(a, rows, cols);
  REQUIRE(f.q.size() == static_cast<size_t>(rows * cols));
  REQUIRE(f.r.size() == static_cast<size_t>(cols * cols));
  // R upper triangular; Q·R = A; QᵀQ = I.
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < i; ++j) CHECK(f.r[static_cast<size_t>(i * cols + j)] == 0);
  Mat diff = matmul_rm(f.q, f.r, rows, cols, cols);
  for (size_t i = 0; i < diff.size(); ++i) diff[i] -= a[i];
  CHECK(max_abs(diff) <= tol::kLinalgRel * max_abs(a));
  Mat qt(static_cast<size_t>(cols * rows));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) qt[static_cast<size_t>(j * rows + i)] = f.q[static_cast<size_t>(i * cols + j)];
  Mat g = matmul_rm(qt, f.q, cols, rows, cols);
  for (int64_t i = 0; i < cols; ++i) g[static_cast<size_t>(i * cols + i)] -= 1;
  CHECK(max_abs(g) <= tol::kLinalgRel);
  // A's columns are orthogonal with norms 3, 1, 2: R is diagonal with those magnitudes.
  const double norms[] = {3, 1, 2};
  for (int64_t i = 0; i < cols; ++i) {
    CHECK(std::abs(f.r[static_cast<size_t>(i * cols + i)]) == doctest::Approx(norms[i]).epsilon(tol::kLinalgRel));
    for (int64_t j = i + 1; j < cols; ++j) CHECK(std::abs(f.r[static_cast<size_t>(i * cols + j)]) <= 1e-12);
  }
  // Without Q: the same R, no Q.
  const linalg::QR fr = linalg::qr(a, rows, cols, false);
  CHECK(fr.q.empty());
  CHECK(fr.r == f.r);
}

TEST_CASE("linalg: shapes that do not fit are refused") {
  CHECK_THROWS_AS(linalg::singular_values({1, 2, 3}, 2, 2), ShapeError);
  CHECK_THROWS_AS(linalg::singular_values({}, 0, 3), ShapeError);
  CHECK_THROWS_AS(linalg::qr({1, 2, 3, 4, 5, 6}, 2, 3), ShapeError);  // rows < cols
  CHECK_THROWS_AS(linalg::qr({1, 2, 3}, 2, 2), ShapeError);
}
