// engine/cuda/cuda_nn.cu — CUDA kernels for the row-wise neural-net entries: softmax,
// RMSNorm, LayerNorm, RoPE, embedding, cross-entropy. Same formulas as
// engine/cpu/cpu_nn.cpp. Row kernels give one block to a row (grid-stride over rows) and
// reduce with block_reduce, whose order depends on the row length only. Cross-row sums
// (norm weight gradients) use fixed 64-row partials summed in block order, and the
// embedding gradient adds each table row's tokens in token order: no atomics anywhere.
#include "engine/cuda/cuda_backend.h"

namespace cg {
namespace {

constexpr int64_t kRowBlock = 64;  // rows per partial sum in cross-row reductions (as the CPU)

#define CG_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)
#define CG_ROW_LOOP(r, rows) for (int64_t r = blockIdx.x; r < (rows); r += gridDim.x)
#define CG_COL_LOOP(c, n) for (int64_t c = threadIdx.x; c < (n); c += blockDim.x)

// ---- softmax ---------------------------------------------------------------------------

// y[r,:] = softmax(x[r,:valid]) (or log-softmax), masked columns 0 (or −∞);
// valid = min(cols, r % tq + off + 1) when tq > 0.
template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t rows, int64_t cols, bool log, int64_t tq, int64_t off) {
  __shared__ T red[32];
  const T inf = d_inf<T>();
  CG_ROW_LOOP(r, rows) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const int64_t valid = tq > 0 ? (r % tq + off + 1 < cols ? r % tq + off + 1 : cols) : cols;
    T mx = -inf;
    CG_COL_LOOP(c, valid) mx = xr[c] > mx ? xr[c] : mx;
    mx = block_reduce(mx, MaxOp{}, -inf, red);
    T sum = 0;
    CG_COL_LOOP(c, valid) sum += d_exp(xr[c] - mx);
    sum = block_reduce(sum, SumOp{}, T(0), red);
    if (log) {
      const T lse = d_log(sum);
      CG_COL_LOOP(c, cols) yr[c] = c < valid ? xr[c] - mx - lse : -inf;
    } else {
      const T inv = T(1) / sum;
      CG_COL_LOOP(c, cols) yr[c] = c < valid ? d_exp(xr[c] - mx) * inv : T(0);
    }
  }
}

// gx = y·(gy − Σ gy·y); log: gx = gy − e^y·Σ gy over unmasked columns (0 where y = −∞)
template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) {
  __shared__ T red[32];
  const T inf = d_inf<T>();
  CG_ROW_LOOP(r, rows) {
    const T* yr = y + r * cols;
    const T* gr = gy + r * cols;
    T* out = gx + r * cols;
    T s = 0;
    if (log) {
      CG_COL_LOOP(c, cols) s += gr[c] * (yr[c] == -inf ? T(0) : T(1));
    } else {
      CG_COL_LOOP(c, cols) s += gr[c] * yr[c];
    }
    s = block_reduce(s, SumOp{}, T(0), red);
    if (log) {
      CG_COL_LOOP(c, cols) out[c] = yr[c] == -inf ? T(0) : gr[c] - d_exp(yr[c]) * s;
    } else {
      CG_COL_LOOP(c, cols) out[c] = yr[c] * (gr[c] - s);
    }
  }
}

// ---- norms -----------------------------------------------------------------------------

// rstd[r] = 1/√(mean(x[r]²) + eps);  y[r,j] = x[r,j]·rstd[r]·w[j]
template <class T>
__global__ void rmsnorm_kernel(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t d, T eps) {
  __shared__ T red[32];
  CG_ROW_LOOP(r, rows) {
    const T* xr = x + r * d;
    T ss = 0;
    CG_COL_LOOP(j, d) ss += xr[j] * xr[j];
    ss = block_reduce(ss, SumOp{}, T(0), red);
    const T rs = T(1) / d_sqrt(ss / T(d) + eps);
    if (threadIdx.x == 0) rstd[r] = rs;
    CG_COL_LOOP(j, d) y[r * d + j] = xr[j] * rs * w[j];
  }
}

// gx[r,j] = rs·w_j·g_j − rs³/d · x_j · Σ_k w_k g_k x_k
template <class T>
__global__ void rmsnorm_backward_kernel(const T* x, const T* w, const T* rstd, const T* gy, T* gx, int64_t rows,
                                        int64_t d) {
  __shared__ T red[32];
  CG_ROW_LOOP(r, rows) {
    const T* xr = x + r * d;
    const T* gr = gy + r * d;
    const T rs = rstd[r];
    T dot = 0;
    CG_COL_LOOP(j, d) dot += w[j] * gr[j] * xr[j];
    dot = block_reduce(dot, SumOp{}, T(0), red);
    const T c = rs * rs * rs * dot / T(d);
    CG_COL_LOOP(j, d) gx[r * d + j] = rs * w[j] * gr[j] - c * xr[j];
  }
}

// part[b,j] = Σ_{r in row block b} g[r,j]·x[r,j]·rstd[r]   (double, rows in order)
template <class T>
__global__ void rmsnorm_gw_partial_kernel(const T* x, const T* rstd, const T* gy, int64_t rows, int64_t d, int64_t nb,
                                          double* part) {
  CG_GRID_STRIDE(i, nb * d) {
    const int64_t b = i / d, j = i % d;
    const int64_t end = (b + 1) * kRowBlock < rows ? (b + 1) * kRowBlock : rows;
    double s = 0;
    for (int64_t r = b * kRowBlock; r < end; ++r) s += gy[r * d + j] * x[r * d + j] * rstd[r];
    part[i] = s;
  }
}

// mean[r], rstd[r] = 1/√(var + eps);  y = (x − mean)·rstd·w + b
template <class T>
__global__ void layernorm_kernel(const T* x, const T* w, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t d,
                                 T eps) {
  __shared__ T red[32];
  CG_ROW_LOOP(r, rows) {
    const T* xr = x + r * d;
    T mu = 0;
    CG_COL_LOOP(j, d) mu += xr[j];
    mu = block_reduce(mu, SumOp{}, T(0), red) / T(d);
    T var = 0;
    CG_COL_LOOP(j, d) var += (xr[j] - mu) * (xr[j] - mu);
    var = block_reduce(var, SumOp{}, T(0), red);
    const T rs = T(1) / d_sqrt(var / T(d) + eps);
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    CG_COL_LOOP(j, d) y[r * d + j] = (xr[j] - mu) * rs * w[j] + bias[j];
  }
}

// g = gy·w;  gx = rs·(g − mean(g) − x̂·mean(g·x̂)),  x̂ = (x − mean)·rs
template <class T>
__global__ void layernorm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx,
                                          int64_t rows, int64_t d) {
  __shared__ T red[32];
  CG_ROW_LOOP(r, rows) {
    const T* xr = x + r * d;
    const T* gr = gy + r * d;
    const T mu = mean[r], rs = rstd[r];
    T mg = 0, mgx = 0;
    CG_COL_LOOP(j, d) {
      const T g = gr[j] * w[j];
      mg += g;
      mgx += g * (xr[j] - mu) * rs;
    }
    mg = block_reduce(mg, SumOp{}, T(0), red) / T(d);
    mgx = block_reduce(mgx, SumOp{}, T(0), red) / T(d);
    CG_COL_LOOP(j, d) gx[r * d + j] = rs * (gr[j] * w[j] - mg - (xr[j] - mu) * rs * mgx);
  }
}

// pw[b,j] = Σ g·(x − mean)·rstd,  pb[b,j] = Σ g over the rows of block b (double, in order)
template <class T>
__global__ void layernorm_wb_partial_kernel(const T* x, const T* mean, const T* rstd, const T* gy, int64_t rows,
                                            int64_t d, int64_t nb, double* pw, double* pb) {
  CG_GRID_STRIDE(i, nb * d) {
    const int64_t b = i / d, j = i % d;
    const int64_t end = (b + 1) * kRowBlock < rows ? (b + 1) * kRowBlock : rows;
    double sw = 0, sb = 0;
    for (int64_t r = b * kRowBlock; r < end; ++r) {
      sw += gy[r * d + j] * (x[r * d + j] - mean[r]) * rstd[r];
      sb += gy[r * d + j];
    }
    if (pw) pw[i] = sw;
    if (pb) pb[i] = sb;
  }
}

// out[j] += Σ_b part[b,j]  (blocks in order)
template <class T>
__global__ void add_partials_kernel(const double* part, int64_t nb, int64_t d, T* out) {
  CG_GRID_STRIDE(j, d) {
    double s = 0;
    for (int64_t b = 0; b < nb; ++b) s += part[b * d + j];
    out[j] += static_cast<T>(s);
  }
}

// ---- RoPE, embedding, cross-entropy ------------------------------------------------------

// One thread per rotated pair (i, i + D/2) of x[B,T,H,D]; angle (pos_offset + t)·θ^(−2i/D),
// the inverse frequency computed in the working type as the CPU does.
template <class T>
__global__ void rope_kernel(const T* x, T* y, int64_t Tn, int64_t H, int64_t D, int64_t pos_offset,
                            const int32_t* positions, T theta, bool inverse, int64_t npairs) {
  const int64_t half = D / 2;
  CG_GRID_STRIDE(q, npairs) {
    const int64_t i = q % half, row = q / half;  // row indexes (b, t, h)
    const int64_t bt = row / H, t = bt % Tn;
    const T inv_freq = T(1) / d_pow(theta, T(2 * i) / T(D));
    const T a = T(positions ? int64_t{positions[bt]} : pos_offset + t) * inv_freq;
    const T c = d_cos(a), s = inverse ? -d_sin(a) : d_sin(a);
    const T x1 = x[row * D + i], x2 = x[row * D + i + half];
    y[row * D + i] = x1 * c - x2 * s;
    y[row * D + i + half] = x2 * c + x1 * s;
  }
}

// out[n,j] = table[ids[n], j]
template <class T>
__global__ void embedding_kernel(const T* table, const int32_t* ids, T* out, int64_t n, int64_t d) {
  CG_GRID_STRIDE(k, n * d) out[k] = table[static_cast<int64_t>(ids[k / d]) * d + k % d];
}

// One thread per (segment, column): a segment is one table row and the tokens that hit it,
// listed in token order (perm[start[s] .. start[s+1])), so each element adds its
// gradients in the CPU's order. Layout of idx: perm[n], start[nseg + 1], row[nseg].
template <class T>
__global__ void embedding_backward_kernel(const int32_t* perm, const int32_t* start, const int32_t* row, const T* gy,
                                          T* gtable, int64_t nseg, int64_t d) {
  CG_GRID_STRIDE(k, nseg * d) {
    const int64_t s = k / d, j = k % d;
    T* dst = gtable + static_cast<int64_t>(row[s]) * d + j;
    T acc = *dst;
    for (int32_t p = start[s]; p < start[s + 1]; ++p) acc += gy[static_cast<int64_t>(perm[p]) * d + j];
    *dst = acc;
  }
}

// lse[r] = logsumexp(logits[r]);  loss[r] = lse[r] − logits[r, t_r]  (0 when t_r < 0)
template <class T>
__global__ void cross_entropy_kernel(const T* logits, const int32_t* targets, T* loss, T* lse, int64_t rows,
                                     int64_t v) {
  __shared__ T red[32];
  const T inf = d_inf<T>();
  CG_ROW_LOOP(r, rows) {
    const T* lr = logits + r * v;
    T mx = -inf;
    CG_COL_LOOP(c, v) mx = lr[c] > mx ? lr[c] : mx;
    mx = block_reduce(mx, MaxOp{}, -inf, red);
    T s = 0;
    CG_COL_LOOP(c, v) s += d_exp(lr[c] - mx);
    s = block_reduce(s, SumOp{}, T(0), red);
    if (threadIdx.x == 0) {
      const T l = mx + d_log(s);
      const int32_t t = targets[r];
      lse[r] = l;
      loss[r] = t < 0 ? T(0) : l - lr[t];
    }
  }
}

// g[r,c] = scale·(e^(logits[r,c] − lse[r]) − [c = t_r]), 0 for ignored rows
template <class T>
__global__ void cross_entropy_backward_kernel(const T* logits, const T* lse, const int32_t* targets, T scale, T* g,
                                              int64_t rows, int64_t v) {
  CG_GRID_STRIDE(k, rows * v) {
    const int64_t r = k / v, c = k % v;
    const int32_t t = targets[r];
    if (t < 0) {
      g[k] = T(0);
    } else {
      T val = scale * d_exp(logits[k] - lse[r]);
      if (c == t) val -= scale;
      g[k] = val;
    }
  }
}

template <class T>
const T* cptr(const Tensor& t) {
  return static_cast<const T*>(t.raw());
}
template <class T>
T* mptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}

}  // namespace

void CudaBackend::softmax(const Tensor& x, Tensor& y, bool log, int64_t causal_tq, int64_t causal_offset) {
  cuda_dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), cols = x.shape().cols();
    if (rows == 0 || cols == 0) return;
    softmax_kernel<<<grid_rows(rows), row_threads(cols), 0, stream_>>>(cptr<T>(x), mptr<T>(y), rows, cols, log,
                                                                       causal_tq, causal_offset);
    check_launch("softmax");
  });
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  cuda_dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = y.shape().rows(), cols = y.shape().cols();
    if (rows == 0 || cols == 0) return;
    softmax_backward_kernel<<<grid_rows(rows), row_threads(cols), 0, stream_>>>(cptr<T>(y), cptr<T>(gy), mptr<T>(gx),
                                                                                rows, cols, log);
    check_launch("softmax_backward");
  });
}

void CudaBackend::rmsnorm(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, double eps) {
  cuda_dispatch_float(x.dtype(), "rmsnorm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    if (rows == 0 || d == 0) return;
    rmsnorm_kernel<<<grid_rows(rows), row_threads(d), 0, stream_>>>(cptr<T>(x), cptr<T>(w), mptr<T>(y), mptr<T>(rstd),
                                                                    rows, d, static_cast<T>(eps));
    check_launch("rmsnorm");
  });
}

void CudaBackend::rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& gy, Tensor* gx,
                                   Tensor* gw) {
  cuda_dispatch_float(x.dtype(), "rmsnorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    if (rows == 0 || d == 0) return;
    if (gx) {
      rmsnorm_backward_kernel<<<grid_rows(rows), row_threads(d), 0, stream_>>>(cptr<T>(x), cptr<T>(w), cptr<T>(rstd),
                                                                               cptr<T>(gy), mptr<T>(*gx), rows, d);
      check_launch("rmsnorm_backward");
    }
    if (gw) {
      const int64_t nb = (rows + kRowBlock - 1) / kRowBlock;
      Scratch part(*this, static_cast<size_t>(nb * d) * sizeof(double));
      rmsnorm_gw_partial_kernel<<<grid_for(nb * d), kThreads, 0, stream_>>>(cptr<T>(x), cptr<T>(rstd), cptr<T>(gy),
                                                                            rows, d, nb, part.as<double>());
      check_launch("rmsnorm_backward (gw partials)");
      add_partials_kernel<<<grid_for(d), kThreads, 0, stream_>>>(part.as<double>(), nb, d, mptr<T>(*gw));
      check_launch("rmsnorm_backward (gw)");
    }
  });
}

void CudaBackend::layernorm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                            double eps) {
  cuda_dispatch_float(x.dtype(), "layernorm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    if (rows == 0 || d == 0) return;
    layernorm_kernel<<<grid_rows(rows), row_threads(d), 0, stream_>>>(cptr<T>(x), cptr<T>(w), cptr<T>(b), mptr<T>(y),
                                                                      mptr<T>(mean), mptr<T>(rstd), rows, d,
                                                                      static_cast<T>(eps));
    check_launch("layernorm");
  });
}

void CudaBackend::layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                     const Tensor& gy, Tensor* gx, Tensor* gw, Tensor* gb) {
  cuda_dispatch_float(x.dtype(), "layernorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    if (rows == 0 || d == 0) return;
    if (gx) {
      layernorm_backward_kernel<<<grid_rows(rows), row_threads(d), 0, stream_>>>(cptr<T>(x), cptr<T>(w), cptr<T>(mean),
                                                                                 cptr<T>(rstd), cptr<T>(gy),
                                                                                 mptr<T>(*gx), rows, d);
      check_launch("layernorm_backward");
    }
    if (gw || gb) {
      const int64_t nb = (rows + kRowBlock - 1) / kRowBlock;
      const size_t bytes = static_cast<size_t>(nb * d) * sizeof(double);
      Scratch pw(*this, bytes), pb(*this, bytes);
      layernorm_wb_partial_kernel<<<grid_for(nb * d), kThreads, 0, stream_>>>(cptr<T>(x), cptr<T>(mean), cptr<T>(rstd),
                                                                              cptr<T>(gy), rows, d, nb,
                                                                              gw ? pw.as<double>() : nullptr,
                                                                              gb ? pb.as<double>() : nullptr);
      check_launch("layernorm_backward (partials)");
      if (gw) {
        add_partials_kernel<<<grid_for(d), kThreads, 0, stream_>>>(pw.as<double>(), nb, d, mptr<T>(*gw));
        check_launch("layernorm_backward (gw)");
      }
      if (gb) {
        add_partials_kernel<<<grid_for(d), kThreads, 0, stream_>>>(pb.as<double>(), nb, d, mptr<T>(*gb));
        check_launch("layernorm_backward (gb)");
      }
    }
  });
}

void CudaBackend::rope(const Tensor& x, Tensor& y, int64_t pos_offset, double theta, bool inverse,
                       const Tensor* positions) {
  cuda_dispatch_float(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    const int64_t Tn = x.dim(1), H = x.dim(2), D = x.dim(3);
    const int64_t npairs = x.numel() / 2;
    if (npairs == 0) return;
    rope_kernel<<<grid_for(npairs), kThreads, 0, stream_>>>(cptr<T>(x), mptr<T>(y), Tn, H, D, pos_offset,
                                                            positions ? cptr<int32_t>(*positions) : nullptr,
                                                            static_cast<T>(theta), inverse, npairs);
    check_launch("rope");
  });
}

void CudaBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  cuda_dispatch_float(table.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = ids.numel(), d = table.dim(1);
    if (n == 0 || d == 0) return;
    embedding_kernel<<<grid_for(n * d), kThreads, 0, stream_>>>(cptr<T>(table), cptr<int32_t>(ids), mptr<T>(out), n, d);
    check_launch("embedding");
  });
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) {
  cuda_dispatch_float(gy.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = ids.numel(), V = gtable.dim(0), d = gtable.dim(1);
    if (n == 0 || d == 0) return;
    if (3 * n + 1 > INT32_MAX) throw DeviceError("cuda embedding_backward: too many ids in " + ids.desc());
    // Group the tokens by table row on the host (a stable counting sort: token order is
    // kept inside each row), then one thread per (row, column) adds them in that order.
    ids_host_.resize(static_cast<size_t>(n));
    to_host(ids_host_.data(), ids.raw(), static_cast<size_t>(n) * sizeof(int32_t));
    count_host_.assign(static_cast<size_t>(V) + 1, 0);
    for (int32_t id : ids_host_) {
      if (id < 0 || id >= V)
        throw ShapeError("cuda embedding_backward: id " + std::to_string(id) + " out of range for " + gtable.desc());
      ++count_host_[static_cast<size_t>(id) + 1];
    }
    for (int64_t v = 0; v < V; ++v) count_host_[static_cast<size_t>(v) + 1] += count_host_[static_cast<size_t>(v)];
    // seg_host_ = perm[n] | start[nseg + 1] | row[nseg], sized for nseg ≤ n so the scratch
    // block depends on n only.
    seg_host_.assign(static_cast<size_t>(3 * n + 1), 0);
    int32_t* perm = seg_host_.data();
    int32_t* start = perm + n;
    int64_t nseg = 0;
    for (int64_t v = 0; v < V; ++v)
      if (count_host_[static_cast<size_t>(v) + 1] > count_host_[static_cast<size_t>(v)]) ++nseg;
    int32_t* row = start + nseg + 1;
    {
      int64_t s = 0;
      for (int64_t v = 0; v < V; ++v) {
        const int64_t lo = count_host_[static_cast<size_t>(v)], hi = count_host_[static_cast<size_t>(v) + 1];
        if (hi == lo) continue;
        start[s] = static_cast<int32_t>(lo);
        row[s] = static_cast<int32_t>(v);
        ++s;
      }
      start[nseg] = static_cast<int32_t>(n);
    }
    for (int64_t i = 0; i < n; ++i) {  // count_host_[id] becomes the next free slot of row id
      const size_t id = static_cast<size_t>(ids_host_[static_cast<size_t>(i)]);
      perm[count_host_[id]++] = static_cast<int32_t>(i);
    }
    Scratch idx(*this, seg_host_.size() * sizeof(int32_t));
    from_host(idx.as<void>(), seg_host_.data(), seg_host_.size() * sizeof(int32_t));
    const int32_t* dperm = idx.as<int32_t>();
    const int32_t* dstart = dperm + n;
    const int32_t* drow = dstart + nseg + 1;
    embedding_backward_kernel<<<grid_for(nseg * d), kThreads, 0, stream_>>>(dperm, dstart, drow, cptr<T>(gy),
                                                                            mptr<T>(gtable), nseg, d);
    check_launch("embedding_backward");
  });
}

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& lse) {
  cuda_dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.shape().rows(), v = logits.shape().cols();
    if (rows == 0 || v == 0) return;
    cross_entropy_kernel<<<grid_rows(rows), row_threads(v), 0, stream_>>>(cptr<T>(logits), cptr<int32_t>(targets),
                                                                          mptr<T>(loss), mptr<T>(lse), rows, v);
    check_launch("cross_entropy");
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& lse, const Tensor& targets, double scale,
                                         Tensor& glogits) {
  cuda_dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.shape().rows(), v = logits.shape().cols();
    if (rows == 0 || v == 0) return;
    cross_entropy_backward_kernel<<<grid_for(rows * v), kThreads, 0, stream_>>>(cptr<T>(logits), cptr<T>(lse),
                                                                                cptr<int32_t>(targets),
                                                                                static_cast<T>(scale), mptr<T>(glogits),
                                                                                rows, v);
    check_launch("cross_entropy_backward");
  });
}

}  // namespace cg
