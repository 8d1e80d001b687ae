// ops/elementwise.cpp — broadcasting binary ops, scalar ops and unary functions.
#include "ops/detail.h"
#include "ops/ops.h"

namespace cg::ops {
namespace {

Tensor binary(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  detail::check_same(name, {&a, &b});
  detail::check_float(name, a);
  const Shape ys = detail::broadcast_shape(name, a.shape(), b.shape());
  Tensor y = detail::empty_as(a, ys);
  backend(a).binary(op, a, b, y);
  return y;
}

}  // namespace

// y = a + b
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary("add", BinaryOp::Add, a, b);
  record("add", y, {a, b}, [a, b](const Tensor& gy) {
    if (needs_grad(a)) accumulate(a, detail::reduce_to(gy, a.shape()));  // ga = Σ_broadcast gy
    if (needs_grad(b)) accumulate(b, detail::reduce_to(gy, b.shape()));
  });
  return y;
}

// y = a − b
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary("sub", BinaryOp::Sub, a, b);
  record("sub", y, {a, b}, [a, b](const Tensor& gy) {
    if (needs_grad(a)) accumulate(a, detail::reduce_to(gy, a.shape()));
    if (needs_grad(b)) {
      Tensor g = detail::reduce_to(gy, b.shape());
      Tensor ng = detail::empty_like(g);
      backend(g).unary(UnaryOp::Neg, g, ng, 0);  // gb = −Σ gy
      accumulate(b, ng);
    }
  });
  return y;
}

// y = a ⊙ b
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary("mul", BinaryOp::Mul, a, b);
  record("mul", y, {a, b}, [a, b](const Tensor& gy) {
    if (needs_grad(a)) {  // ga = Σ gy ⊙ b
      Tensor t = detail::empty_like(gy);
      backend(gy).binary(BinaryOp::Mul, gy, b, t);
      accumulate(a, detail::reduce_to(t, a.shape()));
    }
    if (needs_grad(b)) {  // gb = Σ gy ⊙ a
      Tensor t = detail::empty_like(gy);
      backend(gy).binary(BinaryOp::Mul, gy, a, t);
      accumulate(b, detail::reduce_to(t, b.shape()));
    }
  });
  return y;
}

// y = a / b
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary("div", BinaryOp::Div, a, b);
  record("div", y, {a, b, y}, [a, b, y](const Tensor& gy) {
    Backend& be = backend(gy);
    Tensor gyb = detail::empty_like(gy);  // gy / b
    be.binary(BinaryOp::Div, gy, b, gyb);
    if (needs_grad(b)) {  // gb = −Σ (gy/b) ⊙ y
      Tensor t = detail::empty_like(gy);
      be.binary(BinaryOp::Mul, gyb, y, t);
      Tensor r = detail::reduce_to(t, b.shape());
      Tensor nr = detail::empty_like(r);
      be.unary(UnaryOp::Neg, r, nr, 0);
      accumulate(b, nr);
    }
    if (needs_grad(a)) accumulate(a, detail::reduce_to(gyb, a.shape()));  // ga = Σ gy/b
  });
  return y;
}

// ---- unary: y = f(x), gx = f'(x) ⊙ gy -------------------------------------------------
static Tensor unary(const char* name, UnaryOp op, const Tensor& x, double s = 0) {
  detail::check_float(name, x);
  Tensor y = detail::empty_like(x);
  backend(x).unary(op, x, y, s);
  record(name, y, {x}, [x, op, s](const Tensor& gy) {
    Tensor gx = detail::empty_like(x);
    backend(x).unary_backward(op, x, gy, gx, s);
    accumulate(x, gx);
  });
  return y;
}

Tensor add_scalar(const Tensor& x, double s) { return unary("add_scalar", UnaryOp::AddScalar, x, s); }
Tensor mul_scalar(const Tensor& x, double s) { return unary("mul_scalar", UnaryOp::MulScalar, x, s); }
Tensor pow_scalar(const Tensor& x, double s) { return unary("pow_scalar", UnaryOp::PowScalar, x, s); }
Tensor neg(const Tensor& x) { return unary("neg", UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary("exp", UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary("log", UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", UnaryOp::Sqrt, x); }
Tensor silu(const Tensor& x) { return unary("silu", UnaryOp::Silu, x); }
Tensor gelu(const Tensor& x) { return unary("gelu", UnaryOp::Gelu, x); }
Tensor relu(const Tensor& x) { return unary("relu", UnaryOp::Relu, x); }

}  // namespace cg::ops
