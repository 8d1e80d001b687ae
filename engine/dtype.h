// engine/dtype.h — element types and devices. Float32 is the working type, float64 exists
// for gradient checking (CPU), int32 holds token ids and targets (never differentiable).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cg {

enum class DType : uint8_t { F32, F64, I32 };
enum class Device : uint8_t { CPU, CUDA };

inline size_t dtype_size(DType t) { return t == DType::F64 ? 8 : 4; }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
  }
  return "?";
}
inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
inline bool is_float(DType t) { return t == DType::F32 || t == DType::F64; }

}  // namespace cg
