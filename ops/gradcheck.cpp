// ops/gradcheck.cpp — central finite differences against the tape, and the op registry.
#include "ops/gradcheck.h"

#include <algorithm>
#include <cmath>

#include "engine/tape.h"
#include "ops/chain_matmul.h"
#include "ops/ops.h"

namespace cg::ops {

GradResult gradcheck(const GradCase& c, double tol, double eps) {
  // The fixed random projection r: L = Σ y ⊙ r, so every output element matters.
  Tensor y0;
  {
    NoGrad ng;
    y0 = c.fn(c.inputs);
  }
  Rng rng(1234);
  const Tensor r = rand_uniform(y0.shape(), -1.0, 1.0, rng, DType::F64);
  const std::vector<double> rv = r.to_f64_vector();
  auto loss_of = [&](const std::vector<Tensor>& in) {
    NoGrad ng;
    const std::vector<double> y = c.fn(in).to_f64_vector();
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * rv[i];
    return l;
  };

  // Analytic gradients from the tape.
  std::vector<Tensor> in;
  for (const Tensor& t : c.inputs) {
    Tensor u = t.clone();
    if (is_float(t.dtype())) u.set_requires_grad(true);
    in.push_back(u);
  }
  tape_clear();
  Tensor y = c.fn(in);
  Tensor l = sum_all(mul(y, r));
  backward(l);

  GradResult res;
  res.pass = true;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!is_float(in[k].dtype())) continue;
    const Tensor g = in[k].grad();
    const std::vector<double> ga = g.defined() ? g.to_f64_vector()
                                               : std::vector<double>(static_cast<size_t>(in[k].numel()), 0.0);
    // Numeric gradient, one element at a time, on a private copy.
    std::vector<Tensor> probe = c.inputs;
    probe[k] = c.inputs[k].clone();
    double* p = probe[k].data<double>();
    double max_diff = 0, max_mag = 0;
    for (int64_t i = 0; i < probe[k].numel(); ++i) {
      const double orig = p[i];
      p[i] = orig + eps;
      const double lp = loss_of(probe);
      p[i] = orig - eps;
      const double lm = loss_of(probe);
      p[i] = orig;
      const double gn = (lp - lm) / (2 * eps);
      max_diff = std::max(max_diff, std::abs(gn - ga[static_cast<size_t>(i)]));
      max_mag = std::max({max_mag, std::abs(gn), std::abs(ga[static_cast<size_t>(i)])});
    }
    const double err = max_diff / std::max(max_mag, 1e-8);
    if (res.worst.empty() || err > res.max_rel_err) {
      res.max_rel_err = err;
      res.worst = "input " + std::to_string(k);
    }
    if (!(err <= tol)) res.pass = false;
  }
  return res;
}

namespace {

using V = std::vector<Tensor>;
constexpr DType kF = DType::F64;

Tensor rnd(Rng& g, const Shape& s, double lo = -1.0, double hi = 1.0) { return rand_uniform(s, lo, hi, g, kF); }
// A constant of a case (a frozen weight, not an input) in the dtype and on the device of
// the inputs it meets: the CUDA tests run every case in f32 and f64 on the GPU.
Tensor like(const Tensor& constant, const Tensor& input) { return constant.to(input.dtype()).to(input.device()); }
// Values with |x| in [0.2, 1]: keeps kinks (relu) away from the probe points.
Tensor away_from_zero(Rng& g, const Shape& s) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (double& x : v) x = (g.uniform() < 0.5 ? -1 : 1) * g.uniform(0.2, 1.0);
  return Tensor::from(v, s, kF);
}
Tensor ids(Rng& g, const Shape& s, int64_t n, bool with_ignored = false) {
  std::vector<int32_t> v(static_cast<size_t>(s.numel()));
  for (auto& x : v) x = static_cast<int32_t>(g.below(static_cast<uint64_t>(n)));
  if (with_ignored && v.size() > 1) v[1] = -1;
  return Tensor::from_i32(v, s);
}
std::string sh(const Tensor& t) { return t.shape().str(); }

GradCase unary_case(const std::string& name, Tensor x, std::function<Tensor(const Tensor&)> f) {
  return {name, sh(x), {x}, [f](const V& in) { return f(in[0]); }};
}

std::vector<GradOp> make_registry() {
  std::vector<GradOp> r;
  r.push_back({"matmul", [](Rng& g) {
                 std::vector<GradCase> cs;
                 auto mm = [&](Shape a, Shape b, bool ta, bool tb) {
                   cs.push_back({"matmul",
                                 a.str() + (ta ? "^T" : "") + "*" + b.str() + (tb ? "^T" : ""),
                                 {rnd(g, a), rnd(g, b)},
                                 [ta, tb](const V& in) { return matmul(in[0], in[1], ta, tb); }});
                 };
                 mm({3, 4}, {4, 5}, false, false);
                 mm({4, 3}, {4, 5}, true, false);
                 mm({3, 4}, {5, 4}, false, true);
                 mm({4, 3}, {5, 4}, true, true);
                 mm({2, 3, 4}, {2, 4, 5}, false, false);
                 mm({2, 3, 4}, {4, 5}, false, false);
                 mm({2, 4, 3}, {5, 4}, true, true);
                 mm({3, 4}, {2, 4, 5}, false, false);
                 mm({2, 2, 3, 4}, {2, 2, 5, 4}, false, true);
                 return cs;
               }});
  r.push_back(
      {"linear", [](Rng& g) {
         return std::vector<GradCase>{{"linear",
                                       "[2,3,4]*w[5,4]^T",
                                       {rnd(g, {2, 3, 4}), rnd(g, {5, 4})},
                                       [](const V& in) { return linear(in[0], in[1]); }},
                                      {"linear", "[4]*w[3,4]^T", {rnd(g, {4}), rnd(g, {3, 4})}, [](const V& in) {
                                         return linear(in[0], in[1]);
                                       }}};
       }});
  auto binary_op = [&](const std::string& name, Tensor (*f)(const Tensor&, const Tensor&), bool positive_b) {
    r.push_back({name, [name, f, positive_b](Rng& g) {
                   std::vector<GradCase> cs;
                   auto add = [&](Shape a, Shape b) {
                     Tensor tb = positive_b ? rnd(g, b, 0.5, 1.5) : rnd(g, b);
                     cs.push_back({name, a.str() + " o " + b.str(), {rnd(g, a), tb}, [f](const V& in) {
                                     return f(in[0], in[1]);
                                   }});
                   };
                   add({3, 4}, {3, 4});
                   add({2, 3, 4}, {4});
                   add({2, 3, 4}, {3, 1});
                   add({4}, {2, 3, 4});
                   add({2, 1, 3, 1}, {1, 4, 1, 5});
                   return cs;
                 }});
  };
  binary_op("add", add, false);
  binary_op("sub", sub, false);
  binary_op("mul", mul, false);
  binary_op("div", div, true);
  auto unary_op = [&](const std::string& name, std::function<Tensor(const Tensor&)> f, double lo, double hi,
                      bool kink) {
    r.push_back({name, [name, f, lo, hi, kink](Rng& g) {
                   std::vector<GradCase> cs;
                   for (Shape s : {Shape{5}, Shape{2, 3, 4}})
                     cs.push_back(unary_case(name, kink ? away_from_zero(g, s) : rnd(g, s, lo, hi), f));
                   return cs;
                 }});
  };
  unary_op(
      "add_scalar", [](const Tensor& x) { return add_scalar(x, 0.7); }, -1, 1, false);
  unary_op(
      "mul_scalar", [](const Tensor& x) { return mul_scalar(x, -1.3); }, -1, 1, false);
  unary_op(
      "pow_scalar", [](const Tensor& x) { return pow_scalar(x, 2.5); }, 0.3, 1.5, false);
  unary_op(
      "neg", [](const Tensor& x) { return neg(x); }, -1, 1, false);
  unary_op(
      "exp", [](const Tensor& x) { return exp(x); }, -1, 1, false);
  unary_op(
      "log", [](const Tensor& x) { return log(x); }, 0.3, 2, false);
  unary_op(
      "sqrt", [](const Tensor& x) { return sqrt(x); }, 0.3, 2, false);
  unary_op(
      "silu", [](const Tensor& x) { return silu(x); }, -3, 3, false);
  unary_op(
      "gelu", [](const Tensor& x) { return gelu(x); }, -3, 3, false);
  unary_op(
      "relu", [](const Tensor& x) { return relu(x); }, 0, 0, true);
  r.push_back({"sum", [](Rng& g) {
                 std::vector<GradCase> cs;
                 for (int ax : {0, 1, -1})
                   for (bool keep : {false, true})
                     cs.push_back({"sum",
                                   "[2,3,4] axis " + std::to_string(ax) + (keep ? " keepdim" : ""),
                                   {rnd(g, {2, 3, 4})},
                                   [ax, keep](const V& in) { return sum(in[0], ax, keep); }});
                 return cs;
               }});
  r.push_back(
      {"mean", [](Rng& g) {
         return std::vector<GradCase>{
             {"mean", "[2,3,4] axis 1", {rnd(g, {2, 3, 4})}, [](const V& in) { return mean(in[0], 1); }},
             {"mean", "[3,5] axis -1 keepdim", {rnd(g, {3, 5})}, [](const V& in) { return mean(in[0], -1, true); }}};
       }});
  r.push_back({"sum_all", [](Rng& g) {
                 return std::vector<GradCase>{
                     unary_case("sum_all", rnd(g, {2, 3, 4}), [](const Tensor& x) { return sum_all(x); })};
               }});
  r.push_back({"mean_all", [](Rng& g) {
                 return std::vector<GradCase>{
                     unary_case("mean_all", rnd(g, {2, 3, 4}), [](const Tensor& x) { return mean_all(x); })};
               }});
  r.push_back({"softmax", [](Rng& g) {
                 return std::vector<GradCase>{
                     unary_case("softmax", rnd(g, {3, 5}, -2, 2), [](const Tensor& x) { return softmax(x); }),
                     {"softmax",
                      "[2,3,4,4] causal",
                      {rnd(g, {2, 3, 4, 4}, -2, 2)},
                      [](const V& in) { return softmax(in[0], true); }},
                     {"softmax", "[1,2,3,5] causal, Tq<Tk", {rnd(g, {1, 2, 3, 5}, -2, 2)}, [](const V& in) {
                        return softmax(in[0], true);
                      }}};
               }});
  r.push_back({"log_softmax", [](Rng& g) {
                 return std::vector<GradCase>{unary_case("log_softmax", rnd(g, {3, 5}, -2, 2),
                                                         [](const Tensor& x) { return log_softmax(x); }),
                                              unary_case("log_softmax", rnd(g, {2, 3, 7}, -2, 2),
                                                         [](const Tensor& x) { return log_softmax(x); })};
               }});
  r.push_back({"rmsnorm", [](Rng& g) {
                 return std::vector<GradCase>{{"rmsnorm",
                                               "[2,3,8]*w[8]",
                                               {rnd(g, {2, 3, 8}), rnd(g, {8})},
                                               [](const V& in) { return rmsnorm(in[0], in[1], 1e-5); }},
                                              {"rmsnorm", "[5]*w[5]", {rnd(g, {5}), rnd(g, {5})}, [](const V& in) {
                                                 return rmsnorm(in[0], in[1], 1e-5);
                                               }}};
               }});
  r.push_back({"layernorm", [](Rng& g) {
                 return std::vector<GradCase>{
                     {"layernorm", "[2,3,8]*w[8]+b[8]", {rnd(g, {2, 3, 8}), rnd(g, {8}), rnd(g, {8})}, [](const V& in) {
                        return layernorm(in[0], in[1], in[2], 1e-5);
                      }}};
               }});
  r.push_back({"cross_entropy", [](Rng& g) {
                 return std::vector<GradCase>{{"cross_entropy",
                                               "logits[6,7] (one ignored row)",
                                               {rnd(g, {6, 7}, -2, 2), ids(g, {6}, 7, true)},
                                               [](const V& in) { return cross_entropy(in[0], in[1]); }},
                                              {"cross_entropy",
                                               "logits[2,3,5]",
                                               {rnd(g, {2, 3, 5}, -2, 2), ids(g, {2, 3}, 5)},
                                               [](const V& in) { return cross_entropy(in[0], in[1]); }}};
               }});
  r.push_back({"rope", [](Rng& g) {
                 return std::vector<GradCase>{
                     {"rope", "[2,3,2,4]", {rnd(g, {2, 3, 2, 4})}, [](const V& in) { return rope(in[0], 0); }},
                     {"rope", "[1,4,3,6] offset 5", {rnd(g, {1, 4, 3, 6})}, [](const V& in) { return rope(in[0], 5); }},
                     {"rope", "[2,4,2,4] per-token positions", {rnd(g, {2, 4, 2, 4})}, [](const V& in) {
                        return rope(in[0], 0, 10000.0, Tensor::from_i32({0, 1, 0, 1, 2, 3, 4, 0}, {2, 4}));
                      }}};
               }});
  r.push_back({"embedding", [](Rng& g) {
                 return std::vector<GradCase>{
                     {"embedding", "table[7,3] ids[2,5]", {rnd(g, {7, 3}), ids(g, {2, 5}, 7)}, [](const V& in) {
                        return embedding(in[0], in[1]);
                      }}};
               }});
  r.push_back(
      {"attention", [](Rng& g) {
         std::vector<GradCase> cs;
         auto at = [&](int64_t B, int64_t H, int64_t KV, int64_t Tq, int64_t Tk, int64_t D, bool causal, int64_t kv_len,
                       Keys keys = Keys::Rows) {
           const bool kt = keys == Keys::Transposed;
           std::string d = "q[" + std::to_string(B) + "," + std::to_string(H) + "," + std::to_string(Tq) + "," +
                           std::to_string(D) + "] kv[" + std::to_string(B) + "," + std::to_string(KV) + "," +
                           std::to_string(Tk) + "," + std::to_string(D) + "]" + (causal ? " causal" : "") +
                           (kv_len >= 0 ? " kv_len " + std::to_string(kv_len) : "") + (kt ? " keys transposed" : "");
           const Shape ks = kt ? Shape{B, KV, D, Tk} : Shape{B, KV, Tk, D};
           cs.push_back(
               {"attention",
                d,
                {rnd(g, {B, H, Tq, D}), rnd(g, ks), rnd(g, {B, KV, Tk, D})},
                [causal, kv_len, keys](const V& in) { return attention(in[0], in[1], in[2], causal, kv_len, keys); }});
         };
         at(2, 4, 2, 3, 3, 4, true, -1);                    // grouped, causal
         at(1, 2, 2, 4, 4, 3, true, -1);                    // multi-head
         at(2, 4, 1, 3, 3, 2, false, -1);                   // multi-query, full
         at(1, 4, 2, 2, 5, 4, true, -1);                    // Tq < Tk (decoding against a cache)
         at(1, 2, 1, 2, 6, 4, true, 4);                     // only the first 4 cache slots in use
         at(1, 4, 2, 70, 70, 3, true, -1);                  // causal staircase: 2 row blocks per head (kCausalBlock 64)
         at(1, 2, 1, 70, 80, 2, true, 75);                  // staircase with Tq < Tk and an unused cache tail
         at(1, 4, 2, 1, 5, 4, true, 3, Keys::Transposed);   // a KV cache's layout: one query, 3 of 5 slots
         at(2, 4, 2, 3, 6, 3, true, -1, Keys::Transposed);  // grouped, Tq < Tk
         at(1, 2, 1, 70, 80, 2, true, 75, Keys::Transposed);  // staircase over transposed keys
         // Packed rows: block-diagonal causal masks from per-token segment ids.
         auto packed = [&](int64_t B, int64_t H, int64_t KV, int64_t T, int64_t D, std::vector<int32_t> seg) {
           const Tensor sg = Tensor::from_i32(seg, {B, T});
           cs.push_back({"attention",
                         "q[" + std::to_string(B) + "," + std::to_string(H) + "," + std::to_string(T) + "," +
                             std::to_string(D) + "] kv heads " + std::to_string(KV) + " causal, packed segments",
                         {rnd(g, {B, H, T, D}), rnd(g, {B, KV, T, D}), rnd(g, {B, KV, T, D})},
                         [sg](const V& in) { return attention(in[0], in[1], in[2], true, -1, Keys::Rows, sg); }});
         };
         packed(2, 4, 2, 6, 3, {0, 0, 1, 1, 1, 2, 0, 0, 0, 0, 1, 1});  // three and two samples
         std::vector<int32_t> long_seg(70);  // staircase (2 row blocks) with a sample boundary inside each block
         for (int32_t t = 0; t < 70; ++t) long_seg[static_cast<size_t>(t)] = t < 30 ? 0 : t < 66 ? 1 : 2;
         packed(1, 2, 1, 70, 2, long_seg);
         return cs;
       }});
  r.push_back({"reshape", [](Rng& g) {
                 return std::vector<GradCase>{{"reshape", "[2,3,4]->[6,4]", {rnd(g, {2, 3, 4})}, [](const V& in) {
                                                 return mul(reshape(in[0], {6, 4}), reshape(in[0], {6, 4}));
                                               }}};
               }});
  r.push_back(
      {"transpose", [](Rng& g) {
         return std::vector<GradCase>{
             {"transpose", "[2,3,4] 0<->2", {rnd(g, {2, 3, 4})}, [](const V& in) { return transpose(in[0], 0, 2); }},
             {"transpose",
              "[2,3,4,5] 1<->2",
              {rnd(g, {2, 3, 4, 5})},
              [](const V& in) { return transpose(in[0], 1, 2); }},
             {"transpose", "[2,1,3,4] 1<->2 (a view)", {rnd(g, {2, 1, 3, 4})}, [](const V& in) {
                return mul(transpose(in[0], 1, 2), transpose(in[0], 1, 2));
              }}};
       }});
  r.push_back({"slice", [](Rng& g) {
                 return std::vector<GradCase>{{"slice",
                                               "[4,5] axis 0 [1,3)",
                                               {rnd(g, {4, 5})},
                                               [](const V& in) { return slice(in[0], 0, 1, 2); }},
                                              {"slice", "[2,3,6] axis -1 [2,5)", {rnd(g, {2, 3, 6})}, [](const V& in) {
                                                 return slice(in[0], -1, 2, 3);
                                               }}};
               }});
  r.push_back({"concat", [](Rng& g) {
                 return std::vector<GradCase>{{"concat",
                                               "[2,3]+[2,4] axis 1",
                                               {rnd(g, {2, 3}), rnd(g, {2, 4})},
                                               [](const V& in) {
                                                 return concat({in[0], in[1]}, 1);
                                               }},
                                              {"concat",
                                               "[1,3,2]+[2,3,2]+[1,3,2] axis 0",
                                               {rnd(g, {1, 3, 2}), rnd(g, {2, 3, 2}), rnd(g, {1, 3, 2})},
                                               [](const V& in) {
                                                 return concat({in[0], in[1], in[2]}, 0);
                                               }}};
               }});
  r.push_back({"dropout", [](Rng& g) {
                 return std::vector<GradCase>{
                     {"dropout", "[4,8] p=0.3", {rnd(g, {4, 8})}, [](const V& in) { return dropout(in[0], 0.3, 42); }}};
               }});
  r.push_back(
      {"chain_matmul", [](Rng& g) {
         std::vector<GradCase> cs;
         cs.push_back({"chain_matmul",
                       "x[3,4]*F[4,2]*F[2,2]*F[5,2]^T",
                       {rnd(g, {3, 4}), rnd(g, {4, 2}), rnd(g, {2, 2}), rnd(g, {5, 2})},
                       [](const V& in) {
                         return chain_matmul(in[0], {in[1], in[2], transposed_factor(in[3])});
                       }});
         cs.push_back({"chain_matmul", "x[2,3,4]*F[4,5]", {rnd(g, {2, 3, 4}), rnd(g, {4, 5})}, [](const V& in) {
                         return chain_matmul(in[0], {in[1]});
                       }});
         cs.push_back({"chain_matmul",
                       "x[6,5]*A[5,3]*W[3,3]^3*B[4,3]^T, span W",
                       {rnd(g, {6, 5}), rnd(g, {5, 3}), rnd(g, {3, 3}), rnd(g, {3, 3}), rnd(g, {3, 3}), rnd(g, {4, 3})},
                       [](const V& in) {
                         static ChainProbe probe;
                         probe.span_begin = 1;
                         probe.span_end = 4;
                         return chain_matmul(in[0], {in[1], in[2], in[3], in[4], transposed_factor(in[5])}, &probe);
                       }});
         // Affine chains: a bias after a factor (first, middle, transposed last).
         cs.push_back(
             {"chain_matmul",
              "bias: x[3,4]*(F[4,2]+b)*(F[2,2]+b)*(F[5,2]^T+b)",
              {rnd(g, {3, 4}), rnd(g, {4, 2}), rnd(g, {2}), rnd(g, {2, 2}), rnd(g, {2}), rnd(g, {5, 2}), rnd(g, {5})},
              [](const V& in) {
                return chain_matmul(in[0],
                                    {affine(in[1], in[2]), affine(in[3], in[4]), ChainFactor(in[5], true, in[6])});
              }});
         cs.push_back({"chain_matmul",
                       "bias: x[2,3,5]*A[5,3]*(W[3,3]+b)^3*B[4,3]^T, span W",
                       {rnd(g, {2, 3, 5}), rnd(g, {5, 3}), rnd(g, {3, 3}), rnd(g, {3}), rnd(g, {3, 3}), rnd(g, {3}),
                        rnd(g, {3, 3}), rnd(g, {3}), rnd(g, {4, 3})},
                       [](const V& in) {
                         static ChainProbe probe;
                         probe.span_begin = 1;
                         probe.span_end = 4;
                         return chain_matmul(in[0],
                                             {in[1], affine(in[2], in[3]), affine(in[4], in[5]), affine(in[6], in[7]),
                                              transposed_factor(in[8])},
                                             &probe);
                       }});
         return cs;
       }});
  r.push_back(
      {"adapted_linear", [](Rng& g) {
         // y = x·wᵀ + s·x·op(F_1)⋯op(F_k). Trainable base: w is an input. Frozen base: w is a
         // constant of the case (the fine-tuning path: no gw, gx = gy·w plus the chain's share).
         std::vector<GradCase> cs;
         const double s = 0.7;
         cs.push_back({"adapted_linear",
                       "x[2,3,4]*w[5,4]^T + s*x*A[4,2]*B[5,2]^T",
                       {rnd(g, {2, 3, 4}), rnd(g, {5, 4}), rnd(g, {4, 2}), rnd(g, {5, 2})},
                       [s](const V& in) {
                         return adapted_linear(in[0], in[1], {in[2], transposed_factor(in[3])}, s);
                       }});
         cs.push_back({"adapted_linear",
                       "x[4]*w[3,4]^T + s*x*A*W1*B^T",
                       {rnd(g, {4}), rnd(g, {3, 4}), rnd(g, {4, 2}), rnd(g, {2, 2}), rnd(g, {3, 2})},
                       [s](const V& in) {
                         return adapted_linear(in[0], in[1], {in[2], in[3], transposed_factor(in[4])}, s);
                       }});
         const Tensor w0 = rnd(g, {4, 5});
         cs.push_back({"adapted_linear",
                       "frozen w, x[6,5]*A*W^3*B^T, span W",
                       {rnd(g, {6, 5}), rnd(g, {5, 3}), rnd(g, {3, 3}), rnd(g, {3, 3}), rnd(g, {3, 3}), rnd(g, {4, 3})},
                       [s, w0](const V& in) {
                         static ChainProbe probe;
                         probe.span_begin = 1;
                         probe.span_end = 4;
                         return adapted_linear(in[0], like(w0, in[0]),
                                               {in[1], in[2], in[3], in[4], transposed_factor(in[5])}, s, &probe);
                       }});
         const Tensor w1 = rnd(g, {2, 2});
         cs.push_back({"adapted_linear",
                       "frozen w, x[5,2]*(A[2,6]*B[2,6]^T)",
                       {rnd(g, {5, 2}), rnd(g, {2, 6}), rnd(g, {2, 6})},
                       [s, w1](const V& in) {
                         return adapted_linear(in[0], like(w1, in[0]), {in[1], transposed_factor(in[2])}, s);
                       }});
         const Tensor w2 = rnd(g, {3, 4}), x2 = rnd(g, {2, 2, 4});
         cs.push_back(
             {"adapted_linear",
              "frozen w and x, A[4,2]*W1*B[3,2]^T",
              {rnd(g, {4, 2}), rnd(g, {2, 2}), rnd(g, {3, 2})},
              [s, w2, x2](const V& in) {
                return adapted_linear(like(x2, in[0]), like(w2, in[0]), {in[0], in[1], transposed_factor(in[2])}, s);
              }});
         // Adapter dropout with a fixed mask (the seed fixes it): the chain reads x ⊙ keep/(1 − p).
         cs.push_back(
             {"adapted_linear",
              "dropout p=0.4 (fixed mask), x[3,4,5]*w[4,5]^T + s*x~*A*W1*B^T",
              {rnd(g, {3, 4, 5}), rnd(g, {4, 5}), rnd(g, {5, 2}), rnd(g, {2, 2}), rnd(g, {4, 2})},
              [s](const V& in) {
                return adapted_linear(in[0], in[1], {in[2], in[3], transposed_factor(in[4])}, s, nullptr, 0.4, 17);
              }});
         const Tensor w3 = rnd(g, {3, 6});
         cs.push_back({"adapted_linear",
                       "dropout p=0.25, frozen w, x[4,6]*A*affine(W1,b1)*B^T",
                       {rnd(g, {4, 6}), rnd(g, {6, 2}), rnd(g, {2, 2}), rnd(g, {2}), rnd(g, {3, 2})},
                       [s, w3](const V& in) {
                         return adapted_linear(in[0], like(w3, in[0]),
                                               {in[1], affine(in[2], in[3]), transposed_factor(in[4])}, s, nullptr,
                                               0.25, 5);
                       }});
         // LoRA with a learned bias in B's span (--adapter lora --chain-bias): y = x·wᵀ + s·(x·A + b)·Bᵀ.
         cs.push_back(
             {"adapted_linear",
              "bias on A: frozen w, x[2,3,5]*(A[5,3]+b)*B[4,3]^T",
              {rnd(g, {2, 3, 5}), rnd(g, {5, 3}), rnd(g, {3}), rnd(g, {4, 3})},
              [s, w0](const V& in) {
                return adapted_linear(in[0], like(w0, in[0]), {affine(in[1], in[2]), transposed_factor(in[3])}, s);
              }});
         cs.push_back({"adapted_linear",
                       "bias on A, dropout p=0.25: x[4,5]*w[4,5]^T + s*(x~*A+b)*B^T",
                       {rnd(g, {4, 5}), rnd(g, {4, 5}), rnd(g, {5, 2}), rnd(g, {2}), rnd(g, {4, 2})},
                       [s](const V& in) {
                         return adapted_linear(in[0], in[1], {affine(in[2], in[3]), transposed_factor(in[4])}, s,
                                               nullptr, 0.25, 9);
                       }});
         // The authors' LinChain: every chain factor an nn.Linear(r, r) with a bias.
         for (int n = 1; n <= 3; ++n) {
           V ins{rnd(g, {2, 3, 5}), rnd(g, {5, 3})};
           for (int j = 0; j < n; ++j) {
             ins.push_back(rnd(g, {3, 3}));
             ins.push_back(rnd(g, {3}));
           }
           ins.push_back(rnd(g, {4, 3}));
           cs.push_back({"adapted_linear", "bias: frozen w, x[2,3,5]*A*(W+b)^" + std::to_string(n) + "*B^T, span W",
                         ins, [s, w0, n](const V& in) {
                           static ChainProbe probe;
                           probe.span_begin = 1;
                           probe.span_end = 1 + n;
                           std::vector<ChainFactor> f{in[1]};
                           for (int j = 0; j < n; ++j) f.push_back(affine(in[2 + 2 * j], in[3 + 2 * j]));
                           f.push_back(transposed_factor(in[2 + 2 * static_cast<size_t>(n)]));
                           return adapted_linear(in[0], like(w0, in[0]), f, s, &probe);
                         }});
         }
         return cs;
       }});
  return r;
}

}  // namespace

const std::vector<GradOp>& grad_registry() {
  static const std::vector<GradOp> r = make_registry();
  return r;
}

}  // namespace cg::ops
