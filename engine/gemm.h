// engine/gemm.h — MatView, the operand of Backend::gemm: a row-major matrix (or a batch of
// equally spaced ones) inside a tensor's memory, with a flag for op() = transpose. Views
// are made from tensors and narrowed with sub/rows/t; the GEMM derives m, n, k from them.
#pragma once
#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace cg {

struct MatView {
  void* data = nullptr;  // element (0, 0) of batch entry 0
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;  // the stored matrix, before op()
  int64_t ld = 0;              // elements from one row to the next (≥ cols, ≥ 1)
  int64_t batch = 1;           // matrices in the view (1: one matrix, shared by a batched product)
  int64_t stride = 0;          // elements from one batch entry to the next
  bool trans = false;          // op(X) = Xᵀ

  int64_t op_rows() const { return trans ? cols : rows; }
  int64_t op_cols() const { return trans ? rows : cols; }
  // The same view with op() transposed (when flip).
  MatView t(bool flip = true) const {
    MatView v = *this;
    v.trans = trans != flip;
    return v;
  }
  // Stored rows [r0, r0 + n) and columns [c0, c0 + m) of every batch entry.
  MatView sub(int64_t r0, int64_t n, int64_t c0, int64_t m) const;
  MatView rows_from(int64_t r0, int64_t n) const { return sub(r0, n, 0, cols); }
  // "f32[batch × rows×cols, ld]ᵀ", for error messages.
  std::string desc() const;
};

// t as one [rows, cols] matrix: cols = the last dim, rows = all the others.
MatView mat(const Tensor& t);
// t's first batch·rows·cols elements as `batch` contiguous [rows, cols] matrices.
MatView mat(const Tensor& t, int64_t batch, int64_t rows, int64_t cols);

// How an f32 product multiplies: F32, or BF16 — A and B rounded to bfloat16 (round to
// nearest even), products accumulated in f32, C stays f32. f64 products are always exact.
enum class GemmPrecision { F32, BF16 };
const char* precision_name(GemmPrecision p);  // "f32", "bf16"

// A checked product: the views (batch-1 views with stride 0), the scalars, the sizes
// op(A)[m,k] · op(B)[k,n] over `batch` entries, and the precision (BF16 only for an f32 C).
// A and B have C's dtype, except that either may be stored in bf16 (DType::BF16, a frozen
// weight) under BF16 precision with an f32 C: its bits are used as they are, where an f32
// operand is rounded (same values, so the same result); under F32 precision a bf16
// operand is refused. Made by gemm_args, which throws a ShapeError naming the three views
// when they do not fit.
struct GemmArgs {
  MatView a, b, c;
  double alpha, beta;
  int64_t m, n, k, batch;
  GemmPrecision precision = GemmPrecision::F32;
};
GemmArgs gemm_args(const MatView& a, const MatView& b, const MatView& c, double alpha, double beta,
                   GemmPrecision precision = GemmPrecision::F32);

}  // namespace cg
