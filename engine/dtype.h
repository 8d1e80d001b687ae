// engine/dtype.h — element types and devices. Float32 is the working type, float64 exists
// for gradient checking (CPU), int32 holds token ids and targets (never differentiable).
// BF16 is a storage type only: frozen weights kept once in bfloat16 (a fine-tune's base
// under --base-dtype bf16). It converts to and from f32 (Tensor::to), is a GEMM operand of
// a bf16-precision product (engine/gemm.h) and an embedding table; every other op refuses
// it with a DTypeError, and it is never differentiable (is_float is false for it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace cg {

enum class DType : uint8_t { F32, F64, I32, BF16 };
enum class Device : uint8_t { CPU, CUDA };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::F32:
    case DType::I32: return 4;
  }
  return 4;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::BF16: return "bf16";
  }
  return "?";
}
inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
// The differentiable working types (bf16 storage is not one of them).
inline bool is_float(DType t) { return t == DType::F32 || t == DType::F64; }

// The bf16 nearest to x (ties to even), as its 16 bits; NaN stays a (quiet) NaN, values
// beyond the largest bf16 round to ±inf, subnormals are kept.
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// The value of bf16 bits as a float (exact).
inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
// x rounded to bf16, as a float (exactly representable).
inline float bf16_round(float x) { return bf16_value(bf16_bits(x)); }

}  // namespace cg
