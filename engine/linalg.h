// engine/linalg.h — the dense linear algebra the study and the adapters' initialisation need,
// on host row-major double matrices: singular values and the QR factorisation. The one place
// that calls LAPACK.
#pragma once
#include <cstdint>
#include <vector>

namespace cg::linalg {

// Singular values of the row-major m[rows, cols], descending, min(rows, cols) of them (dgesvd,
// no vectors).
std::vector<double> singular_values(const std::vector<double>& m, int64_t rows, int64_t cols);

// A = Q·R for the row-major a[rows, cols], rows ≥ cols (dgeqrf, then dorgqr for Q): q[rows, cols]
// with orthonormal columns (left empty unless want_q) and the upper-triangular r[cols, cols], both
// row-major. Householder signs as LAPACK leaves them (diag R may be negative).
struct QR {
  std::vector<double> q, r;
};
QR qr(const std::vector<double>& a, int64_t rows, int64_t cols, bool want_q = true);

}  // namespace cg::linalg
