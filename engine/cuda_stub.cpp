// engine/cuda_stub.cpp — linked in builds without CUDA: every CUDA request fails with a
// clear message. The real backend is engine/cuda/.
#include <string>

#include "engine/backend.h"

namespace cg {

Backend* cuda_backend(std::string* why) {
  if (why) *why = "device cuda: this chaingrad was built without CUDA (rebuild with `make CUDA=1` where nvcc exists)";
  return nullptr;
}

}  // namespace cg
