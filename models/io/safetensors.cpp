// models/io/safetensors.cpp — the safetensors reader (strict validation before allocation)
// and the atomic writer.
#include "models/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <tuple>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/io/file_io.h"

namespace cg::models {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr uint64_t kMaxDimSize = uint64_t{1} << 40;

struct Entry {
  std::string name;
  std::string dtype;  // as in the file: F32, F16, BF16, F64, I32
  Shape shape;
  uint64_t begin = 0, end = 0;  // relative to the start of the data section
};

size_t file_dtype_size(const std::string& dt) {
  if (dt == "F32" || dt == "I32") return 4;
  if (dt == "F16" || dt == "BF16") return 2;
  if (dt == "F64") return 8;
  return 0;
}

Entry parse_entry(const std::string& name, const nlohmann::json& v, uint64_t data_size, const std::string& what) {
  const std::string where = what + ": tensor '" + name + "'";
  if (!v.is_object()) throw FormatError(where + ": header entry is not a JSON object");
  auto dt = v.find("dtype");
  auto sh = v.find("shape");
  auto off = v.find("data_offsets");
  if (dt == v.end() || sh == v.end() || off == v.end())
    throw FormatError(where + ": header entry needs \"dtype\", \"shape\" and \"data_offsets\"");
  if (!dt->is_string()) throw FormatError(where + ": dtype is not a string");
  Entry e;
  e.name = name;
  e.dtype = dt->get<std::string>();
  const size_t esize = file_dtype_size(e.dtype);
  if (esize == 0)
    throw FormatError(where + ": unsupported dtype '" + e.dtype + "' (supported: F32, F16, BF16, F64, I32)");
  if (!sh->is_array()) throw FormatError(where + ": shape is not an array");
  if (sh->size() > static_cast<size_t>(kMaxRank))
    throw FormatError(where + ": rank " + std::to_string(sh->size()) + " is more than chaingrad supports (" +
                      std::to_string(kMaxRank) + ")");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) throw FormatError(where + ": shape holds a non-natural number");
    const uint64_t n = d.get<uint64_t>();
    if (n > kMaxDimSize) throw FormatError(where + ": shape has an absurd dimension " + std::to_string(n));
    if (__builtin_mul_overflow(numel, n, &numel)) throw FormatError(where + ": shape overflows");
    e.shape.push(static_cast<int64_t>(n));
  }
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    throw FormatError(where + ": data_offsets is not [begin, end] (two natural numbers)");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  if (e.begin > e.end || e.end > data_size)
    throw FormatError(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                      "] out of range (data section is " + std::to_string(data_size) + " bytes)");
  uint64_t bytes = 0;
  const bool overflow = __builtin_mul_overflow(numel, static_cast<uint64_t>(esize), &bytes);
  if (overflow || bytes != e.end - e.begin)
    throw FormatError(where + ": " + e.dtype + e.shape.str() + " needs " +
                      (overflow ? std::string("too many") : std::to_string(bytes)) + " bytes but data_offsets span " +
                      std::to_string(e.end - e.begin));
  return e;
}

// Reads one validated entry into a new host tensor (F16/BF16 converted to F32).
Tensor load_entry(const Entry& e, uint64_t data_start, const ReadAt& read_at) {
  const size_t n = static_cast<size_t>(e.shape.numel());
  if (e.dtype == "F32" || e.dtype == "F64" || e.dtype == "I32") {
    const DType dt = e.dtype == "F32" ? DType::F32 : e.dtype == "F64" ? DType::F64 : DType::I32;
    Tensor t = Tensor::empty(e.shape, dt);
    if (n) read_at(data_start + e.begin, t.raw(), e.end - e.begin);
    return t;
  }
  std::vector<uint16_t> half(n);
  if (n) read_at(data_start + e.begin, half.data(), e.end - e.begin);
  Tensor t = Tensor::empty(e.shape, DType::F32);
  float* out = t.data<float>();
  const bool bf = e.dtype == "BF16";
  for (size_t i = 0; i < n; ++i) out[i] = bf ? bf16_to_f32(half[i]) : f16_to_f32(half[i]);
  return t;
}

SafeTensors parse_with(uint64_t total, const ReadAt& read_at, const std::string& what) {
  if (total < 8) throw FormatError(what + ": " + std::to_string(total) + " bytes is too short for a safetensors file");
  uint64_t n = 0;
  read_at(0, &n, 8);
  if (n > total - 8)
    throw FormatError(what + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                      std::to_string(total) + " bytes)");
  if (n > kMaxSafetensorsHeader)
    throw FormatError(what + ": header length " + std::to_string(n) + " exceeds the " +
                      std::to_string(kMaxSafetensorsHeader) + "-byte limit");
  std::string text(static_cast<size_t>(n), '\0');
  if (n) read_at(8, text.data(), text.size());
  // Depth-limited, and a tensor name given twice is an error (nlohmann would keep the last).
  const nlohmann::json header = parse_json_limited(text, what + ": header", /*unique_keys=*/true);
  if (!header.is_object()) throw FormatError(what + ": JSON header is not an object");
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = total - data_start;

  SafeTensors st;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw FormatError(what + ": __metadata__ is not a JSON object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw FormatError(what + ": __metadata__ value for '" + mk + "' is not a string");
        st.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(key, value, data_size, what));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // The data section is indexed entirely: no overlap, no hole, nothing after the last tensor.
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && entries[i].begin < entries[i - 1].end)
      throw FormatError(what + ": tensors '" + entries[i - 1].name + "' and '" + entries[i].name +
                        "' overlap in the data section");
    if (entries[i].begin > covered)
      throw FormatError(what + ": bytes [" + std::to_string(covered) + ", " + std::to_string(entries[i].begin) +
                        ") of the data section belong to no tensor (a hole before '" + entries[i].name + "')");
    covered = std::max(covered, entries[i].end);
  }
  if (covered != data_size)
    throw FormatError(what + ": the last " + std::to_string(data_size - covered) +
                      " bytes of the data section belong to no tensor");
  // Everything is validated: total allocation is now bounded by the file size (×2 for F16/BF16).
  for (const Entry& e : entries) {
    st.names.push_back(e.name);
    st.tensors.emplace(e.name, load_entry(e, data_start, read_at));
  }
  return st;
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // normal: rebias 15 → 127
  } else if (mant == 0) {
    bits = sign;  // ±0
  } else {
    int e = 113;  // subnormal: value = mant·2^-24; normalize the mantissa
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

SafeTensors parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  return parse_with(size, memory_reader(data, size, what), what);
}

SafeTensors read_safetensors(const std::string& path) {
  FileReader f(path);
  return parse_with(f.size(), f.reader(), path);
}

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || header.contains(name))
      throw FormatError("write_safetensors: duplicate or reserved tensor name '" + name + "'");
    if (!t.defined()) throw FormatError("write_safetensors: tensor '" + name + "' is undefined");
    const char* dt = t.dtype() == DType::F32 ? "F32" : t.dtype() == DType::F64 ? "F64" : "I32";
    std::vector<int64_t> shape;
    for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
    header[name] = {{"dtype", dt}, {"shape", shape}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    host.push_back(t.to(Device::CPU));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& ex) {
    throw FormatError(std::string("write_safetensors: cannot encode the header: ") + ex.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const Tensor& t : host) {
    if (t.nbytes()) std::memcpy(p, t.raw(), t.nbytes());
    p += t.nbytes();
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace cg::models
