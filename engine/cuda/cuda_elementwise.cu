// engine/cuda/cuda_elementwise.cu — CUDA kernels for broadcasting binary ops, sums to a
// shape, unary ops and their derivatives, axpy, the sum of squares, strided box copies
// and dropout. The formulas are shared with the CPU (engine/elementwise_math.h); every loop
// is grid-stride with 64-bit indices, and every reduction runs in a fixed order (no atomics).
#include "engine/cuda/cuda_backend.h"
#include "engine/elementwise_math.h"

namespace cg {
namespace {

struct Dims4 {
  int64_t v[4];
};

#define CG_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

// The broadcast strides of engine/elementwise_math.h, as a struct a kernel takes by value.
Dims4 bstrides(const Shape& s, const std::array<int64_t, 4>& out) {
  const auto st = broadcast_strides(s, out);
  return Dims4{{st[0], st[1], st[2], st[3]}};
}

// The math functions of the shared formulas (engine/elementwise_math.h) on the device.
struct DeviceMath {
  template <class T>
  __device__ static T exp(T x) {
    return d_exp(x);
  }
  template <class T>
  __device__ static T fast_exp(T x) {
    return d_exp(x);
  }
  template <class T>
  __device__ static T log(T x) {
    return d_log(x);
  }
  template <class T>
  __device__ static T sqrt(T x) {
    return d_sqrt(x);
  }
  template <class T>
  __device__ static T tanh(T x) {
    return d_tanh(x);
  }
  template <class T>
  __device__ static T pow(T x, T y) {
    return d_pow(x, y);
  }
};

// out[i] = a[i] ∘ b[i]  (same shapes)
template <class T>
__global__ void binary_flat_kernel(BinaryOp op, const T* a, const T* b, T* out, int64_t n) {
  CG_GRID_STRIDE(i, n) out[i] = apply_binary(op, a[i], b[i]);
}

// out[i0,i1,i2,i3] = a[i·sa] ∘ b[i·sb]  (o = out's padded shape; sa, sb broadcast strides)
template <class T>
__global__ void binary_bcast_kernel(BinaryOp op, const T* a, Dims4 sa, const T* b, Dims4 sb, T* out, Dims4 o,
                                    int64_t n) {
  CG_GRID_STRIDE(i, n) {
    const int64_t i3 = i % o.v[3], i2 = (i / o.v[3]) % o.v[2], i1 = (i / (o.v[3] * o.v[2])) % o.v[1];
    const int64_t i0 = i / (o.v[3] * o.v[2] * o.v[1]);
    const T va = a[i0 * sa.v[0] + i1 * sa.v[1] + i2 * sa.v[2] + i3 * sa.v[3]];
    const T vb = b[i0 * sb.v[0] + i1 * sb.v[1] + i2 * sb.v[2] + i3 * sb.v[3]];
    out[i] = apply_binary(op, va, vb);
  }
}

// sum_to: output i (index idx in os) sums x[idx·st + j·st] over the reduced box red.
struct SumToArgs {
  Dims4 os, st, red;
  int64_t nout, nred;
};

__device__ inline int64_t sum_to_base(const SumToArgs& p, int64_t i) {
  int64_t r = i, off = 0;
  for (int d = 3; d >= 0; --d) {
    off += (r % p.os.v[d]) * p.st.v[d];
    r /= p.os.v[d];
  }
  return off;
}

// One thread per output, its inputs summed in index order (as the CPU does).
template <class T>
__global__ void sum_to_thread_kernel(const T* x, T* out, SumToArgs p) {
  CG_GRID_STRIDE(i, p.nout) {
    const T* base = x + sum_to_base(p, i);
    double s = 0;
    for (int64_t a = 0; a < p.red.v[0]; ++a)
      for (int64_t b = 0; b < p.red.v[1]; ++b)
        for (int64_t c = 0; c < p.red.v[2]; ++c) {
          const T* row = base + a * p.st.v[0] + b * p.st.v[1] + c * p.st.v[2];
          for (int64_t e = 0; e < p.red.v[3]; ++e) s += row[e * p.st.v[3]];
        }
    out[i] = static_cast<T>(s);
  }
}

// One block per output: thread t sums reduced elements t, t + blockDim, … then a block tree.
template <class T>
__global__ void sum_to_block_kernel(const T* x, T* out, SumToArgs p) {
  __shared__ double red[32];
  for (int64_t i = blockIdx.x; i < p.nout; i += gridDim.x) {
    const T* base = x + sum_to_base(p, i);
    double s = 0;
    for (int64_t j = threadIdx.x; j < p.nred; j += blockDim.x) {
      const int64_t e = j % p.red.v[3], c = (j / p.red.v[3]) % p.red.v[2];
      const int64_t b = (j / (p.red.v[3] * p.red.v[2])) % p.red.v[1], a = j / (p.red.v[3] * p.red.v[2] * p.red.v[1]);
      s += base[a * p.st.v[0] + b * p.st.v[1] + c * p.st.v[2] + e * p.st.v[3]];
    }
    s = block_reduce(s, SumOp{}, 0.0, red);
    if (threadIdx.x == 0) out[i] = static_cast<T>(s);
  }
}

template <class T>
__global__ void unary_kernel(UnaryOp op, const T* x, T* y, int64_t n, T s) {
  CG_GRID_STRIDE(i, n) y[i] = apply_unary<DeviceMath>(op, x[i], s);
}

template <class T>
__global__ void unary_backward_kernel(UnaryOp op, const T* x, const T* gy, T* gx, int64_t n, T s) {
  CG_GRID_STRIDE(i, n) gx[i] = unary_deriv<DeviceMath>(op, x[i], s) * gy[i];
}

template <class T>
__global__ void axpy_kernel(T alpha, const T* x, T* y, int64_t n) {
  CG_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

constexpr int kSqThreads = 256;
constexpr int64_t kSqChunk = 4096;  // elements per partial sum: a function of n only

// part[c] = Σ x² over chunk c (double), one block per chunk.
template <class T>
__global__ void sum_squares_partial_kernel(const T* x, int64_t n, double* part) {
  __shared__ double red[32];
  const int64_t c = blockIdx.x;
  const int64_t end = min(n, (c + 1) * kSqChunk);
  double s = 0;
  for (int64_t i = c * kSqChunk + threadIdx.x; i < end; i += blockDim.x) s += static_cast<double>(x[i]) * x[i];
  s = block_reduce(s, SumOp{}, 0.0, red);
  if (threadIdx.x == 0) part[c] = s;
}

// out[0] = Σ part (one block, fixed order)
__global__ void sum_partials_kernel(const double* part, int64_t n, double* out) {
  __shared__ double red[32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  s = block_reduce(s, SumOp{}, 0.0, red);
  if (threadIdx.x == 0) out[0] = s;
}

// dst[i·ds] (+)= src[i·ss] over the 4-d box sh
template <class T>
__global__ void copy_box_kernel(const T* src, Dims4 ss, T* dst, Dims4 ds, Dims4 sh, int64_t n, bool accumulate) {
  CG_GRID_STRIDE(i, n) {
    const int64_t i3 = i % sh.v[3], i2 = (i / sh.v[3]) % sh.v[2], i1 = (i / (sh.v[3] * sh.v[2])) % sh.v[1];
    const int64_t i0 = i / (sh.v[3] * sh.v[2] * sh.v[1]);
    const T v = src[i0 * ss.v[0] + i1 * ss.v[1] + i2 * ss.v[2] + i3 * ss.v[3]];
    T* d = dst + i0 * ds.v[0] + i1 * ds.v[1] + i2 * ds.v[2] + i3 * ds.v[3];
    if (accumulate) *d += v;
    else *d = v;
  }
}

template <class T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, double p, uint64_t seed, T scale) {
  CG_GRID_STRIDE(i, n) y[i] = dropout_keep(seed, static_cast<uint64_t>(i), p) ? x[i] * scale : T(0);
}

}  // namespace

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  cuda_dispatch_float(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = out.numel();
    if (n == 0) return;
    const T* pa = static_cast<const T*>(a.raw());
    const T* pb = static_cast<const T*>(b.raw());
    T* po = static_cast<T*>(out.raw());
    if (a.shape() == out.shape() && b.shape() == out.shape()) {
      binary_flat_kernel<<<grid_for(n), kThreads, 0, stream_>>>(op, pa, pb, po, n);
    } else {
      const auto o = out.shape().padded();
      const Dims4 od{{o[0], o[1], o[2], o[3]}};
      binary_bcast_kernel<<<grid_for(n), kThreads, 0, stream_>>>(op, pa, bstrides(a.shape(), o), pb,
                                                                 bstrides(b.shape(), o), po, od, n);
    }
    check_launch("binary");
  });
}

void CudaBackend::sum_to(const Tensor& x, Tensor& out) {
  cuda_dispatch_float(x.dtype(), "sum_to", [&](auto tag) {
    using T = decltype(tag);
    const auto xs = x.shape().padded();
    const auto os = out.shape().padded();
    SumToArgs p{};
    int64_t acc = 1;
    for (int d = 3; d >= 0; --d) {
      p.st.v[d] = acc;
      acc *= xs[d];
    }
    p.nred = 1;
    for (int d = 0; d < 4; ++d) {
      p.os.v[d] = os[d];
      p.red.v[d] = (os[d] == 1) ? xs[d] : 1;
      p.nred *= p.red.v[d];
    }
    p.nout = out.numel();
    if (p.nout == 0) return;
    const T* px = static_cast<const T*>(x.raw());
    T* po = static_cast<T*>(out.raw());
    if (p.nred <= 32) sum_to_thread_kernel<<<grid_for(p.nout), kThreads, 0, stream_>>>(px, po, p);
    else sum_to_block_kernel<<<grid_rows(p.nout), kThreads, 0, stream_>>>(px, po, p);
    check_launch("sum_to");
  });
}

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& y, double s) {
  cuda_dispatch_float(x.dtype(), "unary", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = x.numel();
    if (n == 0) return;
    unary_kernel<<<grid_for(n), kThreads, 0, stream_>>>(op, static_cast<const T*>(x.raw()), static_cast<T*>(y.raw()), n,
                                                        static_cast<T>(s));
    check_launch("unary");
  });
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& gy, Tensor& gx, double s) {
  cuda_dispatch_float(x.dtype(), "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = x.numel();
    if (n == 0) return;
    unary_backward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(op, static_cast<const T*>(x.raw()),
                                                                 static_cast<const T*>(gy.raw()),
                                                                 static_cast<T*>(gx.raw()), n, static_cast<T>(s));
    check_launch("unary_backward");
  });
}

void CudaBackend::axpy(double alpha, const Tensor& x, Tensor& y) {
  cuda_dispatch_float(x.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = x.numel();
    if (n == 0) return;
    axpy_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<T>(alpha), static_cast<const T*>(x.raw()),
                                                       static_cast<T*>(y.raw()), n);
    check_launch("axpy");
  });
}

double CudaBackend::sum_squares(const Tensor& x) {
  double total = 0;
  cuda_dispatch_float(x.dtype(), "sum_squares", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = x.numel();
    if (n == 0) return;
    const int64_t nchunks = (n + kSqChunk - 1) / kSqChunk;
    if (nchunks > INT32_MAX) throw DeviceError("cuda sum_squares: " + x.desc() + " is too large");
    Scratch part(*this, static_cast<size_t>(nchunks + 1) * sizeof(double));
    double* pp = part.as<double>();
    sum_squares_partial_kernel<<<static_cast<unsigned>(nchunks), kSqThreads, 0, stream_>>>(static_cast<const T*>(
                                                                                               x.raw()),
                                                                                           n, pp);
    check_launch("sum_squares");
    sum_partials_kernel<<<1, kSqThreads, 0, stream_>>>(pp, nchunks, pp + nchunks);
    check_launch("sum_squares (partials)");
    to_host(&total, pp + nchunks, sizeof(double));
  });
  return total;
}

void CudaBackend::copy_box(DType dt, const void* src, const int64_t ss[4], void* dst, const int64_t ds[4],
                           const int64_t sh[4], bool accumulate) {
  const Dims4 s4{{ss[0], ss[1], ss[2], ss[3]}}, d4{{ds[0], ds[1], ds[2], ds[3]}}, b4{{sh[0], sh[1], sh[2], sh[3]}};
  const int64_t n = sh[0] * sh[1] * sh[2] * sh[3];
  if (n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    copy_box_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<const T*>(src), s4, static_cast<T*>(dst), d4, b4,
                                                           n, accumulate);
    check_launch("copy_box");
  };
  if (dt == DType::I32) {
    if (accumulate) throw DTypeError("cuda copy_box: cannot accumulate i32");
    run(int32_t{});
  } else {
    cuda_dispatch_float(dt, "copy_box", run);
  }
}

void CudaBackend::dropout(const Tensor& x, Tensor& y, double p, uint64_t seed) {
  cuda_dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = x.numel();
    if (n == 0) return;
    dropout_kernel<<<grid_for(n), kThreads, 0, stream_>>>(static_cast<const T*>(x.raw()), static_cast<T*>(y.raw()), n,
                                                          p, seed, static_cast<T>(1.0 / (1.0 - p)));
    check_launch("dropout");
  });
}

}  // namespace cg
