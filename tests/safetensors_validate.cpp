// tests/safetensors_validate.cpp — the independent safetensors validator of
// tests/safetensors_validate.h, and its own tests on hand-made good and bad files.
#include "tests/safetensors_validate.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/tensor.h"
#include "models/io/safetensors.h"

namespace cg::testing {
namespace {

// Bytes per element of every dtype the format defines.
const std::map<std::string, uint64_t>& dtype_sizes() {
  static const std::map<std::string, uint64_t> m{{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
                                                 {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
                                                 {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  return m;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

std::string safetensors_problem(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 8) return "shorter than the 8-byte header size";
  const uint64_t n = read_u64_le(bytes.data());
  if (n > bytes.size() - 8) return "header size " + std::to_string(n) + " runs past the end of the file";
  if ((8 + n) % 8 != 0) return "data does not start at an 8-byte boundary (8 + header = " + std::to_string(8 + n) + ")";
  const std::string text(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  const size_t close = text.find_last_not_of(' ');
  if (text.empty() || text[0] != '{' || close == std::string::npos || text[close] != '}')
    return "header is not one JSON object padded with spaces";
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(text.substr(0, close + 1));
  } catch (const std::exception& e) {
    return std::string("header is not JSON: ") + e.what();
  }
  if (!h.is_object()) return "header is not a JSON object";
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) return "__metadata__ is not an object";
      for (auto m = e.begin(); m != e.end(); ++m)
        if (!m.value().is_string()) return "__metadata__." + m.key() + " is not a string";
      continue;
    }
    if (name.empty()) return "a tensor has an empty name";
    if (!e.is_object() || e.size() != 3 || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      return name + ": an entry must have exactly dtype, shape and data_offsets";
    if (!e["dtype"].is_string() || !dtype_sizes().count(e["dtype"].get<std::string>()))
      return name + ": dtype " + e["dtype"].dump() + " is not a safetensors dtype";
    uint64_t numel = 1;
    if (!e["shape"].is_array()) return name + ": shape is not a list";
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) return name + ": shape " + e["shape"].dump() + " holds a non-integer or negative";
      numel *= d.get<uint64_t>();
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return name + ": data_offsets is not [begin, end]";
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (en < b) return name + ": data_offsets end before they begin";
    if (en - b != numel * dtype_sizes().at(e["dtype"].get<std::string>()))
      return name + ": data_offsets span " + std::to_string(en - b) + " bytes, shape × dtype needs " +
             std::to_string(numel * dtype_sizes().at(e["dtype"].get<std::string>()));
    spans.emplace_back(b, en);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& [b, e] : spans) {
    if (b != at)
      return "data is not contiguous: a tensor starts at " + std::to_string(b) + ", expected " + std::to_string(at);
    at = e;
  }
  if (8 + n + at != bytes.size())
    return "file is " + std::to_string(bytes.size()) + " bytes, 8 + header + data = " + std::to_string(8 + n + at);
  return "";
}

std::string safetensors_file_problem(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "cannot open " + path;
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return safetensors_problem(bytes);
}

int check_safetensors_under(const std::string& dir) {
  namespace fs = std::filesystem;
  int count = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string path = e.path().string();
    bool looks = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
    if (!looks && e.file_size() >= 9) {
      std::ifstream f(path, std::ios::binary);
      uint8_t head[9];
      f.read(reinterpret_cast<char*>(head), 9);
      looks = head[8] == '{' && read_u64_le(head) < e.file_size();
    }
    if (!looks) continue;
    const std::string problem = safetensors_file_problem(path);
    CHECK_MESSAGE(problem.empty(), path << ": " << problem);
    ++count;
  }
  return count;
}

}  // namespace cg::testing

// ---- the validator's own tests --------------------------------------------------------------

namespace {

std::vector<uint8_t> file_of(const std::string& header, size_t data) {
  std::string h = header;
  h.append((8 - (8 + h.size()) % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + h.size() + data, 0);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  return out;
}

}  // namespace

TEST_CASE("safetensors validator: accepts a well-formed file, names each broken rule") {
  using cg::testing::safetensors_problem;
  const std::string a = R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})";
  const std::string b = R"("b":{"dtype":"I32","shape":[2],"data_offsets":[24,32]})";
  CHECK(safetensors_problem(file_of("{" + a + "," + b + R"(,"__metadata__":{"k":"v"}})", 32)) == "");
  CHECK(safetensors_problem(file_of("{}", 0)) == "");
  CHECK(safetensors_problem(file_of("{" + a + "," + b + "}", 40)).find("8 + header + data") != std::string::npos);
  const std::string hole = R"("b":{"dtype":"I32","shape":[2],"data_offsets":[32,40]})";
  CHECK(safetensors_problem(file_of("{" + a + "," + hole + "}", 40)).find("contiguous") != std::string::npos);
  const std::string late = R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]})";
  CHECK(safetensors_problem(file_of("{" + late + "}", 32)).find("contiguous") != std::string::npos);
  CHECK(safetensors_problem(file_of(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20))
            .find("needs 24") != std::string::npos);
  CHECK(safetensors_problem(file_of(R"({"a":{"dtype":"float","shape":[1],"data_offsets":[0,4]}})", 4)).find("dtype") !=
        std::string::npos);
  CHECK(safetensors_problem(file_of(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)).find("shape") !=
        std::string::npos);
  CHECK(safetensors_problem(file_of(R"({"__metadata__":{"k":1}})", 0)).find("not a string") != std::string::npos);
  CHECK(
      safetensors_problem(file_of(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4)).find("empty name") !=
      std::string::npos);
  CHECK(safetensors_problem({1, 0}).find("shorter") != std::string::npos);
}

TEST_CASE("safetensors writer: serialize_safetensors output passes the independent validator") {
  using namespace cg;
  const std::vector<std::pair<std::string, Tensor>> ts{
      {"w", Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F32)},
      {"scalar", Tensor::from({7}, {1}, DType::F32)},
      {"ids", Tensor::from_i32({1, 2, 3}, {3})},
      {"d", Tensor::from({0.5, 0.25}, {2}, DType::F64)},
      {"empty", Tensor::zeros({0, 4}, DType::F32)},
  };
  for (const auto& meta :
       {std::map<std::string, std::string>{}, std::map<std::string, std::string>{{"format", "pt"}}}) {
    const auto bytes = models::serialize_safetensors(ts, meta);
    CHECK(cg::testing::safetensors_problem(bytes) == "");
  }
}
