// ops/embedding.cpp — RoPE and token-embedding lookup: the position and token inputs of
// a transformer.
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {

// y[B,T,H,D] = rotate(x, angle(pos_offset + t)), or angle(positions[b,t])
Tensor rope(const Tensor& x, int64_t pos_offset, double theta, const Tensor& positions) {
  detail::check_float("rope", x);
  detail::check_rank("rope", x, 4, 4, "input [B,T,H,D]");
  if (x.dim(3) % 2 != 0) throw ShapeError("rope: head dim must be even, got " + x.desc());
  const Tensor* pos = positions.defined() ? &positions : nullptr;
  if (pos) {
    if (pos->dtype() != DType::I32 || pos->shape() != Shape{x.dim(0), x.dim(1)})
      throw ShapeError("rope: positions must be i32 [B,T] for x " + x.desc() + ", got " + pos->desc());
    if (pos->device() != x.device())
      throw DeviceError("rope: x " + x.desc() + " and positions " + pos->desc() + " on different devices");
    const Tensor host = pos->to(Device::CPU);
    const int32_t* p = host.data<int32_t>();
    for (int64_t i = 0; i < host.numel(); ++i)
      if (p[i] < 0) throw ShapeError("rope: negative position " + std::to_string(p[i]));
  }
  Tensor y = detail::empty_like(x);
  backend(x).rope(x, y, pos_offset, theta, false, pos);
  record("rope", y, {x}, [x, pos_offset, theta, positions](const Tensor& gy) {  // gx = rotate(gy, −angle)
    Tensor gx = detail::empty_like(x);
    backend(x).rope(gy, gx, pos_offset, theta, true, positions.defined() ? &positions : nullptr);
    accumulate(x, gx);
  });
  return y;
}

// out[..., D] = table[V, D][ids[...]]
Tensor embedding(const Tensor& table, const Tensor& ids) {
  // A bf16-stored table (a frozen base's, engine/dtype.h) gives f32 rows: its values, exactly.
  if (table.dtype() != DType::BF16) detail::check_float("embedding", table);
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
  Tensor out = Tensor::empty(os, table.dtype() == DType::BF16 ? DType::F32 : table.dtype(), table.device());
  backend(table).embedding(table, ids, out);
  record("embedding", out, {table, ids}, [table, ids](const Tensor& gy) {  // gtable[ids[n]] += gy[n]
    Tensor g = Tensor::zeros(table.shape(), table.dtype(), table.device());
    backend(table).embedding_backward(ids, gy, g);
    accumulate(table, g);
  });
  return out;
}

}  // namespace cg::ops
