// ops/reduce.cpp — sum and mean over one axis or over everything.
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

// y = scale · Σ_axis x   (axis < 0: all elements, y shape [1])
Tensor reduce(const char* name, const Tensor& x, int axis, bool all, bool keepdim, double scale) {
  detail::check_float(name, x);
  Shape kept;  // x's shape with the reduced dims set to 1 (same rank)
  Shape out;   // the returned shape
  if (all) {
    for (int i = 0; i < x.rank(); ++i) kept.push(1);
    out = Shape{1};
  } else {
    const int ax = x.shape().norm_axis(axis);
    for (int i = 0; i < x.rank(); ++i) {
      kept.push(i == ax ? 1 : x.dim(i));
      if (i != ax || keepdim) out.push(i == ax ? 1 : x.dim(i));
    }
  }
  Tensor y = detail::empty_as(x, kept);
  backend(x).sum_to(x, y);
  if (scale != 1.0) backend(x).unary(UnaryOp::MulScalar, y, y, scale);
  y = y.view(out);
  record(name, y, {x}, [x, kept, scale](const Tensor& gy) {  // gx = scale · broadcast(gy)
    Tensor g = gy.view(kept);
    Tensor gx = detail::empty_like(x);
    backend(x).fill(gx, 0.0);
    backend(x).binary(BinaryOp::Add, gx, g, gx);
    if (scale != 1.0) backend(x).unary(UnaryOp::MulScalar, gx, gx, scale);
    accumulate(x, gx);
  });
  return y;
}

}  // namespace

Tensor sum(const Tensor& x, int axis, bool keepdim) { return reduce("sum", x, axis, false, keepdim, 1.0); }
Tensor mean(const Tensor& x, int axis, bool keepdim) {
  const int ax = x.shape().norm_axis(axis);
  return reduce("mean", x, axis, false, keepdim, 1.0 / static_cast<double>(x.dim(ax)));
}
Tensor sum_all(const Tensor& x) { return reduce("sum_all", x, 0, true, false, 1.0); }
Tensor mean_all(const Tensor& x) { return reduce("mean_all", x, 0, true, false, 1.0 / static_cast<double>(x.numel())); }

}  // namespace cg::ops
