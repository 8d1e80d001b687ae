// engine/cuda/cuda_optim.cu — AdamW and SGD updates on flat parameter buffers, one thread
// per element, with the formulas of engine/cpu/cpu_optim.cpp (PyTorch's). The step
// scalars are computed on the host in double, exactly as the CPU backend does.
#include <cmath>

#include "engine/cuda/cuda_backend.h"

namespace cg {
namespace {

#define CG_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

// p ← p·decay;  m ← b1·m + (1−b1)·g;  v ← b2·v + (1−b2)·g²;  p ← p − step·m / (√v/√bc2 + eps)
template <class T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, T decay, T b1, T b2, T step_size, T sqrt_bc2,
                             T eps) {
  CG_GRID_STRIDE(i, n) {
    const T gi = g[i];
    T pi = p[i] * decay;
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    pi -= step_size * mi / (d_sqrt(vi) / sqrt_bc2 + eps);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

// d = g + wd·p;  buf ← mom·buf + d (when buf);  p ← p − lr·d
template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, T lr, T mom, T wd) {
  CG_GRID_STRIDE(i, n) {
    T d = g[i] + wd * p[i];
    if (buf) {
      buf[i] = mom * buf[i] + d;
      d = buf[i];
    }
    p[i] -= lr * d;
  }
}

}  // namespace

void CudaBackend::adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                        double eps, double weight_decay, int64_t step) {
  cuda_dispatch_float(param.dtype(), "adamw", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = param.numel();
    if (n == 0) return;
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    adamw_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<T*>(param.raw()), static_cast<const T*>(grad.raw()),
                                                        static_cast<T*>(m.raw()), static_cast<T*>(v.raw()), n,
                                                        static_cast<T>(1.0 - lr * weight_decay), static_cast<T>(beta1),
                                                        static_cast<T>(beta2), static_cast<T>(lr / bc1),
                                                        static_cast<T>(std::sqrt(bc2)), static_cast<T>(eps));
    check_launch("adamw");
  });
}

void CudaBackend::sgd(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, double weight_decay) {
  cuda_dispatch_float(param.dtype(), "sgd", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = param.numel();
    if (n == 0) return;
    T* pb = momentum != 0 ? static_cast<T*>(buf.raw()) : nullptr;
    sgd_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<T*>(param.raw()), static_cast<const T*>(grad.raw()),
                                                      pb, n, static_cast<T>(lr), static_cast<T>(momentum),
                                                      static_cast<T>(weight_decay));
    check_launch("sgd");
  });
}

}  // namespace cg
