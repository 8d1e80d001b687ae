// engine/linalg.cpp — singular values and QR through LAPACK (Fortran ABI: column-major,
// arguments by pointer, a workspace query with lwork = -1 before each call).
#include "engine/linalg.h"

#include <algorithm>
#include <string>

#include "engine/error.h"

// The trailing size_t are the hidden lengths of the character arguments.
extern "C" {
void dgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a, const int* lda, double* s,
             double* u, const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* info,
             size_t jobu_len, size_t jobvt_len);
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work, const int* lwork,
             int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau, double* work,
             const int* lwork, int* info);
}

namespace cg::linalg {

std::vector<double> singular_values(const std::vector<double>& m, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1 || static_cast<int64_t>(m.size()) != rows * cols)
    throw ShapeError("singular_values: " + std::to_string(m.size()) + " values for a " + std::to_string(rows) + "x" +
                     std::to_string(cols) + " matrix");
  // Row-major M[rows, cols] is column-major Mᵀ[cols, rows]; Mᵀ has the same singular values.
  std::vector<double> a = m;
  const int mm = static_cast<int>(cols), nn = static_cast<int>(rows), one = 1;
  std::vector<double> s(static_cast<size_t>(std::min(rows, cols)));
  double dummy = 0, wq = 0;
  int info = 0, lwork = -1;
  dgesvd_("N", "N", &mm, &nn, a.data(), &mm, s.data(), &dummy, &one, &dummy, &one, &wq, &lwork, &info, 1, 1);
  lwork = std::max(1, static_cast<int>(wq));
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesvd_("N", "N", &mm, &nn, a.data(), &mm, s.data(), &dummy, &one, &dummy, &one, work.data(), &lwork, &info, 1, 1);
  if (info != 0) throw Error("singular_values: dgesvd failed, info " + std::to_string(info));
  return s;
}

QR qr(const std::vector<double>& a, int64_t rows, int64_t cols, bool want_q) {
  if (cols < 1 || rows < cols || static_cast<int64_t>(a.size()) != rows * cols)
    throw ShapeError("qr: " + std::to_string(a.size()) + " values for a " + std::to_string(rows) + "x" +
                     std::to_string(cols) + " matrix (rows >= cols >= 1 needed)");
  const int m = static_cast<int>(rows), n = static_cast<int>(cols);
  std::vector<double> cm(a.size());  // column-major copy, overwritten by the factorisation
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) cm[static_cast<size_t>(i + j * rows)] = a[static_cast<size_t>(i * cols + j)];
  std::vector<double> tau(static_cast<size_t>(cols));
  int info = 0, lwork = -1;
  double wq = 0;
  dgeqrf_(&m, &n, cm.data(), &m, tau.data(), &wq, &lwork, &info);
  lwork = std::max(1, static_cast<int>(wq));
  std::vector<double> work(static_cast<size_t>(lwork));
  dgeqrf_(&m, &n, cm.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw Error("qr: dgeqrf failed, info " + std::to_string(info));
  QR out;
  out.r.assign(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = i; j < cols; ++j) out.r[static_cast<size_t>(i * cols + j)] = cm[static_cast<size_t>(i + j * rows)];
  if (!want_q) return out;
  lwork = -1;
  dorgqr_(&m, &n, &n, cm.data(), &m, tau.data(), &wq, &lwork, &info);
  lwork = std::max(1, static_cast<int>(wq));
  work.assign(static_cast<size_t>(lwork), 0.0);
  dorgqr_(&m, &n, &n, cm.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw Error("qr: dorgqr failed, info " + std::to_string(info));
  out.q.resize(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out.q[static_cast<size_t>(i * cols + j)] = cm[static_cast<size_t>(i + j * rows)];
  return out;
}

}  // namespace cg::linalg
