// engine/tensor.h — Tensor: a shared handle to contiguous row-major storage on one device,
// plus the autograd fields the tape needs (requires_grad, grad, leaf flag).
// Views (reshape) share storage; every other transformation is an op in ops/.
#pragma once
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/shape.h"

namespace cg {

// A block of device memory; freed through its device's backend when the last view goes.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU) {
    return full(shape, 1.0, dtype, device);
  }
  // From host values (converted to dtype); values.size() must equal shape.numel().
  static Tensor from(const std::vector<double>& values, const Shape& shape, DType dtype = DType::F32,
                     Device device = Device::CPU);
  static Tensor from_f32(const float* values, const Shape& shape, Device device = Device::CPU);
  static Tensor from_i32(const std::vector<int32_t>& values, const Shape& shape, Device device = Device::CPU);
  // A view of `storage` (no copy) at element `offset`.
  static Tensor view_of(std::shared_ptr<Storage> storage, int64_t offset, const Shape& shape, DType dtype);

  // ---- properties --------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int rank() const { return shape().rank(); }
  int64_t dim(int i) const { return shape()[i]; }
  int64_t numel() const { return shape().numel(); }
  DType dtype() const;
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string desc() const;  // "f32[2,3]@cpu", for error messages
  const std::string& name() const;
  Tensor& set_name(const std::string& n);

  // Device pointer to the first element (storage base + offset).
  void* raw() const;
  template <class T>
  T* data() const {  // host pointer; throws unless on the CPU
    if (device() != Device::CPU) throw DeviceError("Tensor::data on " + desc() + ": not a CPU tensor");
    return static_cast<T*>(raw());
  }
  const std::shared_ptr<Storage>& storage() const;
  int64_t offset() const;

  // ---- conversions (copies) ----------------------------------------------------------
  std::vector<double> to_f64_vector() const;
  std::vector<float> to_f32_vector() const;
  std::vector<int32_t> to_i32_vector() const;
  double item() const;  // the single element of a numel()==1 tensor
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor clone() const;
  // Same storage, new shape (numel must match). No autograd: use ops::reshape for that.
  Tensor view(const Shape& shape) const;
  // Copy `src` (same shape and dtype, any device) into this tensor's memory.
  void copy_from(const Tensor& src);

  // ---- autograd ----------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const;
  Tensor grad() const;             // undefined until a backward reaches this tensor
  void set_grad(const Tensor& g);  // e.g. a view into a flat gradient buffer
  void zero_grad();                // zero the grad's memory if it has one
  void retain_grad();              // keep the grad of a non-leaf after backward

  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  void need() const {
    if (!impl_) throw Error("use of an undefined Tensor");
  }
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // elements
  Shape shape;
  DType dtype = DType::F32;
  bool requires_grad = false;
  bool is_leaf = true;
  bool retain_grad = false;
  Tensor grad;
  std::string name;
};

}  // namespace cg
