// nn/params.cpp — packing parameters into one flat buffer and its gradient twin.
#include "nn/params.h"

#include <cmath>

#include "engine/backend.h"

namespace cg::nn {

Tensor ParamStore::add(const std::string& name, const Tensor& init) {
  if (finalized()) throw Error("ParamStore " + group_ + ": add('" + name + "') after finalize");
  if (has(name)) throw Error("ParamStore " + group_ + ": duplicate parameter '" + name + "'");
  if (!is_float(init.dtype()))
    throw DTypeError("ParamStore " + group_ + ": parameter '" + name + "' is " + init.desc());
  if (!params_.empty() && params_[0].second.dtype() != init.dtype())
    throw DTypeError("ParamStore " + group_ + ": '" + name + "' is " + init.desc() + ", the store holds " +
                     dtype_name(params_[0].second.dtype()));
  Tensor p = init.clone();
  p.set_name(name);
  offsets_.push_back(numel_);
  numel_ += p.numel();
  params_.emplace_back(name, p);
  return p;
}

void ParamStore::finalize(Device device) {
  if (finalized()) throw Error("ParamStore " + group_ + ": finalize called twice");
  const DType dt = params_.empty() ? DType::F32 : params_[0].second.dtype();
  flat_ = Tensor::empty({numel_}, dt, device);
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    Tensor view = Tensor::view_of(flat_.storage(), offsets_[i], p.shape(), dt);
    view.copy_from(p);
    // Re-point the shared impl at the flat buffer: every handle follows.
    p.impl()->storage = flat_.storage();
    p.impl()->offset = offsets_[i];
  }
  if (trainable_) set_trainable(true);
}

void ParamStore::set_trainable(bool on) {
  trainable_ = on;
  if (!finalized()) return;
  if (on) {
    if (!flat_grad_.defined()) flat_grad_ = Tensor::zeros({numel_}, flat_.dtype(), flat_.device());
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor& p = params_[i].second;
      p.set_requires_grad(true);
      p.set_grad(Tensor::view_of(flat_grad_.storage(), offsets_[i], p.shape(), p.dtype()));
    }
  } else {
    for (auto& [name, p] : params_) {
      p.set_requires_grad(false);
      p.set_grad(Tensor());
    }
    flat_grad_ = Tensor();
  }
}

void ParamStore::zero_grad() {
  if (flat_grad_.defined()) backend(flat_grad_).fill(flat_grad_, 0.0);
}

double ParamStore::grad_norm() const {
  if (!flat_grad_.defined()) return 0.0;
  return std::sqrt(backend(flat_grad_).sum_squares(flat_grad_));
}

void ParamStore::scale_grad(double factor) {
  if (flat_grad_.defined()) backend(flat_grad_).unary(UnaryOp::MulScalar, flat_grad_, flat_grad_, factor);
}

Tensor ParamStore::get(const std::string& name) const {
  for (const auto& [n, p] : params_)
    if (n == name) return p;
  throw Error("ParamStore " + group_ + ": no parameter '" + name + "'");
}

bool ParamStore::has(const std::string& name) const {
  for (const auto& [n, p] : params_)
    if (n == name) return true;
  return false;
}

}  // namespace cg::nn
