// models/io/gguf.h — GGUF files (versions 2 and 3, little-endian): the metadata (every value
// type, arrays included), the tensor table, the aligned data section, dequantization of the
// ggml block formats F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K to float32, and
// the mapping of a llama-architecture GGUF onto a Checkpoint (HF names, rotate-half q/k).
//
// Layout: "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count × {string key,
// u32 type, value}; tensor_count × {string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type,
// u64 offset}; padding to general.alignment (default 32); the data section. A string is u64
// length + bytes; an array is u32 element type, u64 count, elements. ne[0] is the fastest
// dimension, so a torch [out, in] weight has ne = {in, out}. Every count, size and offset is
// checked against the file before anything is allocated; a violation → FormatError.
// Choice: tensors are dequantized to float32 on load (a frozen base stays float32 in memory).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/io/checkpoint.h"

namespace cg::models {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::U8;
  int64_t i = 0;                 // integer types (U64 above INT64_MAX is refused) and BOOL
  double f = 0;                  // F32/F64; integers are mirrored here too
  std::string s;                 // STRING
  GgufType elem = GgufType::U8;  // ARRAY: element type
  std::vector<GgufValue> items;  // ARRAY
  bool is_int() const {
    return type != GgufType::F32 && type != GgufType::F64 && type != GgufType::STRING && type != GgufType::ARRAY;
  }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] fastest
  uint32_t ggml_type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;  // from ne and the type's block size
  Shape shape() const;  // torch order (reversed ne)
};

struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  std::vector<std::pair<std::string, GgufValue>> kv;  // file order
  std::vector<GgufTensorInfo> tensors;
  uint64_t data_offset = 0;    // absolute start of the data section
  std::vector<uint8_t> bytes;  // the whole file

  const GgufValue* find(const std::string& key) const;
  // Typed lookups; a missing key or wrong type → FormatError naming `what`.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // any numeric type
  const std::string& get_string(const std::string& key) const;
  const GgufValue& get_array(const std::string& key) const;
  const GgufTensorInfo* tensor(const std::string& name) const;
  std::string what;  // the path, for messages
};

// The ggml type's name ("Q4_K"), or "type N" for an unknown one.
std::string ggml_type_name(uint32_t type);
// Bytes of `n` values of `type` (n a multiple of its block size), 0 for an unsupported type.
uint64_t ggml_row_bytes(uint32_t type, uint64_t n);
// Dequantizes `n` values (a multiple of the block size) of `type` from `src` into dst (one
// thread: on a shared machine an OpenMP team here was several times slower).
void ggml_dequantize(uint32_t type, const uint8_t* src, float* dst, uint64_t n);

// Parses (and validates) a whole GGUF file held in memory; takes the bytes.
GgufFile parse_gguf(std::vector<uint8_t> bytes, const std::string& what);
GgufFile read_gguf(const std::string& path);
// A tensor's values as an F32 host tensor in torch shape.
Tensor gguf_tensor_f32(const GgufFile& g, const GgufTensorInfo& info);

// The Llama config from `llama.*` keys (general.architecture must be "llama"): embedding_length,
// feed_forward_length, block_count, attention.head_count(_kv), context_length,
// attention.layer_norm_rms_epsilon, rope.freq_base; vocab from token_embd; tied when the file
// has no output.weight. rope scaling or a rope dimension other than head_dim → FormatError.
LlamaConfig gguf_llama_config(const GgufFile& g);
// The checkpoint: GGUF names mapped to HF names, q/k rows permuted from llama.cpp's
// interleaved-pair order back to rotate-half, every tensor dequantized to F32.
Checkpoint gguf_to_checkpoint(const GgufFile& g);
Checkpoint read_gguf_checkpoint(const std::string& path);

}  // namespace cg::models
