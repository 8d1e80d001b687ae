// engine/gemm.cpp — MatView construction and the shape checks of Backend::gemm.
#include "engine/gemm.h"

#include <algorithm>

#include "engine/backend.h"

namespace cg {

MatView MatView::sub(int64_t r0, int64_t n, int64_t c0, int64_t m) const {
  if (r0 < 0 || n < 0 || r0 + n > rows || c0 < 0 || m < 0 || c0 + m > cols)
    throw ShapeError("MatView::sub: rows [" + std::to_string(r0) + ", " + std::to_string(r0 + n) + ") × cols [" +
                     std::to_string(c0) + ", " + std::to_string(c0 + m) + ") outside " + desc());
  MatView v = *this;
  v.data = static_cast<char*>(data) + (r0 * ld + c0) * static_cast<int64_t>(dtype_size(dtype));
  v.rows = n;
  v.cols = m;
  return v;
}

std::string MatView::desc() const {
  std::string s = dtype_name(dtype);
  s += "[";
  if (batch != 1) s += std::to_string(batch) + " × ";
  s += std::to_string(rows) + "×" + std::to_string(cols);
  if (ld != cols) s += ", ld " + std::to_string(ld);
  s += "]";
  if (trans) s += "ᵀ";
  return s;
}

MatView mat(const Tensor& t) {
  const int64_t cols = t.shape().cols();
  return MatView{t.raw(), t.dtype(), t.shape().rows(), cols, std::max<int64_t>(cols, 1), 1, 0, false};
}

MatView mat(const Tensor& t, int64_t batch, int64_t rows, int64_t cols) {
  if (batch < 1 || rows < 0 || cols < 0 || batch * rows * cols > t.numel())
    throw ShapeError("mat: " + std::to_string(batch) + " × [" + std::to_string(rows) + "×" + std::to_string(cols) +
                     "] matrices do not fit in " + t.desc());
  return MatView{t.raw(), t.dtype(), rows, cols, std::max<int64_t>(cols, 1), batch, rows * cols, false};
}

const char* precision_name(GemmPrecision p) { return p == GemmPrecision::BF16 ? "bf16" : "f32"; }

GemmArgs gemm_args(const MatView& a, const MatView& b, const MatView& c, double alpha, double beta,
                   GemmPrecision precision) {
  auto fail = [&](const std::string& why) {
    throw ShapeError("gemm: op(A) " + a.desc() + " · op(B) " + b.desc() + " → C " + c.desc() + ": " + why);
  };
  // A bf16-stored operand (a frozen weight) multiplies in a bf16 product into an f32 C: its
  // bits are the rounded values. Under f32 precision it is refused, not widened: a weight
  // stored in bf16 cannot give an f32 product's result.
  const bool bf16_operand = a.dtype == DType::BF16 || b.dtype == DType::BF16;
  if (bf16_operand) {
    auto refuse = [&](const std::string& why) {
      throw DTypeError("gemm: op(A) " + a.desc() + " · op(B) " + b.desc() + " → C " + c.desc() + ": " + why);
    };
    for (const MatView* v : {&a, &b})
      if (v->dtype != DType::BF16 && v->dtype != DType::F32) refuse("a bf16 operand multiplies only with f32 or bf16");
    if (c.dtype != DType::F32) refuse("a bf16 operand needs an f32 C");
    if (precision != GemmPrecision::BF16) refuse("a bf16-stored operand needs bf16 precision (--precision bf16)");
  } else {
    if (a.dtype != b.dtype || a.dtype != c.dtype) fail("dtypes differ");
    if (!is_float(a.dtype)) fail("needs f32 or f64");
  }
  const int64_t m = a.op_rows(), k = a.op_cols(), n = b.op_cols();
  if (b.op_rows() != k) fail("inner dims differ (" + std::to_string(k) + " vs " + std::to_string(b.op_rows()) + ")");
  if (c.trans) fail("C cannot be transposed");
  if (c.rows != m || c.cols != n) fail("C must be " + std::to_string(m) + "×" + std::to_string(n));
  for (const MatView* v : {&a, &b, &c}) {
    if (v->batch < 1) fail("batch count below 1");
    if (v->rows > 1 && v->ld < v->cols) fail("leading dim below the column count");
  }
  const int64_t batch = std::max({a.batch, b.batch, c.batch});
  for (const MatView* v : {&a, &b, &c})
    if (v->batch != 1 && v->batch != batch) fail("batch counts differ (each is 1 or " + std::to_string(batch) + ")");
  // BF16 applies to f32 products with something to multiply (k = 0 only scales C).
  if (c.dtype != DType::F32 || k == 0) precision = GemmPrecision::F32;
  GemmArgs g{a, b, c, alpha, beta, m, n, k, batch, precision};
  for (MatView* v : {&g.a, &g.b, &g.c})
    if (v->batch == 1) v->stride = 0;  // one matrix for every entry
  return g;
}

}  // namespace cg
