// models/io/gguf.cpp — GGUF parsing with every size checked first, ggml block dequantization
// (written from the published block layouts), and the llama-architecture checkpoint mapping.
#include "models/io/gguf.h"

#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/io/llama2c.h"
#include "models/io/safetensors.h"

namespace cg::models {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

namespace {

constexpr uint64_t kMaxTensors = 1 << 20;
constexpr uint64_t kMaxKv = 1 << 20;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxDimSize = uint64_t{1} << 40;
constexpr int kMaxArrayDepth = 4;
constexpr uint64_t kMaxAlignment = 1 << 16;

// ggml type ids (ggml.h): the ones read here.
enum : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

struct TypeInfo {
  uint64_t block;  // values per block
  uint64_t bytes;  // bytes per block
};

TypeInfo type_info(uint32_t t) {
  switch (t) {
    case kF32: return {1, 4};
    case kF16: return {1, 2};
    case kBF16: return {1, 2};
    case kQ4_0: return {32, 18};
    case kQ4_1: return {32, 20};
    case kQ5_0: return {32, 22};
    case kQ5_1: return {32, 24};
    case kQ8_0: return {32, 34};
    case kQ4_K: return {256, 144};
    case kQ5_K: return {256, 176};
    case kQ6_K: return {256, 210};
    default: return {0, 0};
  }
}

uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float half_at(const uint8_t* p) { return f16_to_f32(u16_at(p)); }

// The 6-bit scale and min of sub-block j (0..7) packed in the 12 bytes of a Q4_K/Q5_K block.
void k_scale_min(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// One block of each format → its values.
void block_q4_0(const uint8_t* b, float* y) {  // f16 d; 16 bytes of nibbles: low = 0..15, high = 16..31
  const float d = half_at(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}
void block_q4_1(const uint8_t* b, float* y) {  // f16 d, f16 m; nibbles as Q4_0, x = q·d + m
  const float d = half_at(b), m = half_at(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(b[4 + j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
  }
}
void block_q5(const uint8_t* b, float* y, bool with_min) {  // f16 d[, f16 m]; u32 high bits; nibbles
  const float d = half_at(b), m = with_min ? half_at(b + 2) : 0.0f;
  const uint8_t* p = b + (with_min ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const uint8_t* qs = p + 4;
  const int off = with_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - off) * d + m;
    y[j + 16] = static_cast<float>(hi - off) * d + m;
  }
}
void block_q8_0(const uint8_t* b, float* y) {  // f16 d; 32 × int8
  const float d = half_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}
void block_q4_k(const uint8_t* b, float* y) {  // f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* q = b + 16;
  for (int g = 0; g < 4; ++g) {  // 4 groups of 64 values: two sub-blocks sharing 32 bytes
    int s0, m0, s1, m1;
    k_scale_min(2 * g, sc, s0, m0);
    k_scale_min(2 * g + 1, sc, s1, m1);
    for (int l = 0; l < 32; ++l) {
      y[64 * g + l] =
          d * static_cast<float>(s0) * static_cast<float>(q[32 * g + l] & 0xF) - dmin * static_cast<float>(m0);
      y[64 * g + 32 + l] =
          d * static_cast<float>(s1) * static_cast<float>(q[32 * g + l] >> 4) - dmin * static_cast<float>(m1);
    }
  }
}
void block_q5_k(const uint8_t* b, float* y) {  // as Q4_K plus 32 bytes of fifth bits before the nibbles
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48;
  for (int g = 0; g < 4; ++g) {
    int s0, m0, s1, m1;
    k_scale_min(2 * g, sc, s0, m0);
    k_scale_min(2 * g + 1, sc, s1, m1);
    const int bit0 = 2 * g, bit1 = 2 * g + 1;
    for (int l = 0; l < 32; ++l) {
      const int lo = (q[32 * g + l] & 0xF) + (((qh[l] >> bit0) & 1) << 4);
      const int hi = (q[32 * g + l] >> 4) + (((qh[l] >> bit1) & 1) << 4);
      y[64 * g + l] = d * static_cast<float>(s0) * static_cast<float>(lo) - dmin * static_cast<float>(m0);
      y[64 * g + 32 + l] = d * static_cast<float>(s1) * static_cast<float>(hi) - dmin * static_cast<float>(m1);
    }
  }
}
void block_q6_k(const uint8_t* b, float* y) {  // 128 low-nibble bytes, 64 high-2-bit bytes, 16 int8 scales, f16 d
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b + 208);
  for (int h = 0; h < 2; ++h) {  // two halves of 128 values
    const uint8_t* l8 = ql + 64 * h;
    const uint8_t* h8 = qh + 32 * h;
    const int8_t* s = sc + 8 * h;
    float* o = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((l8[l] & 0xF) | (((h8[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((l8[l + 32] & 0xF) | (((h8[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((l8[l] >> 4) | (((h8[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((l8[l + 32] >> 4) | (((h8[l] >> 6) & 3) << 4)) - 32;
      o[l] = d * static_cast<float>(s[is]) * static_cast<float>(q1);
      o[l + 32] = d * static_cast<float>(s[is + 2]) * static_cast<float>(q2);
      o[l + 64] = d * static_cast<float>(s[is + 4]) * static_cast<float>(q3);
      o[l + 96] = d * static_cast<float>(s[is + 6]) * static_cast<float>(q4);
    }
  }
}

// A bounds-checked little-endian cursor over the file bytes.
struct Cursor {
  const uint8_t* data;
  uint64_t size, pos = 0;
  const std::string& what;

  void need(uint64_t n, const char* for_what) const {
    if (n > size - pos)
      throw FormatError(what + ": truncated at byte " + std::to_string(pos) + " reading " + for_what + " (" +
                        std::to_string(n) + " bytes needed, " + std::to_string(size - pos) + " left)");
  }
  template <class T>
  T get(const char* for_what) {
    need(sizeof(T), for_what);
    T v;
    std::memcpy(&v, data + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* for_what) {
    const uint64_t n = get<uint64_t>(for_what);
    need(n, for_what);
    std::string s(reinterpret_cast<const char*>(data + pos), static_cast<size_t>(n));
    pos += n;
    return s;
  }
};

uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 0;
}

GgufValue read_value(Cursor& c, GgufType t, int depth, const std::string& key) {
  GgufValue v;
  v.type = t;
  auto set_int = [&](int64_t x) {
    v.i = x;
    v.f = static_cast<double>(x);
  };
  switch (t) {
    case GgufType::U8: set_int(c.get<uint8_t>("a u8")); break;
    case GgufType::I8: set_int(c.get<int8_t>("an i8")); break;
    case GgufType::U16: set_int(c.get<uint16_t>("a u16")); break;
    case GgufType::I16: set_int(c.get<int16_t>("an i16")); break;
    case GgufType::U32: set_int(c.get<uint32_t>("a u32")); break;
    case GgufType::I32: set_int(c.get<int32_t>("an i32")); break;
    case GgufType::I64: set_int(c.get<int64_t>("an i64")); break;
    case GgufType::U64: {
      const uint64_t x = c.get<uint64_t>("a u64");
      if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(c.what + ": metadata '" + key + "' holds u64 " + std::to_string(x) + ", beyond int64");
      set_int(static_cast<int64_t>(x));
      break;
    }
    case GgufType::BOOL: {
      const uint8_t b = c.get<uint8_t>("a bool");
      if (b > 1) throw FormatError(c.what + ": metadata '" + key + "' has bool byte " + std::to_string(b));
      set_int(b);
      break;
    }
    case GgufType::F32: v.f = c.get<float>("an f32"); break;
    case GgufType::F64: v.f = c.get<double>("an f64"); break;
    case GgufType::STRING: v.s = c.str("a string"); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        throw FormatError(c.what + ": metadata '" + key + "' nests arrays deeper than " +
                          std::to_string(kMaxArrayDepth));
      const uint32_t et = c.get<uint32_t>("an array type");
      if (et > static_cast<uint32_t>(GgufType::F64))
        throw FormatError(c.what + ": metadata '" + key + "' is an array of unknown type " + std::to_string(et));
      v.elem = static_cast<GgufType>(et);
      const uint64_t n = c.get<uint64_t>("an array length");
      if (n > (c.size - c.pos) / min_value_bytes(v.elem))
        throw FormatError(c.what + ": metadata '" + key + "' claims " + std::to_string(n) +
                          " array elements, more than the file can hold");
      v.items.reserve(static_cast<size_t>(n));
      for (uint64_t k = 0; k < n; ++k) v.items.push_back(read_value(c, v.elem, depth + 1, key));
      break;
    }
  }
  return v;
}

}  // namespace

Shape GgufTensorInfo::shape() const { return Shape::from(ne.rbegin(), ne.rend()); }

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : kv)
    if (k == key) return &v;
  return nullptr;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(what + ": GGUF metadata lacks '" + key + "'");
  if (!v->is_int()) throw FormatError(what + ": GGUF metadata '" + key + "' is not an integer");
  return v->i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(what + ": GGUF metadata lacks '" + key + "'");
  if (v->type == GgufType::STRING || v->type == GgufType::ARRAY)
    throw FormatError(what + ": GGUF metadata '" + key + "' is not a number");
  return v->f;
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(what + ": GGUF metadata lacks '" + key + "'");
  if (v->type != GgufType::STRING) throw FormatError(what + ": GGUF metadata '" + key + "' is not a string");
  return v->s;
}

const GgufValue& GgufFile::get_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw FormatError(what + ": GGUF metadata lacks '" + key + "'");
  if (v->type != GgufType::ARRAY) throw FormatError(what + ": GGUF metadata '" + key + "' is not an array");
  return *v;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string ggml_type_name(uint32_t type) {
  switch (type) {
    case kF32: return "F32";
    case kF16: return "F16";
    case kBF16: return "BF16";
    case kQ4_0: return "Q4_0";
    case kQ4_1: return "Q4_1";
    case kQ5_0: return "Q5_0";
    case kQ5_1: return "Q5_1";
    case kQ8_0: return "Q8_0";
    case kQ4_K: return "Q4_K";
    case kQ5_K: return "Q5_K";
    case kQ6_K: return "Q6_K";
    default: return "type " + std::to_string(type);
  }
}

uint64_t ggml_row_bytes(uint32_t type, uint64_t n) {
  const TypeInfo ti = type_info(type);
  if (ti.block == 0 || n % ti.block != 0) return 0;
  return n / ti.block * ti.bytes;
}

void ggml_dequantize(uint32_t type, const uint8_t* src, float* dst, uint64_t n) {
  const TypeInfo ti = type_info(type);
  if (ti.block == 0 || n % ti.block != 0)
    throw FormatError("ggml_dequantize: " + std::to_string(n) + " values of " + ggml_type_name(type) +
                      " (unsupported type or not whole blocks)");
  const int64_t blocks = static_cast<int64_t>(n / ti.block);
  for (int64_t k = 0; k < blocks; ++k) {
    const uint8_t* b = src + static_cast<uint64_t>(k) * ti.bytes;
    float* y = dst + static_cast<uint64_t>(k) * ti.block;
    switch (type) {
      case kF32: std::memcpy(y, b, 4); break;
      case kF16: *y = f16_to_f32(u16_at(b)); break;
      case kBF16: *y = bf16_to_f32(u16_at(b)); break;
      case kQ4_0: block_q4_0(b, y); break;
      case kQ4_1: block_q4_1(b, y); break;
      case kQ5_0: block_q5(b, y, false); break;
      case kQ5_1: block_q5(b, y, true); break;
      case kQ8_0: block_q8_0(b, y); break;
      case kQ4_K: block_q4_k(b, y); break;
      case kQ5_K: block_q5_k(b, y); break;
      case kQ6_K: block_q6_k(b, y); break;
      default: break;
    }
  }
}

GgufFile parse_gguf(std::vector<uint8_t> bytes, const std::string& what) {
  GgufFile g;
  g.what = what;
  g.bytes = std::move(bytes);
  Cursor c{g.bytes.data(), g.bytes.size(), 0, what};
  if (g.bytes.size() < 4 || std::memcmp(g.bytes.data(), "GGUF", 4) != 0)
    throw FormatError(what + ": not a GGUF file (bad magic)");
  c.pos = 4;
  g.version = c.get<uint32_t>("the version");
  if (g.version != 2 && g.version != 3)
    throw FormatError(what + ": GGUF version " + std::to_string(g.version) + " is not supported (2 or 3)");
  const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
  const uint64_t n_kv = c.get<uint64_t>("the metadata count");
  if (n_tensors > kMaxTensors || n_tensors > c.size / 24)
    throw FormatError(what + ": tensor count " + std::to_string(n_tensors) + " is absurd for a " +
                      std::to_string(c.size) + "-byte file");
  if (n_kv > kMaxKv || n_kv > c.size / 13)
    throw FormatError(what + ": metadata count " + std::to_string(n_kv) + " is absurd for a " + std::to_string(c.size) +
                      "-byte file");
  std::set<std::string> keys;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str("a metadata key");
    const uint32_t t = c.get<uint32_t>("a metadata type");
    if (t > static_cast<uint32_t>(GgufType::F64))
      throw FormatError(what + ": metadata '" + key + "' has unknown value type " + std::to_string(t));
    if (!keys.insert(key).second) throw FormatError(what + ": metadata key '" + key + "' appears twice");
    GgufValue v = read_value(c, static_cast<GgufType>(t), 0, key);
    g.kv.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = g.find("general.alignment")) {
    if (!a->is_int() || a->i < 1 || static_cast<uint64_t>(a->i) > kMaxAlignment || (a->i & (a->i - 1)) != 0)
      throw FormatError(what + ": general.alignment must be a power of two up to " + std::to_string(kMaxAlignment));
    g.alignment = static_cast<uint64_t>(a->i);
  }
  std::set<std::string> names;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    ti.name = c.str("a tensor name");
    const std::string where = what + ": tensor '" + ti.name + "'";
    if (!names.insert(ti.name).second) throw FormatError(where + " appears twice");
    const uint32_t nd = c.get<uint32_t>("a tensor rank");
    if (nd < 1 || nd > kMaxDims) throw FormatError(where + " has rank " + std::to_string(nd) + " (1..4 supported)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = c.get<uint64_t>("a tensor dimension");
      if (n < 1 || n > kMaxDimSize) throw FormatError(where + " has dimension " + std::to_string(n));
      if (numel > kMaxDimSize / n) throw FormatError(where + " has too many elements");
      numel *= n;
      ti.ne.push_back(n);
    }
    ti.ggml_type = c.get<uint32_t>("a tensor type");
    ti.offset = c.get<uint64_t>("a tensor offset");
    const TypeInfo info = type_info(ti.ggml_type);
    if (info.block == 0)
      throw FormatError(where + " has ggml type " + std::to_string(ti.ggml_type) +
                        ", not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)");
    if (ti.ne[0] % info.block != 0)
      throw FormatError(where + ": row length " + std::to_string(ti.ne[0]) + " is not a multiple of the " +
                        ggml_type_name(ti.ggml_type) + " block size " + std::to_string(info.block));
    ti.nbytes = numel / info.block * info.bytes;
    if (ti.offset % g.alignment != 0)
      throw FormatError(where + ": offset " + std::to_string(ti.offset) + " is not aligned to " +
                        std::to_string(g.alignment));
    g.tensors.push_back(std::move(ti));
  }
  const uint64_t pad = (g.alignment - c.pos % g.alignment) % g.alignment;
  g.data_offset = c.pos + pad;
  if (g.data_offset > c.size) throw FormatError(what + ": truncated before the data section");
  const uint64_t data_size = c.size - g.data_offset;
  for (const GgufTensorInfo& ti : g.tensors)
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
      throw FormatError(what + ": tensor '" + ti.name + "' (" + std::to_string(ti.nbytes) + " bytes at offset " +
                        std::to_string(ti.offset) + ") runs past the end of the file (data section " +
                        std::to_string(data_size) + " bytes)");
  return g;
}

GgufFile read_gguf(const std::string& path) { return parse_gguf(read_file_bytes(path), path); }

Tensor gguf_tensor_f32(const GgufFile& g, const GgufTensorInfo& info) {
  uint64_t numel = 1;
  for (uint64_t n : info.ne) numel *= n;
  Tensor t = Tensor::empty(info.shape(), DType::F32);
  ggml_dequantize(info.ggml_type, g.bytes.data() + g.data_offset + info.offset, t.data<float>(), numel);
  return t;
}

LlamaConfig gguf_llama_config(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama")
    throw FormatError(g.what + ": general.architecture is '" + arch + "'; only 'llama' is supported");
  const std::string p = arch + ".";
  LlamaConfig c;
  c.dim = g.get_int(p + "embedding_length");
  c.hidden_dim = g.get_int(p + "feed_forward_length");
  c.n_layers = g.get_int(p + "block_count");
  c.n_heads = g.get_int(p + "attention.head_count");
  c.n_kv_heads = g.find(p + "attention.head_count_kv") ? g.get_int(p + "attention.head_count_kv") : c.n_heads;
  c.seq_len = g.get_int(p + "context_length");
  c.norm_eps = g.get_float(p + "attention.layer_norm_rms_epsilon");
  c.rope_theta = g.find(p + "rope.freq_base") ? g.get_float(p + "rope.freq_base") : 10000.0;
  const GgufTensorInfo* emb = g.tensor("token_embd.weight");
  if (!emb || emb->ne.size() != 2) throw FormatError(g.what + ": no 2-D tensor 'token_embd.weight'");
  c.vocab_size = static_cast<int64_t>(emb->ne[1]);
  if (g.find(p + "vocab_size") && g.get_int(p + "vocab_size") != c.vocab_size)
    throw FormatError(g.what + ": " + p + "vocab_size differs from token_embd.weight's rows");
  c.tied_embeddings = g.tensor("output.weight") == nullptr;
  if (g.find(p + "rope.scaling.type") && g.get_string(p + "rope.scaling.type") != "none")
    throw FormatError(g.what + ": RoPE scaling '" + g.get_string(p + "rope.scaling.type") + "' is not supported");
  if (g.tensor("rope_freqs.weight"))
    throw FormatError(g.what + ": rope_freqs.weight (Llama-3.1 RoPE scaling) is not supported");
  c.validate(g.what);
  for (const char* k : {"rope.dimension_count", "attention.key_length", "attention.value_length"})
    if (g.find(p + k) && g.get_int(p + k) != c.head_dim())
      throw FormatError(g.what + ": " + p + k + " = " + std::to_string(g.get_int(p + k)) +
                        " differs from embedding_length/head_count = " + std::to_string(c.head_dim()));
  return c;
}

Checkpoint gguf_to_checkpoint(const GgufFile& g) {
  Checkpoint ck;
  ck.config = gguf_llama_config(g);
  const LlamaConfig& c = ck.config;
  std::set<std::string> used;
  auto take = [&](const std::string& gname, const std::string& hf, const Shape& want) {
    const GgufTensorInfo* ti = g.tensor(gname);
    if (!ti) throw FormatError(g.what + ": missing tensor '" + gname + "' for " + c.str());
    if (ti->shape() != want)
      throw FormatError(g.what + ": tensor '" + gname + "' has shape " + ti->shape().str() + ", expected " +
                        want.str() + " for " + c.str());
    used.insert(gname);
    Tensor t = gguf_tensor_f32(g, *ti);
    ck.tensors.emplace_back(hf, std::move(t));
  };
  for (const TensorSpec& s : hf_llama_tensor_specs(c)) {
    const std::string& n = s.name;
    if (n == "model.embed_tokens.weight") take("token_embd.weight", n, s.shape);
    else if (n == "model.norm.weight") take("output_norm.weight", n, s.shape);
    else if (n == "lm_head.weight") {
      if (c.tied_embeddings) ck.tensors.emplace_back(n, ck.get("model.embed_tokens.weight").clone());
      else take("output.weight", n, s.shape);
    } else {
      // model.layers.{i}.{rest}
      const size_t dot = n.find('.', 13);
      const std::string layer = n.substr(13, dot - 13), rest = n.substr(dot + 1);
      static const std::pair<const char*, const char*> kNames[] = {
          {"input_layernorm.weight", "attn_norm.weight"},    {"self_attn.q_proj.weight", "attn_q.weight"},
          {"self_attn.k_proj.weight", "attn_k.weight"},      {"self_attn.v_proj.weight", "attn_v.weight"},
          {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
          {"mlp.gate_proj.weight", "ffn_gate.weight"},       {"mlp.up_proj.weight", "ffn_up.weight"},
          {"mlp.down_proj.weight", "ffn_down.weight"}};
      for (const auto& [hf, gg] : kNames)
        if (rest == hf) take("blk." + layer + "." + gg, n, s.shape);
      // llama.cpp's converter permutes q/k rows to interleaved pairs; undo it.
      if (rest == "self_attn.q_proj.weight")
        ck.tensors.back().second = permute_interleaved_to_half(ck.tensors.back().second, c.n_heads);
      if (rest == "self_attn.k_proj.weight")
        ck.tensors.back().second = permute_interleaved_to_half(ck.tensors.back().second, c.n_kv_heads);
    }
  }
  for (const GgufTensorInfo& ti : g.tensors)
    if (!used.count(ti.name))
      throw FormatError(g.what + ": unexpected tensor '" + ti.name + "' for a Llama with " + c.str());
  check_checkpoint(ck, g.what);
  return ck;
}

Checkpoint read_gguf_checkpoint(const std::string& path) { return gguf_to_checkpoint(read_gguf(path)); }

}  // namespace cg::models
