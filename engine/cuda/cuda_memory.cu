// engine/cuda/cuda_memory.cu — device memory for the CUDA backend: the caching allocator,
// host/device copies and fill.
#include <bit>

#include "engine/cuda/cuda_backend.h"

namespace cg {
namespace {

// Block sizes: 512-byte steps up to 1 MiB, then 8 steps per power of two (≤ 12.5% waste).
// Tensors of one shape always land in one bucket, so a repeated step reuses its blocks.
size_t round_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{1} << 20;
  if (bytes <= kSmall) return kSmall;
  if (bytes <= kLarge) return (bytes + kSmall - 1) / kSmall * kSmall;
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    p[i] = value;
}

}  // namespace

// ---- caching allocator -----------------------------------------------------------------

void* CudaBackend::alloc(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mem_mu_);
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {  // give the cache back to CUDA and try once more
    cudaGetLastError();
    free_cached_locked();
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError("cuda alloc: cudaMalloc of " + std::to_string(size) + " bytes failed: " + cudaGetErrorString(e));
  }
  ++malloc_count_;
  return p;
}

void CudaBackend::release(void* p, size_t bytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mem_mu_);
  free_[round_size(bytes)].push_back(p);
}

void CudaBackend::free_cached_locked() {
  CG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) CG_CUDA_CHECK(cudaFree(p));
    blocks.clear();
  }
}

int64_t CudaBackend::malloc_count() const {
  std::lock_guard<std::mutex> lock(mem_mu_);
  return malloc_count_;
}

// ---- copies ----------------------------------------------------------------------------

void CudaBackend::to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  CG_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::from_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  CG_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::fill(Tensor& t, double value) {
  const int64_t n = t.numel();
  if (n == 0) return;
  switch (t.dtype()) {
    case DType::F32:
      fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<float*>(t.raw()), n, static_cast<float>(value));
      break;
    case DType::F64: fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<double*>(t.raw()), n, value); break;
    case DType::I32:
      fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<int32_t*>(t.raw()), n,
                                                         static_cast<int32_t>(value));
      break;
    case DType::BF16:  // the bits of the nearest bf16, stored as they are
      fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<uint16_t*>(t.raw()), n,
                                                         bf16_bits(static_cast<float>(value)));
      break;
  }
  check_launch("fill");
}

}  // namespace cg
