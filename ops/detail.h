// ops/detail.h — checks and small helpers shared by the op files (not a public header).
#pragma once
#include <string>

#include "engine/backend.h"
#include "engine/tape.h"

namespace cg::ops::detail {

// Throws unless every defined tensor shares the first one's device and dtype.
void check_same(const char* op, std::initializer_list<const Tensor*> ts);
void check_float(const char* op, const Tensor& t);
// x and a weight w: same device, and w of x's float dtype, or w stored in bf16 (a frozen
// weight, engine/dtype.h) with x f32. Throws a DTypeError/DeviceError naming op otherwise.
void check_weight(const char* op, const Tensor& x, const Tensor& w);
void check_rank(const char* op, const Tensor& t, int lo, int hi, const char* what);
// The numpy broadcast shape of a and b, or a ShapeError naming op.
Shape broadcast_shape(const char* op, const Shape& a, const Shape& b);
// Sum g down to `shape` (the backward of broadcasting); g itself when shapes match.
Tensor reduce_to(const Tensor& g, const Shape& shape);
Tensor empty_like(const Tensor& t);
Tensor empty_as(const Tensor& t, const Shape& shape);
// `s` with its last dim replaced by n ([..., k] → [..., n]).
Shape with_last_dim(const Shape& s, int64_t n);

// y = alpha · a·b on whole matrices given as [M,K]-like row-major tensors (2-d views).
// Convenience over Backend::gemm for the unbatched case; c += when beta = 1.
void gemm2d(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, double alpha = 1.0, double beta = 0.0);

}  // namespace cg::ops::detail
