// engine/cpu/cpu_optim.cpp — optimizer updates on flat parameter buffers (PyTorch's
// AdamW and SGD formulas, so trajectories can be compared step for step).
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_parallel.h"

namespace cg {

void CpuBackend::adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                       double eps, double weight_decay, int64_t step) {
  dispatch_float(param.dtype(), "adamw", [&](auto tag) {
    using T = decltype(tag);
    T *p = param.data<T>(), *pm = m.data<T>(), *pv = v.data<T>();
    const T* g = grad.data<T>();
    const int64_t n = param.numel();
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    const T step_size = static_cast<T>(lr / bc1), sqrt_bc2 = static_cast<T>(std::sqrt(bc2));
    const T decay = static_cast<T>(1.0 - lr * weight_decay);
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), e = static_cast<T>(eps);
    cpu::parallel_range(n, cpu::kParElementwise, [&](int64_t lo, int64_t hi) {
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) {
        p[i] *= decay;
        pm[i] = b1 * pm[i] + (T(1) - b1) * g[i];
        pv[i] = b2 * pv[i] + (T(1) - b2) * g[i] * g[i];
        p[i] -= step_size * pm[i] / (std::sqrt(pv[i]) / sqrt_bc2 + e);
      }
    });
  });
}

void CpuBackend::sgd(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, double weight_decay) {
  dispatch_float(param.dtype(), "sgd", [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* b = momentum != 0 ? buf.data<T>() : nullptr;
    const int64_t n = param.numel();
    const T lr_t = static_cast<T>(lr), mom = static_cast<T>(momentum), wd = static_cast<T>(weight_decay);
    cpu::parallel_for(n, n, cpu::kParElementwise, [&](int64_t i) {
      T d = g[i] + wd * p[i];
      if (b) {
        b[i] = mom * b[i] + d;
        d = b[i];
      }
      p[i] -= lr_t * d;
    });
  });
}

}  // namespace cg
