// engine/cuda_stub.cpp — linked in builds without CUDA: every CUDA request fails with a
// clear message, and the CUDA facts of engine/cuda/cuda_api.h read as "none". The real
// backend is engine/cuda/.
#include <string>

#include "engine/backend.h"
#include "engine/cuda/cuda_api.h"

namespace cg {

Backend* cuda_backend(std::string* why) {
  if (why) *why = "device cuda: this chaingrad was built without CUDA (rebuild with `make CUDA=1` where nvcc exists)";
  return nullptr;
}

void set_tf32(bool) {}
int64_t cuda_malloc_count() { return 0; }
std::string cuda_device_name() { return std::string(); }

}  // namespace cg
