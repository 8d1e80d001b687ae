// engine/cpu/cpu_memory.cpp — host memory for the CPU backend: the block cache, copies, fill.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "engine/cpu/cpu_backend.h"

namespace cg {

// The block cache. Sizes are rounded to 64 bytes; a training loop allocates the same shapes
// every step, so after the first step every request is a hit on a block of exactly its size
// and no page is faulted in again. Shapes that change from step to step (records padded to
// the longest of their batch) would make an exact-size cache grow without bound, so:
//  - a request may take a free block up to kSlack larger than it (the smallest that fits);
//  - on a miss, when the free blocks outweigh the live ones, every free block goes back to
//    the system first, so the memory held stays near one step's peak, not the sum of all.
// Each block carries its real size in a 64-byte header before the pointer handed out.
static size_t round_size(size_t bytes) { return (bytes + 63) / 64 * 64; }
static constexpr size_t kHeader = 64;
static constexpr double kSlack = 1.25;
static size_t& block_size(void* p) { return *reinterpret_cast<size_t*>(static_cast<char*>(p) - kHeader); }

void* CpuBackend::alloc(size_t bytes) {
  const size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats& st = stats();
  st.bytes_in_use += static_cast<int64_t>(rounded);
  st.peak_bytes = std::max(st.peak_bytes, st.bytes_in_use);
  for (auto it = cache_.lower_bound(rounded);
       it != cache_.end() && static_cast<double>(it->first) <= kSlack * static_cast<double>(rounded); ++it) {
    if (it->second.empty()) continue;
    void* p = it->second.back();
    it->second.pop_back();
    cached_bytes_ -= static_cast<int64_t>(it->first);
    return p;
  }
  if (cached_bytes_ > st.bytes_in_use) trim_locked();
  char* base = static_cast<char*>(std::aligned_alloc(64, rounded + kHeader));
  if (!base) {
    st.bytes_in_use -= static_cast<int64_t>(rounded);
    throw Error("cpu alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  st.system_allocs += 1;
  void* p = base + kHeader;
  block_size(p) = rounded;
  return p;
}

void CpuBackend::release(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  stats().bytes_in_use -= static_cast<int64_t>(round_size(bytes));
#ifdef CG_NO_ALLOC_CACHE  // sanitizer builds: let ASan see every use after free
  std::free(static_cast<char*>(p) - kHeader);
#else
  const size_t size = block_size(p);
  cache_[size].push_back(p);
  cached_bytes_ += static_cast<int64_t>(size);
#endif
}

int64_t CpuBackend::cached_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}

void CpuBackend::trim() {
  std::lock_guard<std::mutex> lock(mu_);
  trim_locked();
}

void CpuBackend::trim_locked() {
  for (auto& [size, blocks] : cache_)
    for (void* p : blocks) std::free(static_cast<char*>(p) - kHeader);
  cache_.clear();
  cached_bytes_ = 0;
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
    case DType::BF16: {
      uint16_t* p = t.data<uint16_t>();
      const uint16_t b = bf16_bits(static_cast<float>(value));
      for (int64_t i = 0; i < n; ++i) p[i] = b;
      break;
    }
  }
}

}  // namespace cg
