// ops/shape_ops.cpp — reshape (a view), transpose, slice and concat (copies through the
// backend's strided box copy; transpose is a view when no element moves), and dropout.
#include <algorithm>
#include <numeric>

#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

// Row-major strides of a shape padded to 4 dims.
std::array<int64_t, 4> strides4(const Shape& s) {
  const auto p = s.padded();
  std::array<int64_t, 4> st{};
  int64_t acc = 1;
  for (int d = 3; d >= 0; --d) {
    st[d] = acc;
    acc *= p[d];
  }
  return st;
}
int pad(const Shape& s, int axis) { return kMaxRank - s.rank() + axis; }  // axis in the 4-d frame
void* at(const Tensor& t, int64_t elems) {
  return static_cast<char*>(t.raw()) + elems * static_cast<int64_t>(dtype_size(t.dtype()));
}

}  // namespace

// y = x viewed as `shape` (shares storage)
Tensor reshape(const Tensor& x, const Shape& shape) {
  if (shape.numel() != x.numel())
    throw ShapeError("reshape: cannot reshape " + x.desc() + " to " + shape.str() + " (element counts differ)");
  Tensor y = x.view(shape);
  record("reshape", y, {x}, [x](const Tensor& gy) { accumulate(x, gy.view(x.shape())); });
  return y;
}

// y = x with dims d0 and d1 swapped
Tensor transpose(const Tensor& x, int d0, int d1) {
  const int a = x.shape().norm_axis(d0), b = x.shape().norm_axis(d1);
  Shape ys = x.shape();
  std::swap(ys[a], ys[b]);
  // When at most one dim from a to b is longer than 1, no element moves: a view will do
  // (one query row of attention while decoding, [1,1,H,D] → [1,H,1,D]).
  int longer = 0;
  for (int d = std::min(a, b); d <= std::max(a, b); ++d) longer += x.dim(d) > 1;
  if (longer <= 1) return reshape(x, ys);
  Tensor y = Tensor::empty(ys, x.dtype(), x.device());
  // Walk y's index space; read x with its strides permuted the same way.
  auto xs = strides4(x.shape());
  const int pa = pad(x.shape(), a), pb = pad(x.shape(), b);
  std::swap(xs[pa], xs[pb]);
  const auto yst = strides4(ys);
  const auto yp = ys.padded();
  backend(x).copy_box(x.dtype(), x.raw(), xs.data(), y.raw(), yst.data(), yp.data(), false);
  record("transpose", y, {x}, [x, a, b](const Tensor& gy) { accumulate(x, transpose(gy, a, b)); });
  return y;
}

// y = x[..., start:start+length, ...] along axis
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t length) {
  const int ax = x.shape().norm_axis(axis);
  if (start < 0 || length < 0 || start + length > x.dim(ax))
    throw ShapeError("slice: [" + std::to_string(start) + ", " + std::to_string(start + length) +
                     ") out of range for axis " + std::to_string(axis) + " of " + x.desc());
  Shape ys = x.shape();
  ys[ax] = length;
  Tensor y = Tensor::empty(ys, x.dtype(), x.device());
  const auto xs = strides4(x.shape()), yst = strides4(ys);
  const auto yp = ys.padded();
  const int64_t off = start * xs[pad(x.shape(), ax)];
  backend(x).copy_box(x.dtype(), at(x, off), xs.data(), y.raw(), yst.data(), yp.data(), false);
  record("slice", y, {x}, [x, xs, yst, yp, off](const Tensor& gy) {  // gx[slice] += gy
    Tensor gx = Tensor::zeros(x.shape(), x.dtype(), x.device());
    backend(x).copy_box(x.dtype(), gy.raw(), yst.data(), at(gx, off), xs.data(), yp.data(), true);
    accumulate(x, gx);
  });
  return y;
}

// y = the xs joined along axis
Tensor concat(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw ShapeError("concat: no tensors");
  const Tensor& x0 = xs[0];
  const int ax = x0.shape().norm_axis(axis);
  Shape ys = x0.shape();
  int64_t total = 0;
  for (const Tensor& x : xs) {
    detail::check_same("concat", {&x0, &x});
    bool ok = x.rank() == x0.rank();
    for (int d = 0; ok && d < x.rank(); ++d) ok = d == ax || x.dim(d) == x0.dim(d);
    if (!ok)
      throw ShapeError("concat: " + x.desc() + " does not fit " + x0.desc() + " along axis " + std::to_string(axis));
    total += x.dim(ax);
  }
  ys[ax] = total;
  Tensor y = Tensor::empty(ys, x0.dtype(), x0.device());
  const auto yst = strides4(ys);
  const int pax = pad(ys, ax);
  int64_t pos = 0;
  for (const Tensor& x : xs) {
    const auto xst = strides4(x.shape());
    const auto xp = x.shape().padded();
    backend(x).copy_box(x.dtype(), x.raw(), xst.data(), at(y, pos * yst[pax]), yst.data(), xp.data(), false);
    pos += x.dim(ax);
  }
  record("concat", y, xs, [xs, ax](const Tensor& gy) {  // gx_i = gy[offset_i : offset_i + n_i]
    int64_t p = 0;
    for (const Tensor& x : xs) {
      if (needs_grad(x)) {
        NoGrad ng;
        accumulate(x, slice(gy, ax, p, x.dim(ax)));
      }
      p += x.dim(ax);
    }
  });
  return y;
}

// y = x ⊙ keep / (1 − p)
Tensor dropout(const Tensor& x, double p, uint64_t seed, bool training) {
  if (p < 0 || p >= 1) throw ShapeError("dropout: p must be in [0, 1), got " + std::to_string(p));
  if (!training || p == 0) return x;
  detail::check_float("dropout", x);
  Tensor y = detail::empty_like(x);
  backend(x).dropout(x, y, p, seed);
  record("dropout", y, {x}, [x, p, seed](const Tensor& gy) {  // gx = gy ⊙ keep / (1 − p)
    Tensor gx = detail::empty_like(x);
    backend(x).dropout(gy, gx, p, seed);
    accumulate(x, gx);
  });
  return y;
}

}  // namespace cg::ops
