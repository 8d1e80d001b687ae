// tests/test_adapter_file.cpp — PEFT adapter files: names, shapes and metadata on disk, the
// PEFT update formula applied to a file's tensors equals our ΔW, load round trip, and
// FormatErrors naming the problem for bad or mismatched files.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/rng.h"
#include "engine/tape.h"
#include "models/io/adapter_file.h"
#include "models/io/safetensors.h"
#include "ops/ops.h"
#include "tests/tool_runner.h"
#include "tests/safetensors_validate.h"
#include "tests/test_util.h"
#include "tests/adapter_fixture.h"

using namespace cg;
using namespace cg::nn;
using namespace cg::models;
using cg::testing::matmul_rm;
using cg::testing::max_abs_diff;
using cg::testing::error_of;
using cg::testing::randomize;
using Model = cg::testing::AdapterTestModel;

namespace {

AdapterConfig config(AdapterKind kind, int chain = 3) {
  AdapterConfig c;
  c.kind = kind;
  c.rank = 4;
  c.chain = chain;
  c.alpha = 6;
  c.targets = parse_targets("q,down");
  return c;
}

// Writes a modified copy of an adapter file: `edit` may change tensors and metadata.
template <class F>
void rewrite(const std::string& from, const std::string& to, F edit) {
  SafeTensors st = read_safetensors(from);
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& n : st.names) ts.emplace_back(n, st.tensors.at(n));
  edit(ts, st.metadata);
  write_safetensors(to, ts, st.metadata);
}

}  // namespace

TEST_CASE("adapter file: PEFT names, shapes, metadata; PEFT formula equals our delta_weight") {
  cg::testing::TempDir tmp;
  for (int n : {0, 1, 3}) {
    const AdapterKind kind = n == 0 ? AdapterKind::LoRA : n == 1 ? AdapterKind::MoSLoRA : AdapterKind::LinChain;
    Model m;
    AdapterSet set = attach_adapters(m.linears(), config(kind, n), 3);
    randomize(set, 10 + static_cast<uint64_t>(n));
    const std::string path = tmp.file("a" + std::to_string(n) + ".safetensors");
    save_adapter(path, set);
    CHECK(cg::testing::safetensors_file_problem(path) == "");
    const SafeTensors st = read_safetensors(path);
    CHECK(st.metadata.at("peft_type") == peft_type_name(kind));
    CHECK(st.metadata.at("r") == "4");
    CHECK(std::stod(st.metadata.at("lora_alpha")) == 6.0);
    CHECK(st.metadata.at("target_modules") == "q_proj,down_proj");
    CHECK(st.metadata.at("chain_length") == std::to_string(n));
    CHECK(st.names.size() == 4 * static_cast<size_t>(2 + n));
    const double s = 6.0 / 4.0;
    for (const auto& a : set.adapters) {
      const std::string pre = "base_model.model." + a.module;
      const Tensor& A = st.tensors.at(pre + ".lora_A.weight");
      const Tensor& B = st.tensors.at(pre + ".lora_B.weight");
      const int64_t in = a.linear->in_features(), out = a.linear->out_features();
      CHECK(A.shape() == Shape{4, in});
      CHECK(B.shape() == Shape{out, 4});
      // ΔW_peft = s · B · M_{n−1} ⋯ M₀ · A_peft
      std::vector<double> prod = A.to_f64_vector();  // [r, in]
      for (int j = 0; j < n; ++j) {
        const std::string mname =
            pre + (kind == AdapterKind::MoSLoRA ? ".lora_AB.weight" : ".lora_mixer." + std::to_string(j) + ".weight");
        REQUIRE(st.tensors.count(mname) == 1);
        const Tensor& M = st.tensors.at(mname);
        CHECK(M.shape() == Shape{4, 4});
        prod = matmul_rm(M.to_f64_vector(), prod, 4, 4, in);
      }
      std::vector<double> dw = matmul_rm(B.to_f64_vector(), prod, out, 4, in);
      for (double& v : dw) v *= s;
      const double d = max_abs_diff(dw, a.adapter->delta_weight().to_f64_vector());
      MESSAGE("n=" << n << " " << a.module << ": |ΔW_peft − ΔW| = " << d);
      CHECK(d < 1e-5);
    }
  }
}

TEST_CASE("adapter file: load round trip needs no flags") {
  cg::testing::TempDir tmp;
  for (int v : {0, 1, 2, 3, 4}) {  // LoRA, MoSLoRA, LinChain n = 2, LinChain n = 2 with chain biases, LoRA + bias
    const int n = v == 3 ? 2 : v == 4 ? 0 : v;
    const AdapterKind kind = n == 0 ? AdapterKind::LoRA : n == 1 ? AdapterKind::MoSLoRA : AdapterKind::LinChain;
    Model m1, m2;
    AdapterConfig cfg = config(kind, n);
    cfg.chain_bias = v >= 3;
    AdapterSet set = attach_adapters(m1.linears(), cfg, 3);
    randomize(set, 20);
    const std::string path = tmp.file("rt.safetensors");
    save_adapter(path, set);
    AdapterSet got = load_adapter(path, m2.linears());
    CHECK(got.config.kind == kind);
    CHECK(got.config.num_mixers() == n);
    CHECK(got.config.chain_bias == cfg.chain_bias);
    CHECK(got.config.rank == 4);
    CHECK(got.config.alpha == 6.0);
    CHECK(got.config.targets == parse_targets("q,down"));
    CHECK(got.trainable_params() == set.trainable_params());
    REQUIRE(got.store->params().size() == set.store->params().size());
    for (size_t i = 0; i < got.store->params().size(); ++i) {
      CHECK(got.store->params()[i].first == set.store->params()[i].first);
      CHECK(got.store->params()[i].second.to_f64_vector() == set.store->params()[i].second.to_f64_vector());
    }
    Rng rng(1);
    const Tensor x = rand_uniform({3, 8}, -1, 1, rng);
    NoGrad ng;
    CHECK(m1.lin[0].forward(x).to_f64_vector() == m2.lin[0].forward(x).to_f64_vector());
  }
}

TEST_CASE("adapter file: bad or mismatched files are FormatErrors naming the problem") {
  cg::testing::TempDir tmp;
  Model m;
  AdapterSet set = attach_adapters(m.linears(), config(AdapterKind::LinChain, 2), 3);
  const std::string good = tmp.file("good.safetensors"), bad = tmp.file("bad.safetensors");
  save_adapter(good, set);
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj";

  CHECK(error_of([&] {
          Model x;
          load_adapter(tmp.file("absent.safetensors"), x.linears());
        }) != "");
  rewrite(good, bad,
          [&](auto& ts, auto&) { std::erase_if(ts, [&](auto& p) { return p.first == q0 + ".lora_B.weight"; }); });
  CHECK(error_of([&] { read_adapter_file(bad); }).find(q0 + ".lora_B.weight") != std::string::npos);
  rewrite(good, bad, [&](auto& ts, auto&) {
    for (auto& p : ts)
      if (p.first == q0 + ".lora_mixer.1.weight") p.second = Tensor::zeros({4, 5});
  });
  CHECK(error_of([&] { read_adapter_file(bad); }).find("lora_mixer.1") != std::string::npos);
  rewrite(good, bad, [&](auto&, auto& meta) { meta["peft_type"] = "IA3"; });
  CHECK(error_of([&] { read_adapter_file(bad); }).find("IA3") != std::string::npos);
  rewrite(good, bad, [&](auto&, auto& meta) { meta["chain_length"] = "1"; });
  CHECK(error_of([&] { read_adapter_file(bad); }).find("lora_mixer.1") != std::string::npos);  // now unexpected
  rewrite(good, bad, [&](auto&, auto& meta) { meta.erase("r"); });
  CHECK(error_of([&] { read_adapter_file(bad); }).find("'r'") != std::string::npos);
  rewrite(good, bad, [&](auto&, auto& meta) { meta["r"] = "8"; });
  CHECK(error_of([&] { read_adapter_file(bad); }).find("rank") != std::string::npos);
  rewrite(good, bad, [&](auto&, auto& meta) { meta["target_modules"] = "q_proj"; });
  CHECK(error_of([&] { read_adapter_file(bad); }).find("down_proj") != std::string::npos);
  // The model does not fit the file: a missing layer, or different shapes.
  Model one_layer(1);
  CHECK(error_of([&] { load_adapter(good, one_layer.linears()); }).find("model.layers.1") != std::string::npos);
  CHECK(one_layer.lin[0].adapter == nullptr);  // untouched
  Model other;
  other.names[0] = "model.layers.0.self_attn.k_proj";
  CHECK(error_of([&] { load_adapter(good, other.linears()); }).find("q_proj") != std::string::npos);
  rewrite(good, bad, [&](auto& ts, auto&) {
    for (auto& p : ts)
      if (p.first == q0 + ".lora_A.weight") p.second = Tensor::zeros({4, 9});
  });
  CHECK(error_of([&] {
          Model x;
          load_adapter(bad, x.linears());
        }).find("q_proj") != std::string::npos);
}
