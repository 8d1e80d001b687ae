// examples/rmsnorm_tour.cpp — docs/02-writing-an-op.md: RMSNorm written out by hand (forward
// and the backward derived on paper, in double on the host), compared with ops::rmsnorm,
// proved with ops::gradcheck, and four things a finite-difference check can and cannot tell:
// a broken backward (caught), the step size eps, a kink, and a wrong but self-consistent forward.
// Exit 1 if any check here does not come out the way the page says.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/gradcheck.h"
#include "ops/ops.h"

using namespace cg;
using V = std::vector<Tensor>;

namespace {

constexpr double kEps = 1e-5;

// y[r, j] = x[r, j] · rs_r · w_j,  rs_r = 1/√(mean_j x[r, j]² + eps)
// broken = true forgets that rs_r depends on x (drops the second term of gx).
Tensor my_rmsnorm(const Tensor& x, const Tensor& w, bool broken) {
  const int64_t rows = x.dim(0), d = x.dim(1);
  const auto xv = x.to_f64_vector(), wv = w.to_f64_vector();
  std::vector<double> yv(xv.size()), rs(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += xv[r * d + j] * xv[r * d + j];
    rs[r] = 1 / std::sqrt(ss / d + kEps);
    for (int64_t j = 0; j < d; ++j) yv[r * d + j] = xv[r * d + j] * rs[r] * wv[j];
  }
  Tensor y = Tensor::from(yv, x.shape(), DType::F64);
  record("my_rmsnorm", y, {x, w}, [=](const Tensor& gy) {
    const auto g = gy.to_f64_vector();
    std::vector<double> gx(xv.size()), gw(wv.size(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0;  // Σ_k w_k g_k x_k
      for (int64_t k = 0; k < d; ++k) dot += wv[k] * g[r * d + k] * xv[r * d + k];
      const double c = broken ? 0 : rs[r] * rs[r] * rs[r] * dot / d;
      for (int64_t j = 0; j < d; ++j) {
        gx[r * d + j] = rs[r] * wv[j] * g[r * d + j] - c * xv[r * d + j];  // gx_j = rs·w_j·g_j − rs³/d·x_j·dot
        gw[j] += g[r * d + j] * xv[r * d + j] * rs[r];                     // gw_j = Σ_r g_rj·x_rj·rs_r
      }
    }
    if (needs_grad(x)) accumulate(x, Tensor::from(gx, x.shape(), DType::F64));
    if (needs_grad(w)) accumulate(w, Tensor::from(gw, w.shape(), DType::F64));
  });
  return y;
}

// "RMSNorm" with sum instead of mean: a wrong forward, but built from ops, so its backward
// is exactly the derivative of what it computes.
Tensor sum_norm(const Tensor& x, const Tensor& w) {
  Tensor ss = ops::sum(ops::mul(x, x), -1, /*keepdim=*/true);  // [rows, 1]
  return ops::mul(ops::mul(x, ops::pow_scalar(ops::add_scalar(ss, kEps), -0.5)), w);
}

// A copy of t (any float dtype) with element i set to v.
Tensor set_one(const Tensor& t, int64_t i, double v) {
  auto vals = t.to_f64_vector();
  vals[static_cast<size_t>(i)] = v;
  return Tensor::from(vals, t.shape(), t.dtype());
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto u = a.to_f64_vector(), v = b.to_f64_vector();
  double m = 0;
  for (size_t i = 0; i < u.size(); ++i) m = std::max(m, std::fabs(u[i] - v[i]));
  return m;
}

}  // namespace

int main() {
  Rng g(3);
  const Tensor x = rand_uniform({4, 8}, -1, 1, g, DType::F64), w = rand_uniform({8}, 0.5, 1.5, g, DType::F64);
  bool ok = true;

  std::printf("== 1. by hand vs ops::rmsnorm (x[4,8], w[8], float64)\n");
  {
    Tensor x1 = x.clone().set_requires_grad(true), w1 = w.clone().set_requires_grad(true);
    Tensor x2 = x.clone().set_requires_grad(true), w2 = w.clone().set_requires_grad(true);
    const Tensor r = rand_uniform({4, 8}, -1, 1, g, DType::F64);
    Tensor y1 = my_rmsnorm(x1, w1, false);
    backward(ops::sum_all(ops::mul(y1, r)));  // backward consumes the whole tape: one graph at a time
    Tensor y2 = ops::rmsnorm(x2, w2, kEps);
    backward(ops::sum_all(ops::mul(y2, r)));
    const double dy = max_abs_diff(y1, y2), dx = max_abs_diff(x1.grad(), x2.grad()),
                 dw = max_abs_diff(w1.grad(), w2.grad());
    std::printf("max |difference|  y: %s  dL/dx: %s  dL/dw: %s\n", dy < 1e-12 ? "< 1e-12" : "LARGE",
                dx < 1e-12 ? "< 1e-12" : "LARGE", dw < 1e-12 ? "< 1e-12" : "LARGE");
    ok &= dy < 1e-12 && dx < 1e-12 && dw < 1e-12;
  }

  std::printf("== 2. gradcheck: the right backward passes, the broken one fails\n");
  for (bool broken : {false, true}) {
    ops::GradCase c{"my_rmsnorm", "[4,8]", {x, w}, [broken](const V& in) { return my_rmsnorm(in[0], in[1], broken); }};
    const auto res = ops::gradcheck(c);
    // The derived backward's error is rounding noise (its digits and its worst input depend on
    // the CPU): it is shown as the bound it stays under. The broken one's is the missing term.
    char err[64];
    if (!broken && res.max_rel_err < 1e-8) std::snprintf(err, sizeof err, "< 1e-8");
    else std::snprintf(err, sizeof err, "%.1e (worst: %s)", res.max_rel_err, res.worst.c_str());
    std::printf("%-24s max rel err %s  %s\n", broken ? "broken (forgot drs/dx)" : "derived backward", err,
                res.pass ? "pass" : "FAIL");
    ok &= broken || res.max_rel_err < 1e-8;
    ok &= res.pass != broken;
  }

  std::printf("== 3. the step size eps of central differences, in float64 and in float32\n");
  {
    // The exact gradient of L = Σ rmsnorm(x, w) ⊙ r with respect to x, from the tape (float64).
    const Tensor r = rand_uniform({4, 8}, -1, 1, g, DType::F64);
    Tensor xg = x.clone().set_requires_grad(true);
    backward(ops::sum_all(ops::mul(ops::rmsnorm(xg, w, kEps), r)));
    const auto exact = xg.grad().to_f64_vector();
    // A cell is the measured error where truncation (∝ eps²) dominates: those digits hold on
    // every CPU. Where rounding may matter, the cell is the bound the error stays under (checked):
    // rounding R = (d + n)·ε·Σ|y·r| / (eps·max|dL/dx|) (each y carries ~d roundings, the sum n)
    // plus 1.5× the truncation error extrapolated from eps = 1e-1. "lost": x ± eps == x in every
    // element, the numeric gradient is 0 and the error exactly 1.
    std::printf(
        "eps      float64    float32   (max rel err of the numeric dL/dx; < B: bound on rounding + truncation)\n");
    double mag = 0;
    for (double e : exact) mag = std::max(mag, std::fabs(e));
    double sum_abs = 0;
    {
      NoGrad ng;
      const auto yv = ops::rmsnorm(x, w, kEps).to_f64_vector(), rv = r.to_f64_vector();
      for (size_t i = 0; i < yv.size(); ++i) sum_abs += std::fabs(yv[i] * rv[i]);
    }
    double trunc_c[2] = {0, 0};  // measured error / eps² at eps = 1e-1, per dtype
    for (double h : {1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8, 1e-10}) {
      std::printf("%.0e", h);
      int col = 0;
      for (DType dt : {DType::F64, DType::F32}) {
        NoGrad ng;
        Tensor xp = x.to(dt);
        const Tensor wd = w.to(dt), rd = r.to(dt);
        auto loss = [&] { return ops::sum_all(ops::mul(ops::rmsnorm(xp, wd, kEps), rd)).item(); };
        double worst = 0;
        bool lost = true;
        for (int64_t i = 0; i < xp.numel(); ++i) {
          const double orig = xp.to_f64_vector()[static_cast<size_t>(i)];
          xp.copy_from(set_one(xp, i, orig + h));
          lost &= xp.to_f64_vector()[static_cast<size_t>(i)] == orig;
          const double lp = loss();
          xp.copy_from(set_one(xp, i, orig - h));
          lost &= xp.to_f64_vector()[static_cast<size_t>(i)] == orig;
          const double lm = loss();
          xp.copy_from(set_one(xp, i, orig));
          worst = std::max(worst, std::fabs((lp - lm) / (2 * h) - exact[static_cast<size_t>(i)]));
        }
        const double rel = worst / mag;
        const double macheps = dt == DType::F64 ? 0x1p-52 : 0x1p-23;
        const double rounding = static_cast<double>(x.dim(1) + x.numel()) * macheps * sum_abs / (h * mag);
        if (h == 1e-1) trunc_c[col] = rel / (h * h);
        const double bound = rounding + 1.5 * trunc_c[col] * h * h;
        char cell[32];
        if (lost) {
          std::snprintf(cell, sizeof cell, "lost");
          ok &= rel == 1.0;
        } else if (rounding <= 0.01 * rel) {
          std::snprintf(cell, sizeof cell, "%.0e", rel);
        } else {
          std::snprintf(cell, sizeof cell, "< %.0e", bound);
          ok &= rel < bound;
        }
        std::printf("   %8s", cell);
        ++col;
      }
      std::printf("\n");
    }
  }

  std::printf("== 4. a kink: relu probed exactly at 0\n");
  {
    ops::GradCase c{"relu", "[3]", {Tensor::from({-0.5, 0.0, 0.5}, {3}, DType::F64)}, [](const V& in) {
                      return ops::relu(in[0]);
                    }};
    const auto res = ops::gradcheck(c);
    std::printf("relu at {-0.5, 0, 0.5}: max rel err %.2f  %s  (numeric slope at 0 is 1/2, relu's backward says 0)\n",
                res.max_rel_err, res.pass ? "pass" : "FAIL");
    ok &= !res.pass;
  }

  std::printf("== 5. a wrong forward with a consistent backward passes\n");
  {
    ops::GradCase c{"sum_norm", "[4,8]", {x, w}, [](const V& in) { return sum_norm(in[0], in[1]); }};
    const auto res = ops::gradcheck(c);
    NoGrad ng;
    const double d = max_abs_diff(sum_norm(x, w), ops::rmsnorm(x, w, kEps));
    std::printf("sum instead of mean: gradcheck %s, yet its output differs from rmsnorm by up to %.2f\n",
                res.pass ? "pass" : "FAIL", d);
    ok &= res.pass && d > 0.1;
  }
  std::printf("%s\n", ok ? "every check came out as expected" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
