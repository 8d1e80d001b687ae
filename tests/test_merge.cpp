// tests/test_merge.cpp — exact merging of every adapter kind (LoRA, MoSLoRA, LinChain, LinChain
// with chain biases) into projections with and without a bias: merged forward = unmerged
// forward, unmerge restores the base within the two-roundings bound of nn/linear.h (and
// drops a bias that merge created), and a merged model with biases round-trips through an HF
// folder (attention_bias / mlp_bias, zero biases where a projection has none).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "engine/rng.h"
#include "engine/tape.h"
#include "models/io/hf_llama.h"
#include "models/llama/llama.h"
#include "nn/adapters.h"
#include "ops/ops.h"

using namespace cg;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_f64_vector(), y = b.to_f64_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// Every element within 2⁻²³·(|before| + |delta|): one rounding by the add, one by the subtract.
bool within_two_roundings(const Tensor& after, const Tensor& before, const Tensor& delta) {
  const auto a = after.to_f64_vector(), b = before.to_f64_vector(), d = delta.to_f64_vector();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > 0x1p-23 * (std::abs(b[i]) + std::abs(d[i]))) return false;
  return true;
}

void randomize_b(nn::AdapterSet& set, uint64_t seed) {
  Rng rng(seed);
  for (auto& a : set.adapters) {
    Tensor b = a.adapter->b();
    b.copy_from(rand_uniform(b.shape(), -0.5, 0.5, rng));
  }
}

// 0 LoRA, 1 MoSLoRA, 2 LinChain, 3 LinChain with chain biases, 4 LoRA with a bias on A's output
nn::AdapterConfig kind_config(int v) {
  nn::AdapterConfig c;
  c.kind = v == 0 || v == 4 ? nn::AdapterKind::LoRA : v == 1 ? nn::AdapterKind::MoSLoRA : nn::AdapterKind::LinChain;
  c.rank = 4;
  c.chain = 3;
  c.alpha = 8;
  c.chain_bias = v >= 3;
  return c;
}

models::LlamaConfig small_config(bool attention_bias) {
  models::LlamaConfig c;
  c.dim = 32, c.hidden_dim = 40, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 37, c.seq_len = 16;
  c.attention_bias = attention_bias;
  return c;
}

Tensor ids(uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(2 * 12);
  for (auto& x : v) x = static_cast<int32_t>(rng.below(37));
  return Tensor::from_i32(v, {2, 12});
}

}  // namespace

TEST_CASE("merge: every kind, with and without a base bias, is exact and unmerges") {
  for (int v = 0; v < 5; ++v)
    for (bool base_bias : {false, true}) {
      const nn::AdapterConfig ac = kind_config(v);
      const std::string what = nn::adapter_kind_name(ac.kind) + (ac.chain_bias ? "+bias" : "") +
                               (base_bias ? ", base bias" : ", no base bias");
      INFO(what);
      Rng rng(5);
      nn::Linear lin{rand_uniform({6, 8}, -0.5, 0.5, rng), nullptr, Tensor(), false};
      if (base_bias) lin.bias = rand_uniform({6}, -0.5, 0.5, rng);
      const Tensor w0 = lin.weight.clone(), b0 = base_bias ? lin.bias.clone() : Tensor();
      nn::AdapterSet set = nn::attach_adapters({{"layer.q_proj", &lin}}, ac, 3);
      randomize_b(set, 7);
      NoGrad ng;
      const Tensor x = rand_uniform({3, 4, 8}, -1, 1, rng);
      const Tensor y_adapter = lin.forward(x);
      const Tensor dw = set.adapters[0].adapter->delta_weight(), db = set.adapters[0].adapter->delta_bias();
      CHECK(db.defined() == ac.chain_bias);
      set.merge_all();
      CHECK(lin.bias.defined() == (base_bias || ac.chain_bias));
      const double dm = max_abs_diff(lin.forward(x), y_adapter);
      MESSAGE(what << ": |merged − unmerged| = " << dm);
      CHECK(dm <= 1e-5);
      set.unmerge_all();
      CHECK(within_two_roundings(lin.weight, w0, dw));
      if (base_bias) {
        REQUIRE(lin.bias.defined());
        CHECK(within_two_roundings(lin.bias, b0, db.defined() ? db : Tensor::zeros({6})));
      } else {
        CHECK_FALSE(lin.bias.defined());  // the bias merge created is gone: the base is bias-free again
      }
      CHECK(max_abs_diff(lin.forward(x), y_adapter) <= 1e-6);
    }
}

TEST_CASE("merge: a model with merged chain biases saves as an HF folder with biases and reads back") {
  for (bool base_bias : {false, true}) {
    INFO("base attention_bias " << base_bias);
    models::LlamaModel m(small_config(base_bias), 2);
    if (base_bias)  // non-zero base biases, so that merging adds to something
      for (auto& [name, lin] : m.linears())
        if (lin->bias.defined()) {
          Rng rng(name.size());
          lin->bias.copy_from(rand_uniform(lin->bias.shape(), -0.1, 0.1, rng));
        }
    nn::AdapterSet set = nn::attach_adapters(m.linears(), kind_config(3), 4);  // q,k,v,up,down
    randomize_b(set, 8);
    NoGrad ng;
    const Tensor t = ids(1);
    const Tensor y_adapter = m.forward(t);
    set.merge_all();
    const Tensor y_merged = m.forward(t);
    const double dm = max_abs_diff(y_merged, y_adapter);
    MESSAGE("model logits |merged − unmerged| = " << dm);
    CHECK(dm <= 1e-5);
    const models::Checkpoint ck = m.to_checkpoint();
    CHECK(ck.config.attention_bias);
    CHECK(ck.config.mlp_bias);
    CHECK(max_abs_diff(ck.get("model.layers.0.mlp.gate_proj.bias"), Tensor::zeros({40})) ==
          0.0);  // gate has no adapter
    if (!base_bias) CHECK(max_abs_diff(ck.get("model.layers.1.self_attn.o_proj.bias"), Tensor::zeros({32})) == 0.0);
    CHECK(max_abs_diff(ck.get("model.layers.1.self_attn.q_proj.bias"), Tensor::zeros({32})) > 1e-4);
    const auto dir = std::filesystem::temp_directory_path() / ("cg_test_merge_" + std::to_string(::getpid()));
    models::write_hf_folder(dir.string(), ck);
    const models::Checkpoint back = models::read_hf_folder(dir.string());
    std::filesystem::remove_all(dir);
    CHECK(back.config == ck.config);
    auto reread = models::LlamaModel::from_checkpoint(back);
    const double dr = max_abs_diff(reread->forward(t), y_merged);
    MESSAGE("HF folder with biases: |reloaded − merged| = " << dr);
    CHECK(dr == 0.0);  // the same float32 weights and the same ops
    set.unmerge_all();
    CHECK(max_abs_diff(m.forward(t), y_adapter) <= 1e-6);
    CHECK(m.to_checkpoint().config.mlp_bias == false);  // the created biases are gone again
  }
}

TEST_CASE("HF config: attention_bias / mlp_bias are read, and must be booleans") {
  nlohmann::json j = small_config(false).to_hf_json();
  j["mlp_bias"] = true;
  const models::LlamaConfig c = models::LlamaConfig::from_hf_json(j);
  CHECK(c.mlp_bias);
  CHECK_FALSE(c.attention_bias);
  CHECK(c.param_count() == small_config(false).param_count() + 2 * (2 * 40 + 32));
  j["attention_bias"] = "yes";
  CHECK_THROWS_AS(models::LlamaConfig::from_hf_json(j), FormatError);
}
