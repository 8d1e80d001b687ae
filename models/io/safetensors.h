// models/io/safetensors.h — reading and writing the safetensors format: an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then raw little-endian tensor bytes.
// Reads F32, F16 and BF16 (both converted to F32), F64 and I32; writes F32/F64/I32 as
// they are. Every offset and size is validated before anything is allocated, so a
// corrupt or hostile file gives a FormatError, never a huge allocation or a crash.
// Naming conventions (HF Llama, PEFT) live in the readers above this file, not here.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace cg::models {

struct SafeTensors {
  std::vector<std::string> names;  // in the order their bytes appear in the file
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Largest JSON header accepted (the format's own reference implementation uses 100 MB).
constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

// Parses a whole file held in memory; `what` names it in error messages.
SafeTensors parse_safetensors(const uint8_t* data, size_t size, const std::string& what);
// Reads `path` (header first, then each tensor straight into its storage).
SafeTensors read_safetensors(const std::string& path);

// The bytes of a safetensors file holding `tensors` (any device; F32/F64/I32) in the given
// order, with `metadata` as "__metadata__". Names must be unique and not "__metadata__".
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata);
// Writes serialize_safetensors(...) to path + ".tmp" and renames it onto `path`; on any
// error the temporary file is removed and `path` is left untouched.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);

// IEEE half and bfloat16 bit patterns to float (exact; subnormals, inf and NaN kept).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);

}  // namespace cg::models
