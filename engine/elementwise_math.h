// engine/elementwise_math.h — the formulas of the elementwise ops, written once for both
// backends. Each backend passes its math functions as a policy M with static exp,
// fast_exp, log, sqrt, tanh and pow. The CPU uses <cmath>, with its vectorisable exp_f32
// as fast_exp. CUDA uses the device functions of engine/cuda/cuda_backend.h. The kernels
// call apply_binary, apply_unary<M> and unary_deriv<M> once per element.
#pragma once
#include <array>
#include <cstdint>

#include "engine/backend.h"

namespace cg {

template <class T>
CG_HD inline T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
  }
  return 0;
}

inline constexpr double kGeluK = 0.7978845608028654;  // √(2/π)

// f(x) for the unary op (s: the scalar of AddScalar, MulScalar, PowScalar).
template <class M, class T>
CG_HD inline T apply_unary(UnaryOp op, T x, T s) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return M::exp(x);
    case UnaryOp::Log: return M::log(x);
    case UnaryOp::Sqrt: return M::sqrt(x);
    case UnaryOp::Silu: return x / (T(1) + M::fast_exp(-x));
    case UnaryOp::Gelu: return T(0.5) * x * (T(1) + M::tanh(T(kGeluK) * (x + T(0.044715) * x * x * x)));
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::AddScalar: return x + s;
    case UnaryOp::MulScalar: return x * s;
    case UnaryOp::PowScalar: return M::pow(x, s);
  }
  return 0;
}

// d f(x) / dx
template <class M, class T>
CG_HD inline T unary_deriv(UnaryOp op, T x, T s) {
  switch (op) {
    case UnaryOp::Neg: return T(-1);
    case UnaryOp::Exp: return M::exp(x);
    case UnaryOp::Log: return T(1) / x;
    case UnaryOp::Sqrt: return T(0.5) / M::sqrt(x);
    case UnaryOp::Silu: {
      const T sg = T(1) / (T(1) + M::fast_exp(-x));
      return sg * (T(1) + x * (T(1) - sg));
    }
    case UnaryOp::Gelu: {
      const T u = T(kGeluK) * (x + T(0.044715) * x * x * x);
      const T t = M::tanh(u);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kGeluK) * (T(1) + T(3 * 0.044715) * x * x);
    }
    case UnaryOp::Relu: return x > T(0) ? T(1) : T(0);
    case UnaryOp::AddScalar: return T(1);
    case UnaryOp::MulScalar: return s;
    case UnaryOp::PowScalar: return s * M::pow(x, s - T(1));
  }
  return 0;
}

// Element strides of shape `s` viewed in the 4-d broadcast frame `out` (right-aligned;
// 0 along the dims where s has size 1 and out does not).
inline std::array<int64_t, 4> broadcast_strides(const Shape& s, const std::array<int64_t, 4>& out) {
  const auto p = s.padded();
  std::array<int64_t, 4> st{};
  int64_t acc = 1;
  for (int d = 3; d >= 0; --d) {
    st[d] = (p[d] == 1 && out[d] != 1) ? 0 : acc;
    acc *= p[d];
  }
  return st;
}

}  // namespace cg
