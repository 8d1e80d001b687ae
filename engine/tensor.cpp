// engine/tensor.cpp — Tensor storage, factories, conversions and autograd fields.
#include "engine/tensor.h"

#include "engine/backend.h"
#include "engine/pool.h"

namespace cg {

Storage::Storage(size_t n, Device d) : bytes(n), device(d) { data = backend_for(d).alloc(n == 0 ? 1 : n); }
Storage::~Storage() { backend_for(device).release(data, bytes == 0 ? 1 : bytes); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  // Handles and their control blocks come from the pools (engine/pool.h), the bytes from
  // the backend's block cache: after warm-up, making a tensor does not touch the heap.
  auto impl = make_pooled<TensorImpl>();
  impl->storage = make_pooled<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend_for(device).fill(t, value);
  return t;
}

Tensor Tensor::from(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw ShapeError("Tensor::from: " + std::to_string(values.size()) + " values for shape " + shape.str());
  Tensor host = empty(shape, dtype, Device::CPU);
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::F32: host.data<float>()[i] = static_cast<float>(values[i]); break;
      case DType::F64: host.data<double>()[i] = values[i]; break;
      case DType::I32: host.data<int32_t>()[i] = static_cast<int32_t>(values[i]); break;
      case DType::BF16: host.data<uint16_t>()[i] = bf16_bits(static_cast<float>(values[i])); break;
    }
  }
  return device == Device::CPU ? host : host.to(device);
}

Tensor Tensor::from_f32(const float* values, const Shape& shape, Device device) {
  Tensor t = empty(shape, DType::F32, device);
  backend_for(device).from_host(t.raw(), values, t.nbytes());
  return t;
}

Tensor Tensor::from_i32(const std::vector<int32_t>& values, const Shape& shape, Device device) {
  if (static_cast<int64_t>(values.size()) != shape.numel())
    throw ShapeError("Tensor::from_i32: " + std::to_string(values.size()) + " values for shape " + shape.str());
  Tensor t = empty(shape, DType::I32, device);
  backend_for(device).from_host(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<Storage> storage, int64_t offset, const Shape& shape, DType dtype) {
  if (static_cast<size_t>(offset + shape.numel()) * dtype_size(dtype) > storage->bytes)
    throw ShapeError("Tensor::view_of: view " + shape.str() + " at offset " + std::to_string(offset) +
                     " runs past its storage");
  auto impl = make_pooled<TensorImpl>();
  impl->storage = std::move(storage);
  impl->offset = offset;
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

const Shape& Tensor::shape() const {
  need();
  return impl_->shape;
}
DType Tensor::dtype() const {
  need();
  return impl_->dtype;
}
Device Tensor::device() const {
  need();
  return impl_->storage->device;
}
const std::string& Tensor::name() const {
  need();
  return impl_->name;
}
Tensor& Tensor::set_name(const std::string& n) {
  need();
  impl_->name = n;
  return *this;
}
const std::shared_ptr<Storage>& Tensor::storage() const {
  need();
  return impl_->storage;
}
int64_t Tensor::offset() const {
  need();
  return impl_->offset;
}

std::string Tensor::desc() const {
  if (!impl_) return "undefined";
  return std::string(dtype_name(dtype())) + shape().str() + "@" + device_name(device());
}

void* Tensor::raw() const {
  need();
  return static_cast<char*>(impl_->storage->data) + impl_->offset * static_cast<int64_t>(dtype_size(impl_->dtype));
}

std::vector<double> Tensor::to_f64_vector() const {
  Tensor h = to(Device::CPU);
  std::vector<double> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (dtype()) {
      case DType::F32: out[i] = h.data<float>()[i]; break;
      case DType::F64: out[i] = h.data<double>()[i]; break;
      case DType::I32: out[i] = h.data<int32_t>()[i]; break;
      case DType::BF16: out[i] = bf16_value(h.data<uint16_t>()[i]); break;
    }
  }
  return out;
}

std::vector<float> Tensor::to_f32_vector() const {
  Tensor h = to(DType::F32).to(Device::CPU);
  return std::vector<float>(h.data<float>(), h.data<float>() + numel());
}

std::vector<int32_t> Tensor::to_i32_vector() const {
  if (dtype() != DType::I32) throw DTypeError("to_i32_vector on " + desc());
  Tensor h = to(Device::CPU);
  return std::vector<int32_t>(h.data<int32_t>(), h.data<int32_t>() + numel());
}

double Tensor::item() const {
  if (numel() != 1) throw ShapeError("item() on " + desc() + ": needs exactly one element");
  const Tensor h = to(Device::CPU);  // no std::vector: a loss read every step stays off the heap
  switch (dtype()) {
    case DType::F32: return h.data<float>()[0];
    case DType::F64: return h.data<double>()[0];
    case DType::I32: return h.data<int32_t>()[0];
    case DType::BF16: return bf16_value(h.data<uint16_t>()[0]);
  }
  return 0;
}

// Between f32 and f64 (exact widening, rounding narrowing), f32 → bf16 (round to nearest
// even) and bf16 → f32 (exact); bf16 ↔ f64 goes through f32. No conversion touches i32.
Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  if (dt == DType::I32 || dtype() == DType::I32)
    throw DTypeError("Tensor::to: no conversion between " + desc() + " and " + dtype_name(dt));
  if ((dt == DType::BF16 && dtype() == DType::F64) || (dt == DType::F64 && dtype() == DType::BF16))
    return to(DType::F32).to(dt);
  Tensor host = to(Device::CPU);
  Tensor out = empty(shape(), dt, Device::CPU);
  const int64_t n = numel();
  if (dt == DType::F64)
    for (int64_t i = 0; i < n; ++i) out.data<double>()[i] = host.data<float>()[i];
  else if (dt == DType::BF16)
    for (int64_t i = 0; i < n; ++i) out.data<uint16_t>()[i] = bf16_bits(host.data<float>()[i]);
  else if (dtype() == DType::BF16)
    for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = bf16_value(host.data<uint16_t>()[i]);
  else
    for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = static_cast<float>(host.data<double>()[i]);
  return device() == Device::CPU ? out : out.to(device());
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = empty(shape(), dtype(), d);
  if (d == Device::CPU) backend_for(device()).to_host(out.raw(), raw(), nbytes());
  else backend_for(d).from_host(out.raw(), raw(), nbytes());
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  backend(*this).copy(out.raw(), raw(), nbytes());
  return out;
}

Tensor Tensor::view(const Shape& s) const {
  if (s.numel() != numel())
    throw ShapeError("view: cannot view " + desc() + " as " + s.str() + " (element counts differ)");
  Tensor v = view_of(storage(), offset(), s, dtype());
  v.impl_->name = impl_->name;
  return v;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape() != shape() || src.dtype() != dtype())
    throw ShapeError("copy_from: " + src.desc() + " into " + desc());
  if (src.device() == device()) backend(*this).copy(raw(), src.raw(), nbytes());
  else if (device() == Device::CPU) backend(src).to_host(raw(), src.raw(), nbytes());
  else backend(*this).from_host(raw(), src.raw(), nbytes());
}

bool Tensor::requires_grad() const {
  need();
  return impl_->requires_grad;
}
Tensor& Tensor::set_requires_grad(bool on) {
  need();
  if (on && dtype() == DType::BF16)
    throw DTypeError("set_requires_grad on " + desc() +
                     ": bf16 is a storage type for frozen weights, not differentiable");
  if (on && !is_float(dtype())) throw DTypeError("set_requires_grad on " + desc() + ": only float tensors");
  impl_->requires_grad = on;
  return *this;
}
bool Tensor::is_leaf() const {
  need();
  return impl_->is_leaf;
}
Tensor Tensor::grad() const {
  need();
  return impl_->grad;
}
void Tensor::set_grad(const Tensor& g) {
  need();
  if (g.defined() && (g.shape() != shape() || g.dtype() != dtype() || g.device() != device()))
    throw ShapeError("set_grad: gradient " + g.desc() + " for tensor " + desc());
  impl_->grad = g;
}
void Tensor::zero_grad() {
  need();
  if (impl_->grad.defined()) backend(impl_->grad).fill(impl_->grad, 0.0);
}
void Tensor::retain_grad() {
  need();
  impl_->retain_grad = true;
}

}  // namespace cg
