// engine/cpu/cpu_math.h — scalar math the CPU kernels call inside vectorised loops.
// exp_f32 is a branch-free e^x (range reduction x = n·ln2 + r, a degree-6 polynomial
// for e^r, 2^n built in the exponent bits) that compilers vectorise; libm's expf does not
// vectorise without -ffast-math. Relative error ≤ 3e-7 on [−87, 88]; inputs below −87
// give 0 (or a denormal-free tiny value), above 88 give +inf-like large values.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace cg::cpu {

inline float exp_f32(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = std::nearbyint(x * 1.44269504088896341f);  // round(x / ln2)
  // r = x − n·ln2 in two steps (Cody–Waite) to keep precision.
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  // e^r on |r| ≤ ln2/2, Taylor coefficients (error < 2e-7 relative).
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <class T>
inline T fast_exp(T x) {
  return std::exp(x);
}
template <>
inline float fast_exp<float>(float x) {
  return exp_f32(x);
}

}  // namespace cg::cpu
