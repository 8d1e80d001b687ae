// tests/test_adapters_parity.cpp — PyTorch parity of the adapters (LoRA, MoSLoRA, LinChain
// n = 1..4) on a small random Llama: logits, loss, every adapter gradient, ∂L/∂P, and the
// losses and final weights of 5 AdamW and 5 plain SGD steps, against the golden files
// written by tests/reference/adapters_ref.py (`make golden`). One table below holds every
// golden tensor's name pattern and tolerance; a golden tensor without an entry, or an entry
// that matches nothing, fails the test.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tape.h"
#include "nn/adapters.h"
#include "nn/optim.h"
#include "ops/ops.h"

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
constexpr Tolerance kTolerances[] = {
    {"logits", 1e-5, true},        {"loss", 1e-5, false},
    {"grad.", 1e-4, true},         {"grad_product.", 1e-4, true},
    {"adamw.losses", 1e-4, false}, {"sgd.losses", 1e-4, false},
    {"adamw.final.", 1e-4, true},  {"sgd.final.", 1e-4, true},
    {"init.", 0.0, true},  // inputs, copied into the adapters (compared after the copy)
};

const Tolerance* tolerance_for(const std::string& name) {
  for (const Tolerance& t : kTolerances) {
    const std::string p = t.prefix;
    if (p.back() == '.' ? name.rfind(p, 0) == 0 : name == p) return &t;
  }
  return nullptr;
}

// ---- golden files (the plain safetensors layout: u64 header size, JSON, raw LE data) -------
struct Golden {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> meta;
  bool ok = false;
};

Golden read_golden(const std::string& path) {
  Golden g;
  std::ifstream f(path, std::ios::binary);
  if (!f) return g;
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  const auto j = nlohmann::json::parse(header);
  std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, s] : v.items()) g.meta[k] = s.get<std::string>();
      continue;
    }
    const auto shp = v["shape"].get<std::vector<int64_t>>();
    const auto off = v["data_offsets"].get<std::vector<uint64_t>>();
    const Shape shape = Shape::from(shp.begin(), shp.end());
    const std::string dt = v["dtype"].get<std::string>();
    Tensor t = Tensor::empty(shape, dt == "I32" ? DType::I32 : DType::F32);
    REQUIRE(off[1] - off[0] == t.nbytes());
    REQUIRE(off[1] <= data.size());
    std::memcpy(t.raw(), data.data() + off[0], t.nbytes());
    g.tensors[name] = t;
  }
  g.ok = true;
  return g;
}

// ---- a minimal Llama forward (HF conventions) over nn::Linear modules ---------------------
struct RefLlama {
  int64_t dim, layers, heads, kv_heads, hidden, vocab;
  double eps, theta;
  ParamStore base{"base"};
  Tensor embed, final_norm, head;
  struct Layer {
    Tensor attn_norm, ffn_norm;
    Linear q, k, v, o, gate, up, down;
  };
  std::vector<Layer> blocks;

  explicit RefLlama(const Golden& g)
      : dim(std::stoll(g.meta.at("dim"))), layers(std::stoll(g.meta.at("n_layers"))),
        heads(std::stoll(g.meta.at("n_heads"))), kv_heads(std::stoll(g.meta.at("n_kv_heads"))),
        hidden(std::stoll(g.meta.at("hidden_dim"))), vocab(std::stoll(g.meta.at("vocab_size"))),
        eps(std::stod(g.meta.at("norm_eps"))), theta(std::stod(g.meta.at("rope_theta"))) {
    auto add = [&](const std::string& n) { return base.add(n, g.tensors.at(n)); };
    embed = add("model.embed_tokens.weight");
    blocks.resize(static_cast<size_t>(layers));
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer& L = blocks[static_cast<size_t>(i)];
      L.attn_norm = add(p + "input_layernorm.weight");
      L.q.weight = add(p + "self_attn.q_proj.weight");
      L.k.weight = add(p + "self_attn.k_proj.weight");
      L.v.weight = add(p + "self_attn.v_proj.weight");
      L.o.weight = add(p + "self_attn.o_proj.weight");
      L.ffn_norm = add(p + "post_attention_layernorm.weight");
      L.gate.weight = add(p + "mlp.gate_proj.weight");
      L.up.weight = add(p + "mlp.up_proj.weight");
      L.down.weight = add(p + "mlp.down_proj.weight");
    }
    final_norm = add("model.norm.weight");
    head = add("lm_head.weight");
    base.finalize();
    base.set_trainable(false);
  }

  std::vector<std::pair<std::string, Linear*>> linears() {
    std::vector<std::pair<std::string, Linear*>> out;
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer& L = blocks[static_cast<size_t>(i)];
      out.insert(out.end(), {{p + "self_attn.q_proj", &L.q}, {p + "self_attn.k_proj", &L.k},
                             {p + "self_attn.v_proj", &L.v}, {p + "self_attn.o_proj", &L.o},
                             {p + "mlp.gate_proj", &L.gate}, {p + "mlp.up_proj", &L.up},
                             {p + "mlp.down_proj", &L.down}});
    }
    return out;
  }

  // logits[B,T,V] for ids[B,T]
  Tensor forward(const Tensor& ids) {
    const int64_t B = ids.dim(0), T = ids.dim(1), hd = dim / heads;
    Tensor h = ops::embedding(embed, ids);  // [B,T,D]
    for (Layer& L : blocks) {
      Tensor x = ops::rmsnorm(h, L.attn_norm, eps);
      Tensor q = ops::transpose(ops::rope(ops::reshape(L.q.forward(x), {B, T, heads, hd}), 0, theta), 1, 2);
      Tensor k = ops::transpose(ops::rope(ops::reshape(L.k.forward(x), {B, T, kv_heads, hd}), 0, theta), 1, 2);
      Tensor v = ops::transpose(ops::reshape(L.v.forward(x), {B, T, kv_heads, hd}), 1, 2);
      Tensor a = ops::reshape(ops::transpose(ops::attention(q, k, v, true), 1, 2), {B, T, dim});
      h = ops::add(h, L.o.forward(a));
      x = ops::rmsnorm(h, L.ffn_norm, eps);
      h = ops::add(h, L.down.forward(ops::mul(ops::silu(L.gate.forward(x)), L.up.forward(x))));
    }
    return ops::linear(ops::rmsnorm(h, final_norm, eps), head);
  }
  Tensor loss(const Tensor& ids, const Tensor& targets) { return ops::cross_entropy(forward(ids), targets); }
};

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

void run_kind(const std::string& kind_file) {
  const Golden base = read_golden(kGoldenDir + "adapters_base.safetensors");
  const Golden g = read_golden(kGoldenDir + "adapters_" + kind_file + ".safetensors");
  REQUIRE_MESSAGE(base.ok, "missing " << kGoldenDir << "adapters_base.safetensors (run from the repo root)");
  REQUIRE_MESSAGE(g.ok, "missing golden for " << kind_file);

  RefLlama model(base);
  AdapterConfig cfg;
  cfg.kind = parse_adapter_kind(g.meta.at("kind"));
  cfg.chain = std::stoi(g.meta.at("chain"));
  cfg.rank = std::stoi(g.meta.at("rank"));
  cfg.alpha = std::stod(g.meta.at("alpha"));
  cfg.targets = parse_targets(g.meta.at("targets"));
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
    oc.weight_decay = 0;
    oc.momentum = 0;
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
    if (needs_mixers && cfg.num_mixers() == 0) continue;
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
