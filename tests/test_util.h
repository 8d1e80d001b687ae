// tests/test_util.h — small helpers the suites share: the largest elementwise difference of
// two tensors or vectors, dense row-major double products for hand checks, the small Llama
// shape model tests build, a directory listing, and reading a JSON golden of tests/golden/.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/io/file_io.h"
#include "models/llama/config.h"

namespace cg::testing {

// max_i |a_i − b_i|; the sizes must agree.
inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  return max_abs_diff(a.to_f64_vector(), b.to_f64_vector());
}

// c[m, n] = a[m, k] · b[k, n], row-major, in double.
inline std::vector<double> matmul_rm(const std::vector<double>& a, const std::vector<double>& b, int64_t m, int64_t k,
                                     int64_t n) {
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j)
        c[static_cast<size_t>(i * n + j)] += a[static_cast<size_t>(i * k + p)] * b[static_cast<size_t>(p * n + j)];
  return c;
}
// t[n, m] = a[m, n]ᵀ, row-major.
inline std::vector<double> transpose_rm(const std::vector<double>& a, int64_t m, int64_t n) {
  std::vector<double> t(a.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) t[static_cast<size_t>(j * m + i)] = a[static_cast<size_t>(i * n + j)];
  return t;
}

// dim 32, SwiGLU 48, 2 layers, 4 query heads over 2 KV heads, vocabulary 40.
inline models::LlamaConfig tiny_llama_config(int64_t seq_len) {
  models::LlamaConfig c;
  c.dim = 32, c.hidden_dim = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 40;
  c.seq_len = seq_len;
  return c;
}

// The names in a directory, sorted (to check that a write left nothing beside its target).
inline std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// tests/golden/NAME parsed as JSON (the reference scripts' outputs; run from the repo root).
inline nlohmann::json read_golden_json(const std::string& name) {
  const std::vector<uint8_t> b = models::read_file_bytes("tests/golden/" + name);
  return nlohmann::json::parse(b.begin(), b.end());
}

}  // namespace cg::testing
