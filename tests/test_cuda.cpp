// tests/test_cuda.cpp — the CUDA backend against the CPU backend: every gradcheck registry
// case plus larger shapes that need many blocks (outputs and every input gradient, in
// float64 and float32), backend entries the ops do not reach (GEMM edge cases, optimizers,
// sum of squares, i32 copies), run-to-run bit identity, and the caching allocator. On a
// machine or build without CUDA the device tests print "skipped" and only the "no CUDA
// device" error is checked. The model's KV-cache decode path (plain backend calls, not ops)
// is compared too.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/cuda_api.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/llama/llama.h"
#include "ops/chain_matmul.h"
#include "ops/gradcheck.h"
#include "ops/ops.h"
#include "tests/skip.h"
#include "tests/test_util.h"

using namespace cg;

namespace {

struct Tol {
  double abs, rel;
};
constexpr Tol kTolF64{1e-9, 1e-9};
constexpr Tol kTolF32{1e-4, 1e-4};

// The output and every input's gradient (zeros where none arrived) of one run.
struct Run {
  std::vector<double> y;
  std::vector<std::vector<double>> grads;
  std::vector<std::vector<float>> raw_f32;  // y then grads, as stored (for bit checks)
};

// Runs case fn forward and backward (L = Σ y ⊙ r) with the float inputs cast to dt, on dev.
Run run_case(const ops::GradCase& c, Device dev, DType dt) {
  std::vector<Tensor> in;
  for (const Tensor& t : c.inputs) {
    Tensor u = is_float(t.dtype()) ? t.to(dt) : t;
    u = u.to(dev);
    if (u.same(t)) u = t.clone();
    if (is_float(u.dtype())) u.set_requires_grad(true);
    in.push_back(u);
  }
  tape_clear();
  Tensor y = c.fn(in);
  Rng rng(1234);
  const Tensor r = rand_uniform(y.shape(), -1.0, 1.0, rng, dt, dev);
  backward(ops::sum_all(ops::mul(y, r)));
  Run out;
  out.y = y.to_f64_vector();
  if (dt == DType::F32) out.raw_f32.push_back(y.to_f32_vector());
  for (const Tensor& u : in) {
    if (!is_float(u.dtype())) continue;
    const Tensor g = u.grad();
    out.grads.push_back(g.defined() ? g.to_f64_vector() : std::vector<double>(static_cast<size_t>(u.numel()), 0.0));
    if (dt == DType::F32)
      out.raw_f32.push_back(g.defined() ? g.to_f32_vector() : std::vector<float>(static_cast<size_t>(u.numel()), 0.0f));
  }
  return out;
}

// Number of elements with |got − ref| > abs + rel·|ref| (exact match always passes).
int64_t mismatches(const std::vector<double>& ref, const std::vector<double>& got, Tol tol, double* worst) {
  if (ref.size() != got.size()) return -1;
  int64_t bad = 0;
  *worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (ref[i] == got[i]) continue;
    const double diff = std::abs(got[i] - ref[i]);
    if (!(diff <= tol.abs + tol.rel * std::abs(ref[i]))) ++bad;
    if (!(diff <= *worst)) *worst = diff;
  }
  return bad;
}

// Runs c on CPU and CUDA in dtype dt and checks the output and every gradient.
void check_parity(const ops::GradCase& c, DType dt, Tol tol) {
  const Run ref = run_case(c, Device::CPU, dt);
  const Run got = run_case(c, Device::CUDA, dt);
  const std::string name = c.op + " " + c.detail + " " + dtype_name(dt);
  double worst = 0;
  const int64_t bad_y = mismatches(ref.y, got.y, tol, &worst);
  CHECK_MESSAGE(bad_y == 0,
                name << ": output: " << bad_y << " of " << ref.y.size() << " elements differ, max diff " << worst);
  REQUIRE(ref.grads.size() == got.grads.size());
  for (size_t k = 0; k < ref.grads.size(); ++k) {
    const int64_t bad = mismatches(ref.grads[k], got.grads[k], tol, &worst);
    CHECK_MESSAGE(bad == 0, name << ": grad of input " << k << ": " << bad << " of " << ref.grads[k].size()
                                 << " elements differ, max diff " << worst);
  }
}

using V = std::vector<Tensor>;
Tensor rnd(Rng& g, const Shape& s, double lo = -1.0, double hi = 1.0) { return rand_uniform(s, lo, hi, g, DType::F64); }
Tensor ids(Rng& g, const Shape& s, int64_t n, bool skewed, int every_ignored = 0) {
  std::vector<int32_t> v(static_cast<size_t>(s.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    // skewed: half the ids hit row 0, so one table row gathers many tokens
    v[i] = skewed && g.uniform() < 0.5 ? 0 : static_cast<int32_t>(g.below(static_cast<uint64_t>(n)));
    if (every_ignored > 0 && i % static_cast<size_t>(every_ignored) == 1) v[i] = -1;
  }
  return Tensor::from_i32(v, s);
}

// Cases large enough to need many blocks, several row blocks in the norm weight
// gradients, grid-stride loops, the block-per-output sum_to path, and tokens that repeat.
std::vector<ops::GradCase> large_cases(Rng& g) {
  using namespace ops;
  std::vector<GradCase> cs;
  cs.push_back({"matmul", "[3,70,130]*[130,90]", {rnd(g, {3, 70, 130}), rnd(g, {130, 90})}, [](const V& in) {
                  return matmul(in[0], in[1]);
                }});
  cs.push_back(
      {"matmul", "[2,2,33,65]*[2,2,47,65]^T", {rnd(g, {2, 2, 33, 65}), rnd(g, {2, 2, 47, 65})}, [](const V& in) {
         return matmul(in[0], in[1], false, true);
       }});
  cs.push_back({"matmul", "[2,65,33]^T*[47,65]^T", {rnd(g, {2, 65, 33}), rnd(g, {47, 65})}, [](const V& in) {
                  return matmul(in[0], in[1], true, true);
                }});
  cs.push_back({"linear", "[4,50,96]*w[200,96]^T", {rnd(g, {4, 50, 96}), rnd(g, {200, 96})}, [](const V& in) {
                  return linear(in[0], in[1]);
                }});
  cs.push_back(
      {"add", "[64,300]+[300]", {rnd(g, {64, 300}), rnd(g, {300})}, [](const V& in) { return add(in[0], in[1]); }});
  cs.push_back({"mul", "[8,1,40,1]*[1,16,1,50]", {rnd(g, {8, 1, 40, 1}), rnd(g, {1, 16, 1, 50})}, [](const V& in) {
                  return mul(in[0], in[1]);
                }});
  cs.push_back({"div", "[30,40,50]/[40,1]", {rnd(g, {30, 40, 50}), rnd(g, {40, 1}, 0.5, 1.5)}, [](const V& in) {
                  return div(in[0], in[1]);
                }});
  cs.push_back({"sum", "[300,200] axis 0", {rnd(g, {300, 200})}, [](const V& in) { return sum(in[0], 0); }});
  cs.push_back({"sum", "[50,5000] axis -1", {rnd(g, {50, 5000})}, [](const V& in) { return sum(in[0], -1); }});
  cs.push_back({"mean", "[4,2000,3] axis 1", {rnd(g, {4, 2000, 3})}, [](const V& in) { return mean(in[0], 1); }});
  cs.push_back({"sum_all", "[700,1500]", {rnd(g, {700, 1500})}, [](const V& in) { return sum_all(in[0]); }});
  cs.push_back({"silu", "[1000,300]", {rnd(g, {1000, 300}, -4, 4)}, [](const V& in) { return silu(in[0]); }});
  cs.push_back({"gelu", "[1000,300]", {rnd(g, {1000, 300}, -4, 4)}, [](const V& in) { return gelu(in[0]); }});
  cs.push_back(
      {"pow_scalar", "[500,300]", {rnd(g, {500, 300}, 0.3, 2)}, [](const V& in) { return pow_scalar(in[0], 1.7); }});
  cs.push_back({"softmax", "[3,2,200,200] causal", {rnd(g, {3, 2, 200, 200}, -3, 3)}, [](const V& in) {
                  return softmax(in[0], true);
                }});
  cs.push_back({"softmax", "[2,1,100,300] causal Tq<Tk", {rnd(g, {2, 1, 100, 300}, -3, 3)}, [](const V& in) {
                  return softmax(in[0], true);
                }});
  cs.push_back({"softmax", "[10,5000]", {rnd(g, {10, 5000}, -3, 3)}, [](const V& in) { return softmax(in[0]); }});
  cs.push_back(
      {"log_softmax", "[20,3000]", {rnd(g, {20, 3000}, -3, 3)}, [](const V& in) { return log_softmax(in[0]); }});
  cs.push_back({"rmsnorm", "[3,100,384]", {rnd(g, {3, 100, 384}), rnd(g, {384})}, [](const V& in) {
                  return rmsnorm(in[0], in[1]);
                }});
  cs.push_back({"rmsnorm", "[2,70,8000]", {rnd(g, {2, 70, 8000}), rnd(g, {8000})}, [](const V& in) {
                  return rmsnorm(in[0], in[1]);
                }});
  cs.push_back({"layernorm", "[200,200]", {rnd(g, {200, 200}), rnd(g, {200}), rnd(g, {200})}, [](const V& in) {
                  return layernorm(in[0], in[1], in[2]);
                }});
  cs.push_back({"cross_entropy",
                "[300,2000] every 7th ignored",
                {rnd(g, {300, 2000}, -3, 3), ids(g, {300}, 2000, false, 7)},
                [](const V& in) { return cross_entropy(in[0], in[1]); }});
  cs.push_back(
      {"rope", "[2,50,4,64] offset 100", {rnd(g, {2, 50, 4, 64})}, [](const V& in) { return rope(in[0], 100); }});
  {  // packed rows: positions restart per sample
    std::vector<int32_t> pos(100);
    for (int32_t t = 0; t < 100; ++t) pos[static_cast<size_t>(t)] = t < 50 ? t % 20 : (t - 50) % 33;
    cs.push_back({"rope",
                  "[2,50,4,64] per-token positions",
                  {rnd(g, {2, 50, 4, 64}), Tensor::from_i32(pos, {2, 50})},
                  [](const V& in) { return rope(in[0], 0, 10000.0, in[1]); }});
  }
  cs.push_back({"embedding",
                "table[500,96] ids[40,50] skewed",
                {rnd(g, {500, 96}), ids(g, {40, 50}, 500, true)},
                [](const V& in) { return embedding(in[0], in[1]); }});
  cs.push_back({"attention",
                "q[2,8,128,32] kv[2,2,128,32] causal",
                {rnd(g, {2, 8, 128, 32}), rnd(g, {2, 2, 128, 32}), rnd(g, {2, 2, 128, 32})},
                [](const V& in) { return attention(in[0], in[1], in[2], true); }});
  cs.push_back({"attention",
                "q[1,4,3,16] kv[1,4,40,16] kv_len 20",
                {rnd(g, {1, 4, 3, 16}), rnd(g, {1, 4, 40, 16}), rnd(g, {1, 4, 40, 16})},
                [](const V& in) { return attention(in[0], in[1], in[2], true, 20); }});
  {  // packed rows: block-diagonal causal attention
    std::vector<int32_t> seg(256);
    for (int32_t t = 0; t < 256; ++t) seg[static_cast<size_t>(t)] = t < 128 ? t / 40 : (t - 128) / 70;
    cs.push_back(
        {"attention",
         "q[2,8,128,32] kv[2,2,128,32] causal, packed segments",
         {rnd(g, {2, 8, 128, 32}), rnd(g, {2, 2, 128, 32}), rnd(g, {2, 2, 128, 32}), Tensor::from_i32(seg, {2, 128})},
         [](const V& in) { return attention(in[0], in[1], in[2], true, -1, Keys::Rows, in[3]); }});
  }
  cs.push_back(
      {"dropout", "[1000,300] p=0.1", {rnd(g, {1000, 300})}, [](const V& in) { return dropout(in[0], 0.1, 7); }});
  cs.push_back({"transpose", "[8,64,16,32] 1<->2", {rnd(g, {8, 64, 16, 32})}, [](const V& in) {
                  return transpose(in[0], 1, 2);
                }});
  cs.push_back(
      {"slice", "[40,300,20] axis 1", {rnd(g, {40, 300, 20})}, [](const V& in) { return slice(in[0], 1, 17, 200); }});
  cs.push_back({"concat", "[30,100]+[30,300] axis 1", {rnd(g, {30, 100}), rnd(g, {30, 300})}, [](const V& in) {
                  return concat({in[0], in[1]}, 1);
                }});
  cs.push_back({"chain_matmul",
                "x[64,96]*A[96,8]*W[8,8]^3*B[80,8]^T",
                {rnd(g, {64, 96}), rnd(g, {96, 8}), rnd(g, {8, 8}), rnd(g, {8, 8}), rnd(g, {8, 8}), rnd(g, {80, 8})},
                [](const V& in) {
                  return chain_matmul(in[0], {in[1], in[2], in[3], in[4], transposed_factor(in[5])});
                }});
  // A small transformer-like block: every kernel family in one graph.
  cs.push_back({"block",
                "embed+rmsnorm+rope+attention+silu+ce",
                {rnd(g, {64, 32}), ids(g, {2, 24}, 64, true), rnd(g, {32}), rnd(g, {96, 32}), rnd(g, {64, 32})},
                [](const V& in) {
                  Tensor x = embedding(in[0], in[1]);  // [2,24,32]
                  Tensor h = rmsnorm(x, in[2]);        // [2,24,32]
                  Tensor qkv = linear(h, in[3]);       // [2,24,96]
                  Tensor q = rope(reshape(slice(qkv, 2, 0, 32), {2, 24, 4, 8}));
                  Tensor k = rope(reshape(slice(qkv, 2, 32, 32), {2, 24, 4, 8}));
                  Tensor v = reshape(slice(qkv, 2, 64, 32), {2, 24, 4, 8});
                  Tensor a = attention(transpose(q, 1, 2), transpose(k, 1, 2), transpose(v, 1, 2), true);  // [2,4,24,8]
                  Tensor o = add(x, reshape(transpose(a, 1, 2), {2, 24, 32}));
                  Tensor logits = linear(silu(o), in[4]);  // [2,24,64]
                  return cross_entropy(logits, in[1]);
                }});
  return cs;
}

bool have_cuda() {
  if (cuda_available()) return true;
  return cg::testing::skip(cg::testing::SkipKind::Cuda, "no CUDA device");
}

}  // namespace

TEST_CASE("cuda: asking for the device without one gives a clear DeviceError") {
  if (cuda_available()) {
    CHECK(backend_for(Device::CUDA).device() == Device::CUDA);
    CHECK(!cuda_device_name().empty());
    MESSAGE("CUDA device: " << cuda_device_name());
    return;
  }
  std::string msg;
  try {
    backend_for(Device::CUDA);
  } catch (const DeviceError& e) {
    msg = e.what();
  }
  CHECK_MESSAGE((msg.find("no CUDA device") != std::string::npos ||
                 msg.find("built without CUDA") != std::string::npos),
                "message was: " << msg);
  CHECK_THROWS_AS(Tensor::zeros({2, 3}, DType::F32, Device::CUDA), DeviceError);
  CHECK(cuda_malloc_count() == 0);
  CHECK(cuda_device_name().empty());
}

TEST_CASE("cuda: every gradcheck registry case matches the CPU (f64 and f32)") {
  if (!have_cuda()) return;
  int cases = 0;
  for (const auto& op : ops::grad_registry()) {
    Rng rng(0);
    for (const auto& c : op.make(rng)) {
      check_parity(c, DType::F64, kTolF64);
      check_parity(c, DType::F32, kTolF32);
      ++cases;
    }
  }
  MESSAGE(cases << " registry cases compared on " << cuda_device_name());
  CHECK(cases > 40);
}

TEST_CASE("cuda: large shapes match the CPU (f64 and f32)") {
  if (!have_cuda()) return;
  Rng rng(5);
  for (const auto& c : large_cases(rng)) {
    check_parity(c, DType::F64, kTolF64);
    check_parity(c, DType::F32, kTolF32);
  }
}

TEST_CASE("cuda: the same computation twice gives identical bits") {
  if (!have_cuda()) return;
  Rng rng(6);
  for (const auto& c : large_cases(rng)) {
    const Run a = run_case(c, Device::CUDA, DType::F32);
    const Run b = run_case(c, Device::CUDA, DType::F32);
    REQUIRE(a.raw_f32.size() == b.raw_f32.size());
    bool same = true;
    for (size_t k = 0; k < a.raw_f32.size(); ++k)
      same = same && a.raw_f32[k].size() == b.raw_f32[k].size() &&
             std::memcmp(a.raw_f32[k].data(), b.raw_f32[k].data(), a.raw_f32[k].size() * sizeof(float)) == 0;
    CHECK_MESSAGE(same, c.op << " " << c.detail << ": two runs differ in their bits");
  }
  Rng r2(7);
  const Tensor x = rand_uniform({3000, 1000}, -1, 1, r2, DType::F32, Device::CUDA);
  Backend& be = backend_for(Device::CUDA);
  const double s1 = be.sum_squares(x), s2 = be.sum_squares(x);
  CHECK(std::memcmp(&s1, &s2, sizeof(double)) == 0);
}

TEST_CASE("cuda: backend entries match the CPU (sum_squares, GEMM edge cases, optimizers, i32 copy)") {
  if (!have_cuda()) return;
  Backend& cpu = backend_for(Device::CPU);
  Backend& gpu = backend_for(Device::CUDA);
  Rng rng(8);

  SUBCASE("sum_squares") {
    for (DType dt : {DType::F64, DType::F32})
      for (int64_t n : {int64_t{1}, int64_t{4095}, int64_t{4097}, int64_t{3'000'001}}) {
        const Tensor x = rand_uniform({n}, -1, 1, rng, dt);
        const double a = cpu.sum_squares(x), b = gpu.sum_squares(x.to(Device::CUDA));
        CHECK_MESSAGE(std::abs(a - b) <= 1e-12 * a, dtype_name(dt) << " n=" << n << ": cpu " << a << " cuda " << b);
      }
  }

  SUBCASE("gemm with k = 0 scales C by beta") {
    for (double beta : {0.0, 2.0}) {
      Tensor c_cpu = Tensor::full({3, 4}, 5.0, DType::F64);
      Tensor c_gpu = Tensor::full({3, 4}, 5.0, DType::F64, Device::CUDA);
      Tensor a_cpu = Tensor::zeros({3, 1}, DType::F64), a_gpu = Tensor::zeros({3, 1}, DType::F64, Device::CUDA);
      cpu.gemm(mat(a_cpu, 1, 3, 0), mat(a_cpu, 1, 0, 4), mat(c_cpu), 1.0, beta);
      gpu.gemm(mat(a_gpu, 1, 3, 0), mat(a_gpu, 1, 0, 4), mat(c_gpu), 1.0, beta);
      CHECK(c_cpu.to_f64_vector() == c_gpu.to_f64_vector());
      CHECK(c_gpu.to_f64_vector()[0] == 5.0 * beta);
    }
  }

  SUBCASE("gemm into a C of batch 1 sums the batch in order") {
    const Tensor a = rand_uniform({3, 4, 5}, -1, 1, rng, DType::F64),
                 b = rand_uniform({3, 5, 6}, -1, 1, rng, DType::F64);
    const Tensor c0 = rand_uniform({4, 6}, -1, 1, rng, DType::F64);
    Tensor c_cpu = c0.clone(), c_gpu = c0.to(Device::CUDA);
    const Tensor a_gpu = a.to(Device::CUDA), b_gpu = b.to(Device::CUDA);
    cpu.gemm(mat(a, 3, 4, 5), mat(b, 3, 5, 6), mat(c_cpu), 0.5, 0.25);
    gpu.gemm(mat(a_gpu, 3, 4, 5), mat(b_gpu, 3, 5, 6), mat(c_gpu), 0.5, 0.25);
    double worst = 0;
    CHECK(mismatches(c_cpu.to_f64_vector(), c_gpu.to_f64_vector(), kTolF64, &worst) == 0);
  }

  SUBCASE("adamw and sgd, three steps") {
    for (DType dt : {DType::F64, DType::F32}) {
      const Tol tol = dt == DType::F64 ? kTolF64 : Tol{1e-6, 1e-5};
      const int64_t n = 100'003;
      const Tensor p0 = rand_uniform({n}, -1, 1, rng, dt), g0 = rand_uniform({n}, -1, 1, rng, dt);
      Tensor p[2] = {p0.clone(), p0.clone().to(Device::CUDA)};
      Tensor m[2] = {Tensor::zeros({n}, dt), Tensor::zeros({n}, dt, Device::CUDA)};
      Tensor v[2] = {Tensor::zeros({n}, dt), Tensor::zeros({n}, dt, Device::CUDA)};
      Tensor q[2] = {p0.clone(), p0.clone().to(Device::CUDA)};
      Tensor buf[2] = {Tensor::zeros({n}, dt), Tensor::zeros({n}, dt, Device::CUDA)};
      Tensor q2[2] = {p0.clone(), p0.clone().to(Device::CUDA)};
      const Tensor g[2] = {g0, g0.to(Device::CUDA)};
      Tensor none;
      for (int d = 0; d < 2; ++d) {
        Backend& be = d == 0 ? cpu : gpu;
        for (int64_t step = 1; step <= 3; ++step) {
          be.adamw(p[d], g[d], m[d], v[d], 1e-2, 0.9, 0.999, 1e-8, 0.1, step);
          be.sgd(q[d], g[d], buf[d], 1e-2, 0.9, 0.01);
          be.sgd(q2[d], g[d], none, 1e-2, 0.0, 0.0);
        }
      }
      double worst = 0;
      CHECK_MESSAGE(mismatches(p[0].to_f64_vector(), p[1].to_f64_vector(), tol, &worst) == 0,
                    "adamw param, max diff " << worst);
      CHECK_MESSAGE(mismatches(v[0].to_f64_vector(), v[1].to_f64_vector(), tol, &worst) == 0,
                    "adamw v, max diff " << worst);
      CHECK_MESSAGE(mismatches(q[0].to_f64_vector(), q[1].to_f64_vector(), tol, &worst) == 0,
                    "sgd momentum, max diff " << worst);
      CHECK_MESSAGE(mismatches(q2[0].to_f64_vector(), q2[1].to_f64_vector(), tol, &worst) == 0,
                    "sgd plain, max diff " << worst);
    }
  }

  SUBCASE("i32 fill and copy_box") {
    std::vector<int32_t> vals(6 * 7);
    for (size_t i = 0; i < vals.size(); ++i) vals[i] = static_cast<int32_t>(i * 3 - 20);
    const Tensor src = Tensor::from_i32(vals, {6, 7}, Device::CUDA);
    Tensor dst = Tensor::empty({7, 6}, DType::I32, Device::CUDA);
    gpu.fill(dst, -1);
    const int64_t ss[4] = {0, 0, 1, 7}, ds[4] = {0, 0, 6, 1}, sh[4] = {1, 1, 7, 3};  // first 3 rows, transposed
    gpu.copy_box(DType::I32, src.raw(), ss, dst.raw(), ds, sh, false);
    const std::vector<int32_t> out = dst.to_i32_vector();
    bool ok = true;
    for (int64_t r = 0; r < 7; ++r)
      for (int64_t c = 0; c < 6; ++c)
        ok = ok && out[static_cast<size_t>(r * 6 + c)] == (c < 3 ? vals[static_cast<size_t>(c * 7 + r)] : -1);
    CHECK(ok);
  }
}

TEST_CASE("cuda: the caching allocator stops calling cudaMalloc after warm-up") {
  if (!have_cuda()) return;
  Rng rng(9);
  const auto cs = large_cases(rng);
  const ops::GradCase& block = cs.back();
  REQUIRE(block.op == "block");
  for (int i = 0; i < 2; ++i) run_case(block, Device::CUDA, DType::F32);
  const int64_t before = cuda_malloc_count();
  for (int i = 0; i < 3; ++i) run_case(block, Device::CUDA, DType::F32);
  CHECK_MESSAGE(cuda_malloc_count() == before,
                "cudaMalloc calls went from " << before << " to " << cuda_malloc_count());
  CHECK(before > 0);
}

TEST_CASE("cuda: KV-cache decoding on the GPU equals the CPU's full forward (f64 and f32)") {
  if (!have_cuda()) return;
  const models::LlamaConfig c = cg::testing::tiny_llama_config(24);
  const models::LlamaModel cpu_model(c, 4);
  const models::Checkpoint ck = cpu_model.to_checkpoint();
  Rng rng(8);
  std::vector<int32_t> ids(2 * 20);
  for (auto& t : ids) t = static_cast<int32_t>(rng.below(40));
  const Tensor tok = Tensor::from_i32(ids, {2, 20});
  NoGrad ng;
  for (DType dt : {DType::F64, DType::F32}) {
    auto cpu = models::LlamaModel::from_checkpoint(ck, Device::CPU, dt);
    auto gpu = models::LlamaModel::from_checkpoint(ck, Device::CUDA, dt);
    const std::vector<double> full = cpu->forward(tok).to_f64_vector();
    // One token at a time (B = 1, the generate path) and in chunks (B = 2).
    double worst = 0;
    for (int64_t b = 0; b < 2; ++b) {
      auto cache = gpu->make_cache(1);
      for (int64_t t = 0; t < 20; ++t) {
        const auto lg =
            gpu->forward(Tensor::from_i32({ids[static_cast<size_t>(b * 20 + t)]}, {1, 1}), &cache).to_f64_vector();
        for (int64_t v = 0; v < 40; ++v)
          worst =
              std::max(worst, std::fabs(lg[static_cast<size_t>(v)] - full[static_cast<size_t>((b * 20 + t) * 40 + v)]));
      }
    }
    auto cache = gpu->make_cache(2);
    int64_t pos = 0;
    for (int64_t n : {7, 1, 12}) {
      std::vector<int32_t> part;
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t t = pos; t < pos + n; ++t) part.push_back(ids[static_cast<size_t>(b * 20 + t)]);
      const auto lg = gpu->forward(Tensor::from_i32(part, {2, n}), &cache).to_f64_vector();
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t t = 0; t < n; ++t)
          for (int64_t v = 0; v < 40; ++v)
            worst = std::max(worst, std::fabs(lg[static_cast<size_t>((b * n + t) * 40 + v)] -
                                              full[static_cast<size_t>((b * 20 + pos + t) * 40 + v)]));
      pos += n;
    }
    MESSAGE(std::string(dtype_name(dt)) << ": max |GPU cached − CPU full| " << worst);
    CHECK(worst <= (dt == DType::F64 ? 1e-10 : 1e-5));
  }
}
