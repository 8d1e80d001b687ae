// ops/embedding.cpp — RoPE and token-embedding lookup: the position and token inputs of
// a transformer.
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {

// y[B,T,H,D] = rotate(x, angle(pos_offset + t))
Tensor rope(const Tensor& x, int64_t pos_offset, double theta) {
  detail::check_float("rope", x);
  detail::check_rank("rope", x, 4, 4, "input [B,T,H,D]");
  if (x.dim(3) % 2 != 0) throw ShapeError("rope: head dim must be even, got " + x.desc());
  Tensor y = detail::empty_like(x);
  backend(x).rope(x, y, pos_offset, theta, false);
  record("rope", y, {x}, [x, pos_offset, theta](const Tensor& gy) {  // gx = rotate(gy, −angle)
    Tensor gx = detail::empty_like(x);
    backend(x).rope(gy, gx, pos_offset, theta, true);
    accumulate(x, gx);
  });
  return y;
}

// out[..., D] = table[V, D][ids[...]]
Tensor embedding(const Tensor& table, const Tensor& ids) {
  detail::check_float("embedding", table);
  detail::check_rank("embedding", table, 2, 2, "table");
  if (ids.dtype() != DType::I32) throw DTypeError("embedding: ids must be i32, got " + ids.desc());
  if (ids.device() != table.device())
    throw DeviceError("embedding: table " + table.desc() + " and ids " + ids.desc() + " on different devices");
  if (ids.rank() > 3) throw ShapeError("embedding: ids must have rank ≤ 3, got " + ids.desc());
  const Tensor ih = ids.to(Device::CPU);  // read in place on the CPU: no host vector
  const int32_t* iv = ih.data<int32_t>();
  for (int64_t i = 0; i < ih.numel(); ++i)
    if (iv[i] < 0 || iv[i] >= table.dim(0))
      throw ShapeError("embedding: id " + std::to_string(iv[i]) + " out of range for table " + table.desc());
  Shape os = ids.shape();
  os.push(table.dim(1));
  Tensor out = detail::empty_as(table, os);
  backend(table).embedding(table, ids, out);
  record("embedding", out, {table, ids}, [table, ids](const Tensor& gy) {  // gtable[ids[n]] += gy[n]
    Tensor g = Tensor::zeros(table.shape(), table.dtype(), table.device());
    backend(table).embedding_backward(ids, gy, g);
    accumulate(table, g);
  });
  return out;
}

}  // namespace cg::ops
