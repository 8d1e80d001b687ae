// engine/backend.cpp — picks the backend of a device; GEMM precision and thread-count control.
#include "engine/backend.h"

#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/cpu/cpu_backend.h"

namespace cg {

// Defined in engine/cuda/cuda_backend.cu when built with CUDA, else in
// engine/cuda_stub.cpp. Returns null and sets *why when unavailable.
Backend* cuda_backend(std::string* why);

Backend& backend_for(Device d) {
  // Never destroyed: tensors held by other static objects may be released at exit.
  static CpuBackend* cpu = new CpuBackend;
  if (d == Device::CPU) return *cpu;
  std::string why;
  Backend* b = cuda_backend(&why);
  if (!b) throw DeviceError(why);
  return *b;
}

bool cuda_available() {
  std::string why;
  return cuda_backend(&why) != nullptr;
}

static std::atomic<GemmPrecision> g_precision{GemmPrecision::F32};
void set_gemm_precision(GemmPrecision p) { g_precision.store(p, std::memory_order_relaxed); }
GemmPrecision gemm_precision() { return g_precision.load(std::memory_order_relaxed); }

static int g_threads = 0;

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int num_threads() {
  if (g_threads > 0) return g_threads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace cg
