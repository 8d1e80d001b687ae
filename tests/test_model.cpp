// tests/test_model.cpp — LlamaModel on small random configs (parameter names and init,
// KV-cache decoding against the full forward at every position (with and without an
// unmerged adapter), checkpoint round trips, the training loss and its gradients, and
// the samplers) and on the real stories260K model when ../shared/data is present (KV cache,
// logits against the PyTorch reference, the llama2.c → safetensors round trip).
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "models/io/hf_llama.h"
#include "models/llama/llama.h"
#include "models/io/llama2c.h"
#include "models/io/safetensors.h"
#include "models/llama/sampling.h"
#include "models/text/tokenizer.h"
#include "ops/ops.h"
#include "tests/skip.h"
#include "tests/tolerances.h"

using namespace cg;
using cg::models::LlamaConfig;
using cg::models::LlamaModel;

namespace {

LlamaConfig small_config(bool tied) {
  LlamaConfig c;
  c.dim = 32;
  c.hidden_dim = 40;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 37;
  c.seq_len = 16;
  c.tied_embeddings = tied;
  return c;
}

Tensor random_ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(B * T));
  for (auto& x : v) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(V)));
  return Tensor::from_i32(v, {B, T});
}

// Larger weights than the pretraining init, so logits are not all near zero and the
// comparisons below mean something.
void scale_weights(LlamaModel& m, double s) {
  Tensor& f = m.params().flat();
  float* p = f.data<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = static_cast<float>(p[i] * s);
}

// Max |full[b,t,:] − cached[b,t,:]| / max |full| when the sequence is decoded in chunks of
// `chunks` (relative to the largest logit, as float32 rounding is).
double max_cache_diff(LlamaModel& m, const Tensor& ids, const std::vector<int64_t>& chunks) {
  NoGrad ng;
  const int64_t B = ids.dim(0), T = ids.dim(1), V = m.config().vocab_size;
  Tensor full = m.forward(ids);
  auto cache = m.make_cache(B);
  const auto all = ids.to_i32_vector();
  double worst = 0;
  int64_t pos = 0;
  for (int64_t n : chunks) {
    std::vector<int32_t> part;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = pos; t < pos + n; ++t) part.push_back(all[static_cast<size_t>(b * T + t)]);
    Tensor lg = m.forward(Tensor::from_i32(part, {B, n}), &cache);
    REQUIRE(lg.shape() == Shape({B, n, V}));
    const auto fv = full.to_f64_vector(), cv = lg.to_f64_vector();
    const double* pf = fv.data();
    const double* pc = cv.data();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t v = 0; v < V; ++v)
          worst =
              std::max(worst, static_cast<double>(std::fabs(pf[(b * T + pos + t) * V + v] - pc[(b * n + t) * V + v])));
    pos += n;
  }
  CHECK(cache.len == T);
  double big = 0;
  for (double v : full.to_f64_vector()) big = std::max(big, std::fabs(v));
  MESSAGE("max |logit| " << big << ", max |full − cached| " << worst);
  CHECK(big > 1.0);  // logits far from zero, so the comparison is not vacuous
  return worst / big;
}

// A test adapter: Δy = x · Dᵀ with a fixed random D[out,in].
struct DenseDelta : nn::Adapter {
  Tensor d;
  Tensor forward(const Tensor& x, const Tensor& w) override { return ops::add(ops::linear(x, w), ops::linear(x, d)); }
  Tensor delta_weight() override { return d.clone(); }
};

}  // namespace

TEST_CASE("LlamaModel: HF parameter names, count, tying and init scales") {
  for (bool tied : {false, true}) {
    LlamaModel m(small_config(tied), 1);
    const auto specs = models::hf_llama_tensor_specs(m.config());
    std::set<std::string> want, got;
    for (const auto& s : specs)
      if (!(tied && s.name == "lm_head.weight")) want.insert(s.name);
    for (const auto& [n, t] : m.params().params()) got.insert(n);
    CHECK(got == want);
    CHECK(m.params().numel() == m.config().param_count());
    CHECK(m.params().group() == "base");
    CHECK(m.lm_head().same(m.embedding()) == tied);
    CHECK(m.params().get("model.layers.1.self_attn.k_proj.weight").shape() == Shape({16, 32}));
    CHECK(m.params().get("model.layers.0.mlp.down_proj.weight").shape() == Shape({32, 40}));
  }
  LlamaConfig c = small_config(false);
  c.dim = 128;
  c.hidden_dim = 256;
  c.n_layers = 8;
  LlamaModel m(c, 7);
  auto stdev = [](const Tensor& t) {
    double s = 0;
    for (double v : t.to_f64_vector()) s += v * v;
    return std::sqrt(s / static_cast<double>(t.numel()));
  };
  CHECK(stdev(m.params().get("model.layers.3.self_attn.q_proj.weight")) == doctest::Approx(0.02).epsilon(0.05));
  CHECK(stdev(m.params().get("model.layers.3.mlp.down_proj.weight")) == doctest::Approx(0.02 / 4.0).epsilon(0.05));
  CHECK(stdev(m.params().get("model.layers.3.self_attn.o_proj.weight")) == doctest::Approx(0.02 / 4.0).epsilon(0.05));
  for (double v : m.params().get("model.norm.weight").to_f64_vector()) CHECK(v == 1.0);
  // Same seed, same weights; another seed, other weights.
  LlamaModel a(small_config(false), 3), b(small_config(false), 3), d(small_config(false), 4);
  CHECK(a.params().flat().to_f32_vector() == b.params().flat().to_f32_vector());
  CHECK(a.params().flat().to_f32_vector() != d.params().flat().to_f32_vector());
}

TEST_CASE("LlamaModel: linears() lists every projection with its HF module name") {
  LlamaModel m(small_config(false), 1);
  auto ls = m.linears();
  REQUIRE(ls.size() == 14);
  CHECK(ls[0].first == "model.layers.0.self_attn.q_proj");
  CHECK(ls[13].first == "model.layers.1.mlp.down_proj");
  for (auto& [name, lin] : ls) CHECK(lin->weight.same(m.params().get(name + ".weight")));
}

TEST_CASE("LlamaModel: KV-cache decoding equals the full forward at every position") {
  for (bool tied : {false, true}) {
    LlamaModel m(small_config(tied), 11);
    scale_weights(m, 5.0);
    // B = 1 is what generate runs (one-row products: GEMVs on the CPU); B = 2 has two-row
    // projections (GEMMs) and one-row attention products.
    for (int64_t B : {1, 2}) {
      CAPTURE(B);
      Tensor ids = random_ids(B, 12, m.config().vocab_size, 5);
      // float32: one-row GEMVs and many-row GEMMs sum in different orders, by a
      // BLAS-dependent amount (tests/tolerances.h).
      const double one_by_one = max_cache_diff(m, ids, std::vector<int64_t>(12, 1));
      const double chunked = max_cache_diff(m, ids, {5, 1, 4, 2});
      CHECK(one_by_one <= cg::testing::tol::kDecodeRel);
      CHECK(chunked <= cg::testing::tol::kDecodeRel);
    }
  }
}

TEST_CASE("LlamaModel: the decode path includes unmerged adapters") {
  LlamaModel m(small_config(false), 2);
  scale_weights(m, 5.0);
  Rng rng(9);
  for (auto& [name, lin] : m.linears()) {
    auto a = std::make_shared<DenseDelta>();
    a->d = rand_normal(lin->weight.shape(), 0.0, 0.05, rng);
    lin->adapter = a;
  }
  Tensor ids = random_ids(1, 9, m.config().vocab_size, 3);
  CHECK(max_cache_diff(m, ids, {4, 1, 1, 1, 1, 1}) <= cg::testing::tol::kDecodeRel);  // as above
  NoGrad ng;
  Tensor with = m.forward(ids);
  for (auto& [name, lin] : m.linears()) lin->adapter.reset();
  Tensor without = m.forward(ids);
  CHECK(with.to_f32_vector() != without.to_f32_vector());  // the adapters did change the output
}

TEST_CASE("LlamaModel: forward with a cache needs NoGrad and a fitting cache") {
  LlamaModel m(small_config(false), 1);
  auto cache = m.make_cache(1, 4);
  Tensor ids = random_ids(1, 3, m.config().vocab_size, 1);
  CHECK_THROWS_AS(m.forward(ids, &cache), cg::Error);
  NoGrad ng;
  m.forward(ids, &cache);
  CHECK(cache.len == 3);
  CHECK_THROWS_AS(m.forward(ids, &cache), ShapeError);                             // 3 + 3 > capacity 4
  CHECK_THROWS_AS(m.forward(random_ids(2, 1, 37, 1), &cache), ShapeError);         // batch 2 vs 1
  CHECK_THROWS_AS(m.forward(Tensor::from_i32({99}, {1, 1}), &cache), ShapeError);  // id ≥ vocab
  CHECK_THROWS_AS(m.forward(random_ids(1, 17, 37, 1)), ShapeError);                // T > seq_len
}

TEST_CASE("LlamaModel: to_checkpoint / from_checkpoint keeps the logits") {
  for (bool tied : {false, true}) {
    LlamaModel m(small_config(tied), 21);
    auto ck = m.to_checkpoint();
    CHECK(ck.tensors.size() == models::hf_llama_tensor_specs(m.config()).size());
    CHECK(ck.tensors.back().first == "lm_head.weight");
    auto m2 = LlamaModel::from_checkpoint(ck);
    NoGrad ng;
    Tensor ids = random_ids(2, 7, m.config().vocab_size, 8);
    CHECK(m.forward(ids).to_f32_vector() == m2->forward(ids).to_f32_vector());
    CHECK(m2->lm_head().same(m2->embedding()) == tied);
    // The checkpoint is a copy: changing the model afterwards does not change it.
    scale_weights(m, 2.0);
    CHECK(ck.tensors[0].second.to_f32_vector() != m.embedding().to_f32_vector());
  }
  auto ck = LlamaModel(small_config(false), 1).to_checkpoint();
  ck.tensors.pop_back();
  CHECK_THROWS_AS(LlamaModel::from_checkpoint(ck), FormatError);
}

TEST_CASE("LlamaModel: loss starts near ln V and its gradient reaches every parameter") {
  for (bool tied : {false, true}) {
    LlamaModel m(small_config(tied), 4);
    m.params().set_trainable(true);
    Tensor ids = random_ids(2, 16, m.config().vocab_size, 6);
    auto tv = random_ids(2, 16, m.config().vocab_size, 7).to_i32_vector();  // independent of ids
    tv[3] = -1;                                                             // an ignored target
    Tensor targets = Tensor::from_i32(tv, {2, 16});
    Tensor loss = m.loss(ids, targets);
    CHECK(loss.item() == doctest::Approx(std::log(37.0)).epsilon(0.02));
    backward(loss);
    for (const auto& [name, p] : m.params().params()) {
      double s = 0;
      for (double v : p.grad().to_f64_vector()) s += v * v;
      INFO(name);
      CHECK(s > 0);
    }
    // A few SGD steps on one batch lower the loss.
    const double first = loss.item();
    for (int step = 0; step < 20; ++step) {
      m.params().zero_grad();
      Tensor l = m.loss(ids, targets);
      backward(l);
      backend(m.params().flat()).axpy(-1.0, m.params().flat_grad(), m.params().flat());
    }
    NoGrad ng;
    CHECK(m.loss(ids, targets).item() < first - 0.5);
  }
}

TEST_CASE("sampling: argmax, greedy, determinism and top-p") {
  const std::vector<float> logits{0.1f, 2.0f, -1.0f, 2.0f, 0.5f};
  CHECK(models::argmax(logits.data(), 5) == 1);
  models::Sampler greedy(0.0, 0.9, 1);
  CHECK(greedy.sample(logits.data(), 5) == 1);
  models::Sampler a(1.0, 0.9, 42), b(1.0, 0.9, 42);
  std::vector<int> ca(5, 0);
  for (int i = 0; i < 2000; ++i) {
    const int32_t ta = a.sample(logits.data(), 5);
    CHECK(ta == b.sample(logits.data(), 5));
    ca[static_cast<size_t>(ta)]++;
  }
  // p ∝ e^logit = {0.062, 0.413, 0.021, 0.413, 0.092}: the smallest set reaching 0.9 is
  // {1, 3, 4} (mass 0.918), so tokens 0 and 2 never appear.
  CHECK(ca[0] == 0);
  CHECK(ca[2] == 0);
  CHECK(ca[1] > 600);
  CHECK(ca[3] > 600);
  // top-p tiny: only the most probable token (1 before 3 on the tie).
  models::Sampler narrow(1.0, 1e-6, 3);
  for (int i = 0; i < 20; ++i) CHECK(narrow.sample(logits.data(), 5) == 1);
  // Full multinomial (top_p = 1): every token shows up, frequencies follow softmax.
  models::Sampler full(1.0, 1.0, 5);
  std::vector<int> cf(5, 0);
  for (int i = 0; i < 20000; ++i) cf[static_cast<size_t>(full.sample(logits.data(), 5))]++;
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (int i = 0; i < 5; ++i)
    CHECK(cf[static_cast<size_t>(i)] / 20000.0 ==
          doctest::Approx(std::exp(logits[static_cast<size_t>(i)]) / z).epsilon(0.1));
  CHECK_THROWS_AS(models::Sampler(-1.0, 0.9, 0), FormatError);
}

// ---- stories260K (../shared/data): the real llama2.c model ------------------------------
namespace {

const char* kStoriesBin = "../shared/data/stories260K/stories260K.bin";
const char* kStoriesTok = "../shared/data/stories260K/tok512.bin";

bool have_stories() { return cg::testing::have_file(kStoriesBin) && cg::testing::have_file(kStoriesTok); }

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<int32_t> golden_tokens(int64_t n) {
  auto tok = models::load_tokenizer(kStoriesTok, 512);
  std::vector<int> ids = tok->encode(read_text("tests/golden/stories260K_greedy.txt"), true, false);
  REQUIRE(static_cast<int64_t>(ids.size()) >= n);
  return std::vector<int32_t>(ids.begin(), ids.begin() + n);
}

}  // namespace

TEST_CASE("stories260K: KV-cache decoding equals the full forward at every position") {
  if (!have_stories()) return;
  const auto ck = models::read_llama2c(kStoriesBin);
  const auto ids = golden_tokens(200);
  Tensor t = Tensor::from_i32(ids, {1, 200});
  // float64: the two paths compute the same function, so they agree to rounding.
  auto m64 = LlamaModel::from_checkpoint(ck, Device::CPU, DType::F64);
  CHECK(max_cache_diff(*m64, t, std::vector<int64_t>(200, 1)) <= 1e-12);
  CHECK(max_cache_diff(*m64, t, {1, 63, 1, 100, 35}) <= 1e-12);
  // float32 (what generate runs): one-row products (GEMVs on the CPU) and many-row GEMMs
  // sum in different orders, so logits up to |22| differ by a few ulps (1.3–1.5e-5 on Zen;
  // 1.4–2.0e-5 when one-row products were GEMMs, 2.2e-5 on a Xeon with OpenBLAS's generic
  // kernels), about the float32 full forward's own error, measured against the float64
  // model below.
  auto m = LlamaModel::from_checkpoint(ck);
  const double one_by_one = max_cache_diff(*m, t, std::vector<int64_t>(200, 1));
  const double chunked = max_cache_diff(*m, t, {1, 63, 1, 100, 35});
  CHECK(one_by_one <= cg::testing::tol::kDecodeRel);
  CHECK(chunked <= cg::testing::tol::kDecodeRel);
  NoGrad ng;
  const auto f32 = m->forward(t).to_f64_vector(), f64 = m64->forward(t).to_f64_vector();
  double f32_err = 0;
  for (size_t i = 0; i < f32.size(); ++i) f32_err = std::max(f32_err, std::fabs(f32[i] - f64[i]));
  MESSAGE("float32 full forward vs float64: max |diff| " << f32_err);
  CHECK(f32_err > 0);
  CHECK(std::max(one_by_one, chunked) <= 2 * f32_err);
}

TEST_CASE("stories260K: logits match the PyTorch reference (interleaved RoPE on un-permuted weights)") {
  if (!have_stories()) return;
  // tests/golden/stories260K_logits.txt: "# ... tokens a,b,c", then "T V", then T rows of V.
  std::ifstream f("tests/golden/stories260K_logits.txt");
  REQUIRE(f.good());
  std::string header;
  std::getline(f, header);
  const std::string list = header.substr(header.rfind(' ') + 1);
  std::vector<int32_t> ids;
  std::stringstream ls(list);
  for (std::string x; std::getline(ls, x, ',');) ids.push_back(std::stoi(x));
  int64_t T = 0, V = 0;
  f >> T >> V;
  REQUIRE(T == static_cast<int64_t>(ids.size()));
  REQUIRE(V == 512);
  std::vector<double> ref(static_cast<size_t>(T * V));
  for (double& v : ref) f >> v;
  REQUIRE(!f.fail());
  auto m = LlamaModel::from_checkpoint(models::read_llama2c(kStoriesBin));
  NoGrad ng;
  const auto got = m->forward(Tensor::from_i32(ids, {1, T})).to_f64_vector();
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref[i]));
  MESSAGE("stories260K logits vs llama_ref.py: max |diff| " << worst << " over " << T << "x" << V);
  CHECK(worst <= cg::testing::tol::kStoriesLogitsAbs);
}

TEST_CASE("stories260K: llama2.c → safetensors (HF names) → load gives identical logits") {
  if (!have_stories()) return;
  auto m = LlamaModel::from_checkpoint(models::read_llama2c(kStoriesBin));
  CHECK(m->config().tied_embeddings);
  const auto dir = std::filesystem::temp_directory_path() / ("cg_test_model_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "stories260K.safetensors").string();
  models::write_hf_llama(path, m->to_checkpoint());
  // Names and shapes exactly as transformers' LlamaForCausalLM (tied: no lm_head.weight).
  const auto st = models::read_safetensors(path);
  std::map<std::string, Shape> want;
  for (const auto& s : models::hf_llama_tensor_specs(m->config()))
    if (s.name != "lm_head.weight") want.emplace(s.name, s.shape);
  CHECK(st.tensors.size() == want.size());
  for (const auto& [name, shape] : want) {
    INFO(name);
    REQUIRE(st.tensors.count(name) == 1);
    CHECK(st.tensors.at(name).shape() == shape);
  }
  CHECK(st.tensors.at("model.layers.4.self_attn.k_proj.weight").shape() == Shape({32, 64}));
  CHECK(st.tensors.at("model.layers.0.mlp.gate_proj.weight").shape() == Shape({172, 64}));
  auto m2 = LlamaModel::from_checkpoint(models::read_hf_llama(path));
  CHECK(m2->config() == m->config());
  NoGrad ng;
  Tensor ids = Tensor::from_i32(golden_tokens(64), {1, 64});
  CHECK(m->forward(ids).to_f32_vector() == m2->forward(ids).to_f32_vector());
  std::filesystem::remove_all(dir);
}
