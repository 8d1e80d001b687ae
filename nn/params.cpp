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

void ParamStore::store_bf16(const std::function<bool(const std::string&, const Tensor&)>& which) {
  if (!finalized()) throw Error("ParamStore " + group_ + ": store_bf16 before finalize");
  if (trainable_)
    throw Error("ParamStore " + group_ + ": store_bf16 on a trainable store (bf16 is for frozen weights)");
  if (flat_bf16_.defined()) throw Error("ParamStore " + group_ + ": store_bf16 called twice");
  if (flat_.dtype() != DType::F32)
    throw DTypeError("ParamStore " + group_ + ": store_bf16 needs f32 parameters, the store holds " +
                     dtype_name(flat_.dtype()));
  std::vector<bool> pick(params_.size());
  int64_t n16 = 0, n32 = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    pick[i] = which(params_[i].first, params_[i].second);
    (pick[i] ? n16 : n32) += params_[i].second.numel();
  }
  Tensor f32 = Tensor::empty({n32}, DType::F32, flat_.device());
  Tensor b16 = Tensor::empty({n16}, DType::BF16, flat_.device());
  int64_t o16 = 0, o32 = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    int64_t& o = pick[i] ? o16 : o32;
    const Tensor& dst = pick[i] ? b16 : f32;
    const DType dt = pick[i] ? DType::BF16 : DType::F32;
    Tensor view = Tensor::view_of(dst.storage(), o, p.shape(), dt);
    view.copy_from(p.to(dt));
    p.impl()->storage = dst.storage();  // every handle follows
    p.impl()->offset = o;
    p.impl()->dtype = dt;
    offsets_[i] = o;
    o += p.numel();
  }
  flat_ = f32;
  flat_bf16_ = b16;
}

void ParamStore::set_trainable(bool on) {
  if (on && flat_bf16_.defined())
    throw DTypeError("ParamStore " + group_ + ": cannot train a store with bf16-stored parameters (frozen only)");
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
