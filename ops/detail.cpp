// ops/detail.cpp — shared checks for the ops.
#include "ops/detail.h"

namespace cg::ops::detail {

void check_same(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    if (t->device() != first->device())
      throw DeviceError(std::string(op) + ": tensors on different devices: " + first->desc() + " and " + t->desc());
    if (t->dtype() != first->dtype())
      throw DTypeError(std::string(op) + ": mixed dtypes: " + first->desc() + " and " + t->desc());
  }
}

void check_float(const char* op, const Tensor& t) {
  if (!is_float(t.dtype())) throw DTypeError(std::string(op) + ": needs a float tensor, got " + t.desc());
}

void check_weight(const char* op, const Tensor& x, const Tensor& w) {
  if (w.dtype() == DType::BF16 && x.dtype() == DType::F32) {
    if (w.device() != x.device())
      throw DeviceError(std::string(op) + ": tensors on different devices: " + x.desc() + " and " + w.desc());
    return;
  }
  check_same(op, {&x, &w});
  check_float(op, x);
}

void check_rank(const char* op, const Tensor& t, int lo, int hi, const char* what) {
  if (t.rank() < lo || t.rank() > hi)
    throw ShapeError(std::string(op) + ": " + what + " must have rank " + std::to_string(lo) +
                     (hi != lo ? ".." + std::to_string(hi) : "") + ", got " + t.desc());
}

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  const auto pa = a.padded(), pb = b.padded();
  Shape out;
  for (int d = kMaxRank - r; d < kMaxRank; ++d) {
    if (pa[d] != pb[d] && pa[d] != 1 && pb[d] != 1)
      throw ShapeError(std::string(op) + ": shapes " + a.str() + " and " + b.str() + " do not broadcast");
    out.push(pa[d] == 1 ? pb[d] : pa[d]);
  }
  return out;
}

Tensor reduce_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor out = Tensor::empty(shape, g.dtype(), g.device());
  // sum_to wants out's rank ≤ g's rank; padded 1s align the rest.
  backend(g).sum_to(g, out);
  return out;
}

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }
Tensor empty_as(const Tensor& t, const Shape& shape) { return Tensor::empty(shape, t.dtype(), t.device()); }

Shape with_last_dim(const Shape& s, int64_t n) {
  Shape out;
  for (int i = 0; i < s.rank() - 1; ++i) out.push(s[i]);
  out.push(n);
  return out;
}

void gemm2d(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double alpha, double beta) {
  backend(a).gemm(mat(a).t(ta), mat(b).t(tb), mat(c), alpha, beta);
}

}  // namespace cg::ops::detail
