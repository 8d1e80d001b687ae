// engine/cuda/cuda_backend.cu — creates the CUDA backend (one per process, on device 0):
// device detection with a clear "no CUDA device" reason, the stream and cuBLAS handle,
// the TF32 switch, error reporting, and the plain-C++ facts of engine/cuda/cuda_api.h.
// Kernels live in the other files of this folder.
#include <atomic>
#include <cstdlib>
#include <string>

#include "engine/cuda/cuda_backend.h"

namespace cg {

void cuda_fail(const char* call, const char* msg, const char* file, int line) {
  throw DeviceError(std::string("cuda: ") + call + " failed: " + msg + " (" + file + ":" + std::to_string(line) + ")");
}

// CG_CUDA_SYNC=1 makes every launch synchronous, so an error raised while a kernel runs
// (a bad address, say) names that kernel instead of surfacing at the next copy.
void check_launch(const char* kernel) {
  static const bool sync_each = [] {
    const char* v = std::getenv("CG_CUDA_SYNC");
    return v && *v && std::string(v) != "0";
  }();
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw DeviceError(std::string("cuda: kernel ") + kernel + " failed to launch: " + cudaGetErrorString(e));
  if (sync_each && (e = cudaDeviceSynchronize()) != cudaSuccess)
    throw DeviceError(std::string("cuda: kernel ") + kernel + " failed: " + cudaGetErrorString(e));
}

namespace {
std::atomic<bool> g_tf32{false};  // applies to the backend when it is created, and after
}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {
  CG_CUDA_CHECK(cudaSetDevice(device_));
  cudaDeviceProp prop{};
  CG_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  name_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
  CG_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CG_CUBLAS_CHECK(cublasCreate(&cublas_));
  CG_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  CG_CUBLAS_CHECK(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST));
  set_tf32(g_tf32.load());
}

void CudaBackend::set_tf32(bool on) {
  // Default math never lowers FP32 precision; TF32 tensor-op math is opt-in.
  CG_CUBLAS_CHECK(cublasSetMathMode(cublas_, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

void CudaBackend::synchronize() { CG_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

CudaBackend* cuda_backend_instance(std::string* why) {
  struct Probe {
    CudaBackend* backend = nullptr;
    std::string why;
  };
  // Created once; never destroyed (tensors may be released during static destruction,
  // and the CUDA runtime may already be gone then: release only touches the free lists).
  static const Probe probe = [] {
    Probe p;
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      cudaGetLastError();  // clear the (non-sticky) error
      p.why = std::string("no CUDA device: ") +
              (e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found no CUDA-capable device");
      return p;
    }
    try {
      p.backend = new CudaBackend(0);
    } catch (const Error& err) {
      p.why = std::string("no usable CUDA device: ") + err.what();
    }
    return p;
  }();
  if (!probe.backend && why) *why = probe.why;
  return probe.backend;
}

Backend* cuda_backend(std::string* why) { return cuda_backend_instance(why); }

void set_tf32(bool on) {
  g_tf32.store(on);
  std::string why;
  if (CudaBackend* b = cuda_backend_instance(&why)) b->set_tf32(on);
}

int64_t cuda_malloc_count() {
  std::string why;
  CudaBackend* b = cuda_backend_instance(&why);
  return b ? b->malloc_count() : 0;
}

std::string cuda_device_name() {
  std::string why;
  CudaBackend* b = cuda_backend_instance(&why);
  return b ? b->name() : std::string();
}

}  // namespace cg
