// engine/cuda/cuda_api.h — the few CUDA facts tests, tools and benchmarks may ask for,
// as plain C++ (no CUDA headers), so callers compile in every build. Defined in
// engine/cuda/cuda_backend.cu, or in engine/cuda_stub.cpp for builds without CUDA.
// (TF32 is switched with cg::set_tf32 in engine/backend.h.)
#pragma once
#include <cstdint>
#include <string>

namespace cg {

// How many cudaMalloc calls the caching allocator has made so far (0 without CUDA). After
// warm-up a repeated training step should not add to it.
int64_t cuda_malloc_count();
// The device's name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)"; empty
// when there is no CUDA device.
std::string cuda_device_name();

}  // namespace cg
