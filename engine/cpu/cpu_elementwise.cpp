// engine/cpu/cpu_elementwise.cpp — broadcasting binary ops, reductions to a shape,
// unary ops and their derivatives, axpy, strided box copies.
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_parallel.h"
#include "engine/cpu/cpu_math.h"
#include "engine/elementwise_math.h"

namespace cg {
namespace {

// The math functions of the shared formulas (engine/elementwise_math.h) on the host.
struct HostMath {
  template <class T>
  static T exp(T x) {
    return std::exp(x);
  }
  template <class T>
  static T fast_exp(T x) {
    return cpu::fast_exp(x);
  }
  template <class T>
  static T log(T x) {
    return std::log(x);
  }
  template <class T>
  static T sqrt(T x) {
    return std::sqrt(x);
  }
  template <class T>
  static T tanh(T x) {
    return std::tanh(x);
  }
  template <class T>
  static T pow(T x, T y) {
    return std::pow(x, y);
  }
};

}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    if (a.shape() == out.shape() && b.shape() == out.shape()) {
      const int64_t n = out.numel();
      // One loop per op so each vectorises (out may be a or b itself: element i reads
      // only element i, so that is safe).
      switch (op) {
        case BinaryOp::Add:
          cpu::parallel_range(n, cpu::kParElementwise, [&](int64_t b, int64_t e) {
#pragma omp simd
            for (int64_t i = b; i < e; ++i) po[i] = pa[i] + pb[i];
          });
          break;
        case BinaryOp::Sub:
          cpu::parallel_range(n, cpu::kParElementwise, [&](int64_t b, int64_t e) {
#pragma omp simd
            for (int64_t i = b; i < e; ++i) po[i] = pa[i] - pb[i];
          });
          break;
        case BinaryOp::Mul:
          cpu::parallel_range(n, cpu::kParElementwise, [&](int64_t b, int64_t e) {
#pragma omp simd
            for (int64_t i = b; i < e; ++i) po[i] = pa[i] * pb[i];
          });
          break;
        case BinaryOp::Div:
          cpu::parallel_range(n, cpu::kParElementwise, [&](int64_t b, int64_t e) {
#pragma omp simd
            for (int64_t i = b; i < e; ++i) po[i] = pa[i] / pb[i];
          });
          break;
      }
      return;
    }
    const auto o = out.shape().padded();
    const auto sa = broadcast_strides(a.shape(), o), sb = broadcast_strides(b.shape(), o);
    const int64_t outer = o[0] * o[1];
    cpu::parallel_for(outer, out.numel(), cpu::kParElementwise, [&](int64_t i01) {
      const int64_t i0 = i01 / o[1], i1 = i01 % o[1];
      T* dst = po + i01 * o[2] * o[3];
      for (int64_t i2 = 0; i2 < o[2]; ++i2) {
        const T* ra = pa + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
        const T* rb = pb + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
        for (int64_t i3 = 0; i3 < o[3]; ++i3) dst[i2 * o[3] + i3] = apply_binary(op, ra[i3 * sa[3]], rb[i3 * sb[3]]);
      }
    });
  });
}

void CpuBackend::sum_to(const Tensor& x, Tensor& out) {
  dispatch_float(x.dtype(), "sum_to", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const auto xs = x.shape().padded();
    const auto os = out.shape().padded();
    // Strides of x; for each dim, out either keeps it (os == xs) or reduces it (os == 1).
    std::array<int64_t, 4> st{};
    int64_t acc = 1;
    for (int d = 3; d >= 0; --d) {
      st[d] = acc;
      acc *= xs[d];
    }
    std::array<int64_t, 4> red{};  // extent to sum over per dim
    for (int d = 0; d < 4; ++d) red[d] = (os[d] == 1) ? xs[d] : 1;
    const int64_t n = out.numel();
    // Each output sums its inputs in index order: deterministic.
    cpu::parallel_for(n, x.numel(), cpu::kParElementwise, [&](int64_t i) {
      int64_t r = i;
      std::array<int64_t, 4> idx{};
      for (int d = 3; d >= 0; --d) {
        idx[d] = r % os[d];
        r /= os[d];
      }
      const T* base = px + idx[0] * st[0] + idx[1] * st[1] + idx[2] * st[2] + idx[3] * st[3];
      double s = 0;
      for (int64_t a = 0; a < red[0]; ++a)
        for (int64_t b = 0; b < red[1]; ++b)
          for (int64_t c = 0; c < red[2]; ++c) {
            const T* row = base + a * st[0] + b * st[1] + c * st[2];
            for (int64_t e = 0; e < red[3]; ++e) s += row[e];
          }
      po[i] = static_cast<T>(s);
    });
  });
}

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& y, double s) {
  dispatch_float(x.dtype(), "unary", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t n = x.numel();
    const T ts = static_cast<T>(s);
    if (op == UnaryOp::Silu) {  // the hot one (SwiGLU): a loop of its own so it vectorises
      cpu::parallel_range(n, cpu::kParRowwise, [&](int64_t b, int64_t e) {
#pragma omp simd
        for (int64_t i = b; i < e; ++i) py[i] = px[i] / (T(1) + cpu::fast_exp(-px[i]));
      });
      return;
    }
    cpu::parallel_range(n, cpu::kParRowwise, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) py[i] = apply_unary<HostMath>(op, px[i], ts);
    });
  });
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& gy, Tensor& gx, double s) {
  dispatch_float(x.dtype(), "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = gy.data<T>();
    T* pgx = gx.data<T>();
    const int64_t n = x.numel();
    const T ts = static_cast<T>(s);
    if (op == UnaryOp::Silu) {
      cpu::parallel_range(n, cpu::kParRowwise, [&](int64_t b, int64_t e) {
#pragma omp simd
        for (int64_t i = b; i < e; ++i) {
          const T sg = T(1) / (T(1) + cpu::fast_exp(-px[i]));
          pgx[i] = sg * (T(1) + px[i] * (T(1) - sg)) * pg[i];
        }
      });
      return;
    }
    cpu::parallel_range(n, cpu::kParRowwise, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) pgx[i] = unary_deriv<HostMath>(op, px[i], ts) * pg[i];
    });
  });
}

void CpuBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  dispatch_float(x.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t n = x.numel();
    const T a = static_cast<T>(alpha);
    cpu::parallel_range(n, cpu::kParElementwise, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) py[i] += a * px[i];
    });
  });
}

double CpuBackend::sum_squares(const Tensor& x) {
  double total = 0;
  dispatch_float(x.dtype(), "sum_squares", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const int64_t n = x.numel();
    constexpr int64_t kChunk = 4096;  // fixed chunks, summed in order: thread-count independent
    const int64_t nchunks = (n + kChunk - 1) / kChunk;
    double* part = cpu::scratch<double>(0, static_cast<size_t>(nchunks));
    cpu::parallel_for(nchunks, n, 65536, [&](int64_t c) {
      double s = 0;
      const int64_t end = std::min(n, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < end; ++i) s += static_cast<double>(px[i]) * px[i];
      part[static_cast<size_t>(c)] = s;
    });
    for (int64_t c = 0; c < nchunks; ++c) total += part[c];
  });
  return total;
}

void CpuBackend::copy_box(DType dt, const void* src, const int64_t ss[4], void* dst, const int64_t ds[4],
                          const int64_t sh[4], bool accumulate) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* ps = static_cast<const T*>(src);
    T* pd = static_cast<T*>(dst);
    const int64_t outer = sh[0] * sh[1];
    cpu::parallel_for(outer, outer * sh[2] * sh[3], cpu::kParElementwise, [&](int64_t i01) {
      const int64_t i0 = i01 / sh[1], i1 = i01 % sh[1];
      for (int64_t i2 = 0; i2 < sh[2]; ++i2) {
        const T* s = ps + i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
        T* d = pd + i0 * ds[0] + i1 * ds[1] + i2 * ds[2];
        if (accumulate)
          for (int64_t i3 = 0; i3 < sh[3]; ++i3) d[i3 * ds[3]] += s[i3 * ss[3]];
        else
          for (int64_t i3 = 0; i3 < sh[3]; ++i3) d[i3 * ds[3]] = s[i3 * ss[3]];
      }
    });
  };
  if (dt == DType::I32) {
    if (accumulate) throw DTypeError("copy_box: cannot accumulate i32");
    run(int32_t{});
  } else {
    dispatch_float(dt, "copy_box", run);
  }
}

void CpuBackend::dropout(const Tensor& x, Tensor& y, double p, uint64_t seed) {
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t n = x.numel();
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    cpu::parallel_for(n, n, cpu::kParRowwise, [&](int64_t i) {
      py[i] = dropout_keep(seed, static_cast<uint64_t>(i), p) ? px[i] * scale : T(0);
    });
  });
}

}  // namespace cg
