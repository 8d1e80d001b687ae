// engine/cpu/cpu_memory.cpp — host memory for the CPU backend: the block cache, copies, fill.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/cpu/cpu_backend.h"

namespace cg {

// Sizes are rounded to 64 bytes and blocks reused only for the same rounded size: a
// training loop allocates the same shapes every step, so after the first step every
// request is a cache hit and no page is faulted in again.
static size_t round_size(size_t bytes) { return (bytes + 63) / 64 * 64; }

void* CpuBackend::alloc(size_t bytes) {
  const size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats& st = stats();
  st.bytes_in_use += static_cast<int64_t>(rounded);
  st.peak_bytes = std::max(st.peak_bytes, st.bytes_in_use);
  auto it = cache_.find(rounded);
  if (it != cache_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p) {
    st.bytes_in_use -= static_cast<int64_t>(rounded);
    throw Error("cpu alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  st.system_allocs += 1;
  return p;
}

void CpuBackend::release(void* p, size_t bytes) {
  const size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats().bytes_in_use -= static_cast<int64_t>(rounded);
#ifdef CG_NO_ALLOC_CACHE  // sanitizer builds: let ASan see every use after free
  std::free(p);
#else
  cache_[rounded].push_back(p);
#endif
}

void CpuBackend::to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::fill(Tensor& t, double value) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32: {
      float* p = t.data<float>();
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(value);
      break;
    }
    case DType::F64: {
      double* p = t.data<double>();
      for (int64_t i = 0; i < n; ++i) p[i] = value;
      break;
    }
    case DType::I32: {
      int32_t* p = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(value);
      break;
    }
  }
}

}  // namespace cg
