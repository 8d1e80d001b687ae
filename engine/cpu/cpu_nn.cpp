// engine/cpu/cpu_nn.cpp — row-wise neural-net kernels: softmax, norms, RoPE, embedding,
// cross-entropy. Parallel over rows; reductions across rows (norm weight gradients) use
// fixed row blocks summed in order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_parallel.h"
#include "engine/cpu/cpu_math.h"

namespace cg {
namespace {
constexpr int64_t kRowBlock = 64;  // rows per partial sum in cross-row reductions

// Sums per-block partials [nblocks, d] in block order into out[d] (+=).
template <class T>
void add_partials(const double* part, int64_t nblocks, int64_t d, T* out) {
  for (int64_t j = 0; j < d; ++j) {
    double s = 0;
    for (int64_t b = 0; b < nblocks; ++b) s += part[static_cast<size_t>(b * d + j)];
    out[j] += static_cast<T>(s);
  }
}
// max(x[0..n)) (NaNs skipped, as std::max(mx, x) does), −∞ for n = 0. In 16 lanes, as GCC
// does not vectorise a float max reduction (omp simd or not) without -ffast-math; a max is
// exact, so the order does not change the result.
template <class T>
T row_max(const T* x, int64_t n) {
  constexpr int kLanes = 16;
  T lane[kLanes];
  for (T& l : lane) l = -std::numeric_limits<T>::infinity();
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) lane[j] = x[c + j] > lane[j] ? x[c + j] : lane[j];
  for (; c < n; ++c) lane[0] = std::max(lane[0], x[c]);
  T mx = lane[0];
  for (int j = 1; j < kLanes; ++j) mx = std::max(mx, lane[j]);
  return mx;
}
}  // namespace

void CpuBackend::softmax(const Tensor& x, Tensor& y, bool log, int64_t causal_tq, int64_t causal_offset) {
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), cols = x.shape().cols();
    const T* px = x.data<T>();
    T* py = y.data<T>();
    cpu::parallel_for(rows, rows * cols, cpu::kParRowwise, [&](int64_t r) {
      const T* xr = px + r * cols;
      T* yr = py + r * cols;
      const int64_t valid = causal_tq > 0 ? std::min(cols, r % causal_tq + causal_offset + 1) : cols;
      const T mx = row_max(xr, valid);
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < valid; ++c) {
        const T e = cpu::fast_exp(xr[c] - mx);
        yr[c] = e;
        sum += e;
      }
      if (log) {
        const T lse = std::log(sum);
        for (int64_t c = 0; c < valid; ++c) yr[c] = xr[c] - mx - lse;
        for (int64_t c = valid; c < cols; ++c) yr[c] = -std::numeric_limits<T>::infinity();
      } else {
        const T inv = T(1) / sum;
#pragma omp simd
        for (int64_t c = 0; c < valid; ++c) yr[c] *= inv;
#pragma omp simd
        for (int64_t c = valid; c < cols; ++c) yr[c] = 0;
      }
    });
  });
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = y.shape().rows(), cols = y.shape().cols();
    const T* py = y.data<T>();
    const T* pg = gy.data<T>();
    T* pgx = gx.data<T>();
    cpu::parallel_for(rows, rows * cols, cpu::kParRowwise, [&](int64_t r) {
      const T* yr = py + r * cols;
      const T* gr = pg + r * cols;
      T* out = pgx + r * cols;
      if (log) {
        T s = 0;
        for (int64_t c = 0; c < cols; ++c) s += gr[c] * (yr[c] == -std::numeric_limits<T>::infinity() ? T(0) : T(1));
        for (int64_t c = 0; c < cols; ++c)
          out[c] = yr[c] == -std::numeric_limits<T>::infinity() ? T(0) : gr[c] - std::exp(yr[c]) * s;
      } else {
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < cols; ++c) s += gr[c] * yr[c];
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) out[c] = yr[c] * (gr[c] - s);
      }
    });
  });
}

void CpuBackend::rmsnorm(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, double eps) {
  dispatch_float(x.dtype(), "rmsnorm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    const T *px = x.data<T>(), *pw = w.data<T>();
    T *py = y.data<T>(), *pr = rstd.data<T>();
    cpu::parallel_for(rows, rows * d, cpu::kParRowwise, [&](int64_t r) {
      const T* xr = px + r * d;
      T ss = 0;  // in order, not vectorised: the decode path must see the same bits
      for (int64_t j = 0; j < d; ++j) ss += xr[j] * xr[j];
      const T rs = T(1) / std::sqrt(ss / T(d) + T(eps));
      pr[r] = rs;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) py[r * d + j] = xr[j] * rs * pw[j];
    });
  });
}

void CpuBackend::rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& gy, Tensor* gx,
                                  Tensor* gw) {
  dispatch_float(x.dtype(), "rmsnorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    const T *px = x.data<T>(), *pw = w.data<T>(), *pr = rstd.data<T>(), *pg = gy.data<T>();
    if (gx) {
      T* pgx = gx->data<T>();
      // gx_j = rs·w_j·g_j − rs³/d · x_j · Σ_k w_k g_k x_k
      cpu::parallel_for(rows, rows * d, cpu::kParRowwise, [&](int64_t r) {
        const T *xr = px + r * d, *gr = pg + r * d;
        const T rs = pr[r];
        T dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += pw[j] * gr[j] * xr[j];
        const T c = rs * rs * rs * dot / T(d);
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) pgx[r * d + j] = rs * pw[j] * gr[j] - c * xr[j];
      });
    }
    if (gw) {
      // gw_j += Σ_r g_rj · x_rj · rs_r
      const int64_t nb = (rows + kRowBlock - 1) / kRowBlock;
      double* part = cpu::scratch<double>(0, static_cast<size_t>(nb * d));
      std::fill(part, part + nb * d, 0.0);
      cpu::parallel_for(nb, rows * d, cpu::kParRowwise, [&](int64_t b) {
        for (int64_t r = b * kRowBlock; r < std::min(rows, (b + 1) * kRowBlock); ++r)
          for (int64_t j = 0; j < d; ++j) part[static_cast<size_t>(b * d + j)] += pg[r * d + j] * px[r * d + j] * pr[r];
      });
      add_partials(part, nb, d, gw->data<T>());
    }
  });
}

void CpuBackend::layernorm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                           double eps) {
  dispatch_float(x.dtype(), "layernorm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    const T *px = x.data<T>(), *pw = w.data<T>(), *pb = b.data<T>();
    T *py = y.data<T>(), *pm = mean.data<T>(), *pr = rstd.data<T>();
    cpu::parallel_for(rows, rows * d, cpu::kParRowwise, [&](int64_t r) {
      const T* xr = px + r * d;
      T mu = 0;
      for (int64_t j = 0; j < d; ++j) mu += xr[j];
      mu /= T(d);
      T var = 0;
      for (int64_t j = 0; j < d; ++j) var += (xr[j] - mu) * (xr[j] - mu);
      const T rs = T(1) / std::sqrt(var / T(d) + T(eps));
      pm[r] = mu;
      pr[r] = rs;
      for (int64_t j = 0; j < d; ++j) py[r * d + j] = (xr[j] - mu) * rs * pw[j] + pb[j];
    });
  });
}

void CpuBackend::layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                    const Tensor& gy, Tensor* gx, Tensor* gw, Tensor* gb) {
  dispatch_float(x.dtype(), "layernorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = x.shape().rows(), d = x.shape().cols();
    const T *px = x.data<T>(), *pw = w.data<T>(), *pm = mean.data<T>(), *pr = rstd.data<T>(), *pg = gy.data<T>();
    if (gx) {
      T* pgx = gx->data<T>();
      // g = gy·w; gx = rs·(g − mean(g) − x̂·mean(g·x̂))
      cpu::parallel_for(rows, rows * d, cpu::kParRowwise, [&](int64_t r) {
        const T *xr = px + r * d, *gr = pg + r * d;
        const T mu = pm[r], rs = pr[r];
        T mg = 0, mgx = 0;
        for (int64_t j = 0; j < d; ++j) {
          const T g = gr[j] * pw[j];
          mg += g;
          mgx += g * (xr[j] - mu) * rs;
        }
        mg /= T(d);
        mgx /= T(d);
        for (int64_t j = 0; j < d; ++j) pgx[r * d + j] = rs * (gr[j] * pw[j] - mg - (xr[j] - mu) * rs * mgx);
      });
    }
    if (gw || gb) {
      const int64_t nb = (rows + kRowBlock - 1) / kRowBlock;
      double* pw_part = cpu::scratch<double>(0, static_cast<size_t>(nb * d));
      double* pb_part = cpu::scratch<double>(1, static_cast<size_t>(nb * d));
      std::fill(pw_part, pw_part + nb * d, 0.0);
      std::fill(pb_part, pb_part + nb * d, 0.0);
      cpu::parallel_for(nb, rows * d, cpu::kParRowwise, [&](int64_t b) {
        for (int64_t r = b * kRowBlock; r < std::min(rows, (b + 1) * kRowBlock); ++r)
          for (int64_t j = 0; j < d; ++j) {
            const size_t k = static_cast<size_t>(b * d + j);
            pw_part[k] += pg[r * d + j] * (px[r * d + j] - pm[r]) * pr[r];
            pb_part[k] += pg[r * d + j];
          }
      });
      if (gw) add_partials(pw_part, nb, d, gw->data<T>());
      if (gb) add_partials(pb_part, nb, d, gb->data<T>());
    }
  });
}

void CpuBackend::rope(const Tensor& x, Tensor& y, int64_t pos_offset, double theta, bool inverse,
                      const Tensor* positions) {
  dispatch_float(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    const int64_t B = x.dim(0), Tn = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
    // Per-token positions (packed rows): the table of positions 0..max, row bt at positions[bt].
    const int32_t* pp = positions ? positions->data<int32_t>() : nullptr;
    int64_t rows = Tn, first = pos_offset;
    if (pp) {
      rows = 1, first = 0;
      for (int64_t i = 0; i < B * Tn; ++i) rows = std::max<int64_t>(rows, int64_t{pp[i]} + 1);
    }
    // cos/sin table [rows, D/2], computed like HF (inverse frequencies in the working type).
    // A training step asks for the same table (positions 0..T−1) in every layer, forward
    // and backward, so the last one is kept per thread and reused while its key matches.
    struct Table {
      int64_t tn = -1, d = -1, pos = -1;
      double theta = 0;
      std::vector<T> cs, sn;
    };
    thread_local Table tab;
    if (tab.tn != rows || tab.d != D || tab.pos != first || tab.theta != theta) {
      tab.cs.resize(static_cast<size_t>(rows * half));
      tab.sn.resize(static_cast<size_t>(rows * half));
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t i = 0; i < half; ++i) {
          const T inv_freq = T(1) / std::pow(T(theta), T(2 * i) / T(D));
          const T a = T(first + t) * inv_freq;
          tab.cs[static_cast<size_t>(t * half + i)] = std::cos(a);
          tab.sn[static_cast<size_t>(t * half + i)] = std::sin(a);
        }
      tab.tn = rows, tab.d = D, tab.pos = first, tab.theta = theta;
    }
    const T* cs = tab.cs.data();
    const T* sn = tab.sn.data();
    const T sign = inverse ? T(-1) : T(1);  // the inverse rotates by −a: sin(−a) = −sin a
    const T* px = x.data<T>();
    T* py = y.data<T>();
    cpu::parallel_for(B * Tn, x.numel(), cpu::kParRowwise, [&](int64_t bt) {
      const int64_t t = pp ? pp[bt] : bt % Tn;
      const T* c = cs + t * half;
      const T* s = sn + t * half;
      for (int64_t h = 0; h < H; ++h) {
        const T* xr = px + (bt * H + h) * D;
        T* yr = py + (bt * H + h) * D;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const T x1 = xr[i], x2 = xr[i + half], si = sign * s[i];
          yr[i] = x1 * c[i] - x2 * si;
          yr[i + half] = x2 * c[i] + x1 * si;
        }
      }
    });
  });
}

void CpuBackend::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  if (table.dtype() == DType::BF16) {  // a bf16-stored table: f32 rows, the values exactly
    const int64_t n = ids.numel(), d = table.dim(1);
    const int32_t* pi = ids.data<int32_t>();
    const uint16_t* pt = table.data<uint16_t>();
    float* po = out.data<float>();
    cpu::parallel_for(n, n * d, cpu::kParRowwise, [&](int64_t i) {
      const uint16_t* row = pt + pi[i] * d;
      for (int64_t j = 0; j < d; ++j) po[i * d + j] = bf16_value(row[j]);
    });
    return;
  }
  dispatch_float(table.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = ids.numel(), d = table.dim(1);
    const int32_t* pi = ids.data<int32_t>();
    const T* pt = table.data<T>();
    T* po = out.data<T>();
    cpu::parallel_for(n, n * d, cpu::kParRowwise,
                      [&](int64_t i) { std::copy(pt + pi[i] * d, pt + (pi[i] + 1) * d, po + i * d); });
  });
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& gy, Tensor& gtable) {
  dispatch_float(gy.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = ids.numel(), d = gtable.dim(1);
    const int32_t* pi = ids.data<int32_t>();
    const T* pg = gy.data<T>();
    T* pt = gtable.data<T>();
    // Parallel over embedding columns, tokens in order within each: deterministic.
    cpu::parallel_for(d, n * d, cpu::kParRowwise, [&](int64_t j) {
      for (int64_t i = 0; i < n; ++i) pt[pi[i] * d + j] += pg[i * d + j];
    });
  });
}

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& targets, Tensor& loss, Tensor& lse) {
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.shape().rows(), v = logits.shape().cols();
    const T* pl = logits.data<T>();
    const int32_t* pt = targets.data<int32_t>();
    T *ploss = loss.data<T>(), *plse = lse.data<T>();
    cpu::parallel_for(rows, rows * v, cpu::kParRowwise, [&](int64_t r) {
      const T* lr = pl + r * v;
      T mx = lr[0];
#pragma omp simd reduction(max : mx)
      for (int64_t c = 1; c < v; ++c) mx = std::max(mx, lr[c]);
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < v; ++c) s += cpu::fast_exp(lr[c] - mx);
      const T l = mx + std::log(s);
      plse[r] = l;
      ploss[r] = pt[r] < 0 ? T(0) : l - lr[pt[r]];
    });
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& lse, const Tensor& targets, double scale,
                                        Tensor& glogits) {
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.shape().rows(), v = logits.shape().cols();
    const T *pl = logits.data<T>(), *plse = lse.data<T>();
    const int32_t* pt = targets.data<int32_t>();
    T* pg = glogits.data<T>();
    const T sc = static_cast<T>(scale);
    cpu::parallel_for(rows, rows * v, cpu::kParRowwise, [&](int64_t r) {
      T* gr = pg + r * v;
      if (pt[r] < 0) {
        std::fill(gr, gr + v, T(0));
        return;
      }
      const T* lr = pl + r * v;
      const T l = plse[r];
#pragma omp simd
      for (int64_t c = 0; c < v; ++c) gr[c] = sc * cpu::fast_exp(lr[c] - l);
      gr[pt[r]] -= sc;
    });
  });
}

}  // namespace cg
