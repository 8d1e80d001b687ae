// tests/test_adapters_parity.cpp — PyTorch parity of the adapters (LoRA, MoSLoRA, LinChain
// n = 1..4, and LinChain with chain biases n = 1..4 against the authors' nn.Linear layer) on a small random Llama: logits, loss, every adapter gradient, ∂L/∂P, and the
// losses and final weights of 5 AdamW and 5 plain SGD steps of a models::LlamaModel
// (built from the golden base weights) against the golden files
// written by tests/reference/adapters_ref.py (`make golden`). One table below holds every
// golden tensor's name pattern and tolerance; a golden tensor without an entry, or an entry
// that matches nothing, fails the test.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tape.h"
#include "models/io/checkpoint.h"
#include "models/llama/llama.h"
#include "models/io/safetensors.h"
#include "nn/adapters.h"
#include "nn/optim.h"
#include "ops/ops.h"
#include "tests/tolerances.h"

using namespace cg;
using namespace cg::nn;

namespace {

// ---- the tolerance table -----------------------------------------------------------------
// err = max|ours − ref| / max|ref| (relative) or max|ours − ref| (absolute).
struct Tolerance {
  const char* prefix;  // golden tensor name, or a prefix of names when it ends in '.'
  double tol;
  bool relative;
};
// The numbers live in tests/tolerances.h, with the errors observed.
namespace tol = cg::testing::tol;
constexpr Tolerance kTolerances[] = {
    {"logits", tol::kLogitsRel, true},
    {"loss", tol::kLossAbs, false},
    {"grad.", tol::kGradRel, true},
    {"grad_product.", tol::kGradProductRel, true},
    {"adamw.losses", tol::kAdamwLossesAbs, false},
    {"sgd.losses", tol::kSgdLossesAbs, false},
    {"adamw.final.", tol::kAdamwFinalRel, true},
    {"sgd.final.", tol::kSgdFinalRel, true},
    {"init.", 0.0, true},  // inputs, copied into the adapters (compared after the copy)
};

const Tolerance* tolerance_for(const std::string& name) {
  for (const Tolerance& t : kTolerances) {
    const std::string p = t.prefix;
    if (p.back() == '.' ? name.rfind(p, 0) == 0 : name == p) return &t;
  }
  return nullptr;
}

// ---- golden files --------------------------------------------------------------------------
struct Golden {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> meta;
};

Golden read_golden(const std::string& path) {
  REQUIRE_MESSAGE(std::filesystem::exists(path), "missing " << path << " (run the tests from the repo root)");
  models::SafeTensors st = models::read_safetensors(path);
  return {st.tensors, st.metadata};
}

// The golden base model as a LlamaModel (HF names, config from the file's metadata).
std::unique_ptr<models::LlamaModel> load_base(const Golden& g) {
  models::Checkpoint ck;
  ck.config.dim = std::stoll(g.meta.at("dim"));
  ck.config.hidden_dim = std::stoll(g.meta.at("hidden_dim"));
  ck.config.n_layers = std::stoll(g.meta.at("n_layers"));
  ck.config.n_heads = std::stoll(g.meta.at("n_heads"));
  ck.config.n_kv_heads = std::stoll(g.meta.at("n_kv_heads"));
  ck.config.vocab_size = std::stoll(g.meta.at("vocab_size"));
  ck.config.seq_len = std::stoll(g.meta.at("seq_len"));
  ck.config.norm_eps = std::stod(g.meta.at("norm_eps"));
  ck.config.rope_theta = std::stod(g.meta.at("rope_theta"));
  ck.config.tied_embeddings = false;
  for (const auto& spec : models::hf_llama_tensor_specs(ck.config))
    ck.tensors.emplace_back(spec.name, g.tensors.at(spec.name));
  auto model = models::LlamaModel::from_checkpoint(ck);
  model->params().set_trainable(false);
  return model;
}

const std::string kGoldenDir = "tests/golden/";

struct Compared {
  std::map<std::string, Tensor> ours;
  void put(const std::string& name, const Tensor& t) { ours[name] = t.to(DType::F32).clone(); }  // a snapshot
};

void load_init(AdapterSet& set, const Golden& g) {
  for (const auto& [name, p] : set.store->params()) {
    const auto it = g.tensors.find("init." + name);
    REQUIRE_MESSAGE(it != g.tensors.end(), "golden lacks init." << name);
    REQUIRE(it->second.shape() == p.shape());
    Tensor dst = p;
    dst.copy_from(it->second);
  }
}

// Optional metadata (absent in the default goldens): a number, or `fallback`.
double meta_or(const Golden& g, const std::string& key, double fallback) {
  const auto it = g.meta.find(key);
  return it == g.meta.end() ? fallback : std::stod(it->second);
}

// prefix "adapters_" (default config) or "adapters_alt_" (tests/reference/adapters_ref.py --variant alt).
void run_kind(const std::string& kind_file, const std::string& prefix = "adapters_") {
  const Golden base = read_golden(kGoldenDir + prefix + "base.safetensors");
  const Golden g = read_golden(kGoldenDir + prefix + kind_file + ".safetensors");
  auto model_ptr = load_base(base);
  models::LlamaModel& model = *model_ptr;
  AdapterConfig cfg;
  cfg.kind = parse_adapter_kind(g.meta.at("kind"));
  cfg.chain = std::stoi(g.meta.at("chain"));
  cfg.rank = std::stoi(g.meta.at("rank"));
  cfg.alpha = std::stod(g.meta.at("alpha"));
  cfg.targets = parse_targets(g.meta.at("targets"));
  cfg.chain_bias = g.meta.count("chain_bias") && g.meta.at("chain_bias") == "1";
  AdapterSet set = attach_adapters(model.linears(), cfg, 1);
  load_init(set, g);
  const Tensor ids = base.tensors.at("ids"), targets = base.tensors.at("targets");

  Compared c;
  for (const auto& [name, p] : set.store->params()) c.put("init." + name, p);
  // One forward + backward at the initial values.
  set.store->zero_grad();
  Tensor logits = model.forward(ids);
  Tensor loss = ops::cross_entropy(logits, targets);
  backward(loss);
  c.put("logits", logits);
  c.put("loss", loss);
  for (const auto& [name, p] : set.store->params()) c.put("grad." + name, p.grad());
  for (const auto& a : set.adapters)
    if (!a.adapter->mixers().empty()) c.put("grad_product." + a.module, a.adapter->probe().grad_product);

  // 5 steps of each optimizer from the initial values; losses before each step and after the last.
  for (const std::string opt_name : {"adamw", "sgd"}) {
    load_init(set, g);
    OptimConfig oc;
    oc.name = opt_name;
    oc.lr = std::stod(g.meta.at(opt_name + "_lr"));
    oc.clip = 0;
    oc.warmup = 0;
    oc.weight_decay = meta_or(g, opt_name + "_weight_decay", 0.0);
    oc.momentum = opt_name == "sgd" ? meta_or(g, "sgd_momentum", 0.0) : 0.0;
    Optimizer opt(*set.store, oc);
    const int steps = std::stoi(g.meta.at("steps"));
    std::vector<double> losses;
    for (int s = 0; s < steps; ++s) {
      set.store->zero_grad();
      Tensor l = model.loss(ids, targets);
      losses.push_back(l.item());
      backward(l);
      opt.step();
    }
    {
      NoGrad ng;
      losses.push_back(model.loss(ids, targets).item());
    }
    c.put(opt_name + ".losses", Tensor::from(losses, {static_cast<int64_t>(losses.size())}, DType::F64));
    for (const auto& [name, p] : set.store->params()) c.put(opt_name + ".final." + name, p);
  }

  // Compare every golden tensor through the table.
  std::map<const Tolerance*, int> used;
  for (const auto& [name, ref] : g.tensors) {
    const Tolerance* tol = tolerance_for(name);
    CHECK_MESSAGE(tol != nullptr, "golden tensor " << name << " has no tolerance entry");
    if (!tol) continue;
    used[tol]++;
    const auto it = c.ours.find(name);
    CHECK_MESSAGE(it != c.ours.end(), "no C++ value for golden tensor " << name);
    if (it == c.ours.end()) continue;
    REQUIRE_MESSAGE(it->second.shape() == ref.shape(), name << ": shape " << it->second.desc() << " vs " << ref.desc());
    const auto x = it->second.to_f64_vector(), y = ref.to_f64_vector();
    double dmax = 0, rmax = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      dmax = std::max(dmax, std::abs(x[i] - y[i]));
      rmax = std::max(rmax, std::abs(y[i]));
    }
    const double err = tol->relative ? dmax / std::max(rmax, 1e-30) : dmax;
    MESSAGE(kind_file << "  " << name << ": max|diff| " << dmax << (tol->relative ? " rel " : " abs ") << err
                      << " (tol " << tol->tol << ")");
    CHECK_MESSAGE(err <= tol->tol, kind_file << " " << name << ": error " << err << " > " << tol->tol);
  }
  for (const Tolerance& t : kTolerances) {
    const bool needs_mixers = std::string(t.prefix) == "grad_product.";
    // The authors' layer has no P to read ∂L/∂P from (its chain is nn.Linear modules).
    if (needs_mixers && (cfg.num_mixers() == 0 || cfg.chain_bias)) continue;
    CHECK_MESSAGE(used[&t] > 0, "tolerance entry '" << t.prefix << "' matched no golden tensor in " << kind_file);
  }
  // The golden's loss must be what a trajectory starts from (guards against stale files).
  CHECK(g.tensors.at("adamw.losses").to_f64_vector()[0] == doctest::Approx(g.tensors.at("loss").item()).epsilon(1e-6));
}

}  // namespace

TEST_CASE("adapter parity with PyTorch: lora") { run_kind("lora"); }
TEST_CASE("adapter parity with PyTorch: moslora") { run_kind("moslora"); }
TEST_CASE("adapter parity with PyTorch: linchain n=1") { run_kind("linchain1"); }
TEST_CASE("adapter parity with PyTorch: linchain n=2") { run_kind("linchain2"); }
TEST_CASE("adapter parity with PyTorch: linchain n=3") { run_kind("linchain3"); }
TEST_CASE("adapter parity with PyTorch: linchain n=4") { run_kind("linchain4"); }
// rope θ = 500000, eps = 1e-6, one KV head, T = 80 (the blocked causal attention path), 7
// ignored targets, SGD with momentum 0.9 and weight decay, AdamW with weight decay.
TEST_CASE("adapter parity with PyTorch: linchain n=3, non-default config") { run_kind("linchain3", "adapters_alt_"); }
// The authors' layer (nn.Linear(r, r) chain factors with biases, PEFT layout) against --chain-bias.
TEST_CASE("adapter parity with PyTorch: linchain with chain biases (the authors' layer) n=1") {
  run_kind("linchainb1");
}
TEST_CASE("adapter parity with PyTorch: linchain with chain biases (the authors' layer) n=2") {
  run_kind("linchainb2");
}
TEST_CASE("adapter parity with PyTorch: linchain with chain biases (the authors' layer) n=3") {
  run_kind("linchainb3");
}
TEST_CASE("adapter parity with PyTorch: linchain with chain biases (the authors' layer) n=4") {
  run_kind("linchainb4");
}

TEST_CASE("LlamaModel fine-tune: frozen base has no grad buffers and no weight-gradient GEMMs") {
  const Golden base = read_golden(kGoldenDir + "adapters_base.safetensors");
  auto model = load_base(base);
  AdapterConfig cfg;
  cfg.kind = AdapterKind::LinChain;
  cfg.rank = 4;
  cfg.chain = 3;
  AdapterSet set = attach_adapters(model->linears(), cfg, 7);
  const Tensor ids = base.tensors.at("ids"), targets = base.tensors.at("targets");
  auto backward_gemms = [&] {
    set.store->zero_grad();
    model->params().zero_grad();
    Tensor l = model->loss(ids, targets);
    BackendStats& st = backend_for(Device::CPU).stats();
    const int64_t before = st.gemm_calls;
    backward(l);
    return st.gemm_calls - before;
  };
  const int64_t frozen = backward_gemms();
  CHECK(!model->params().flat_grad().defined());
  for (const auto& [name, p] : model->params().params()) {
    CAPTURE(name);
    CHECK(!p.requires_grad());
    CHECK(!p.grad().defined());
  }
  for (const auto& [name, p] : set.store->params()) CHECK(p.grad().defined());
  model->params().set_trainable(true);
  const int64_t full = backward_gemms();
  // A trainable base adds one weight-gradient GEMM per projection (7 per layer) and lm_head,
  // plus the input gradients of layer 0's q, k, v (base GEMM and adapter chain each: 6),
  // which a frozen embedding does not need.
  const int64_t weight_gemms = 7 * model->config().n_layers + 1;
  MESSAGE("backward GEMMs: frozen base " << frozen << ", trainable base " << full);
  CHECK(full - frozen == weight_gemms + 6);
}
