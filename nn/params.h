// nn/params.h — ParamStore: a group of named parameters living in one flat buffer, with
// their gradients in a parallel flat buffer (llm.c's malloc_and_point_parameters).
// zero_grad is one fill, an optimizer step is one kernel over the buffer, the grad norm is
// one reduction, and a checkpoint is a walk over the names. A model keeps its base weights
// in one store and its adapters in another, so "only adapters train" is a store, not a flag.
//
// Use: add() every parameter with its initial value, then finalize(). finalize() moves the
// values into the flat buffer and re-points every Tensor handle given out by add() (they
// share one TensorImpl), so handles taken before finalize() stay valid.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace cg::nn {

class ParamStore {
 public:
  explicit ParamStore(std::string group = "params") : group_(std::move(group)) {}
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // Registers a parameter with its initial value (any device; moved to the store's
  // device at finalize). Names are unique within the store.
  Tensor add(const std::string& name, const Tensor& init);
  // Packs all parameters into one flat buffer on `device` (dtype of the first parameter;
  // all must agree). Called once.
  void finalize(Device device = Device::CPU);
  bool finalized() const { return flat_.defined(); }
  // Re-stores the finalized, frozen parameters that `which` picks in bf16 (a fine-tune's
  // base, engine/dtype.h): they move, rounded to nearest even, into a second flat buffer
  // flat_bf16(), the others are repacked into a smaller flat(); every handle follows.
  // The store can no longer be made trainable (bf16 tensors are not differentiable).
  void store_bf16(const std::function<bool(const std::string& name, const Tensor& value)>& which);

  // Trainable: parameters require grad and the flat gradient buffer exists (zeroed).
  // Frozen: no gradient buffer at all.
  void set_trainable(bool on);
  bool trainable() const { return trainable_; }
  void zero_grad();
  double grad_norm() const;        // ‖flat grad‖₂, one fixed-order reduction
  void scale_grad(double factor);  // flat grad *= factor

  const std::string& group() const { return group_; }
  const std::vector<std::pair<std::string, Tensor>>& params() const { return params_; }
  Tensor get(const std::string& name) const;  // throws if absent
  bool has(const std::string& name) const;
  int64_t numel() const { return numel_; }
  Tensor& flat() { return flat_; }            // the parameters not stored in bf16
  Tensor& flat_bf16() { return flat_bf16_; }  // those stored in bf16 (undefined: none)
  Tensor& flat_grad() { return flat_grad_; }
  Device device() const { return flat_.defined() ? flat_.device() : Device::CPU; }

 private:
  std::string group_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<int64_t> offsets_;
  int64_t numel_ = 0;
  bool trainable_ = false;
  Tensor flat_, flat_grad_, flat_bf16_;
};

}  // namespace cg::nn
