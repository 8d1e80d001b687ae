// tests/test_peft_folder.cpp — PEFT adapter folders (models/io/peft_folder.h): every kind
// round-trips through a folder with identical tensors and outputs; names, shapes and config
// fields are PEFT's; folders written by hand the way PEFT and the authors' MoSLoRA / LinChain
// forks write them load, and compute the forks' formula (evaluated here in float64 from the
// files' tensors, sharing no code with ours); export as a plain LoRA keeps ΔW and refuses
// chain biases; hostile folders are one line and exit 2 through the tools.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "engine/tape.h"
#include "models/io/adapter_file.h"
#include "models/io/peft_folder.h"
#include "models/io/safetensors.h"
#include "tests/safetensors_validate.h"
#include "tests/skip.h"
#include "tests/adapter_fixture.h"
#include "tests/tolerances.h"
#include "tests/tool_runner.h"

using namespace cg;
using namespace cg::nn;
using namespace cg::models;
using cg::testing::Run;
using cg::testing::TempDir;
using cg::testing::error_of;
using cg::testing::randomize;
using Model = cg::testing::AdapterTestModel;
namespace fs = std::filesystem;

namespace {

// v: 0 LoRA, 1 MoSLoRA, 2 LinChain n = 2, 3 LinChain n = 3 with chain biases.
AdapterConfig config(int v) {
  AdapterConfig c;
  c.kind = v == 0 ? AdapterKind::LoRA : v == 1 ? AdapterKind::MoSLoRA : AdapterKind::LinChain;
  c.rank = 4;
  c.chain = v == 3 ? 3 : 2;
  c.chain_bias = v == 3;
  c.alpha = 6;
  c.targets = parse_targets("q,down");
  return c;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}
void write_json(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(2); }

// y = W₀·x + s·B·(chain)·A·x for a row-major [out, in] W₀ and one input x, in float64, from
// PEFT-layout tensors: A [r, in], mixers M_j [r, r] applied in index order (h ← M_j·h + b_j),
// B [out, r] — the forks' forward (tuners/lora.py: forward_B(forward_A(x)) · scaling).
std::vector<double> peft_forward(const std::vector<double>& w0, const std::vector<double>& x,
                                 const std::vector<double>& a, const std::vector<std::vector<double>>& mixers,
                                 const std::vector<std::vector<double>>& biases, const std::vector<double>& b,
                                 int64_t in, int64_t out, int64_t r, double s) {
  std::vector<double> h(static_cast<size_t>(r), 0.0);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t k = 0; k < in; ++k) h[size_t(i)] += a[size_t(i * in + k)] * x[size_t(k)];
  for (size_t j = 0; j < mixers.size(); ++j) {
    std::vector<double> g(static_cast<size_t>(r), 0.0);
    for (int64_t i = 0; i < r; ++i) {
      for (int64_t k = 0; k < r; ++k) g[size_t(i)] += mixers[j][size_t(i * r + k)] * h[size_t(k)];
      if (!biases.empty()) g[size_t(i)] += biases[j][size_t(i)];
    }
    h = g;
  }
  std::vector<double> y(static_cast<size_t>(out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < in; ++k) y[size_t(o)] += w0[size_t(o * in + k)] * x[size_t(k)];
    for (int64_t i = 0; i < r; ++i) y[size_t(o)] += s * b[size_t(o * r + i)] * h[size_t(i)];
  }
  return y;
}

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(a[i] - b[i]));
    m = std::max(m, std::abs(b[i]));
  }
  return d / std::max(m, 1e-30);
}

}  // namespace

TEST_CASE("PEFT folder: every kind round-trips with identical tensors and outputs; PEFT's names, shapes, config") {
  TempDir tmp;
  for (int v = 0; v < 4; ++v) {
    INFO("variant " << v);
    const AdapterConfig cfg = config(v);
    Model m1, m2, m3;
    AdapterSet set = attach_adapters(m1.linears(), cfg, 3);
    randomize(set, 30 + static_cast<uint64_t>(v));
    const std::string dir = tmp.file("peft" + std::to_string(v));
    save_adapter(dir, set, {"some/base"});
    const std::string weights = dir + "/adapter_model.safetensors";
    CHECK(cg::testing::safetensors_file_problem(weights) == "");

    // The config PEFT (and the forks) read.
    const nlohmann::json j = read_json(dir + "/adapter_config.json");
    CHECK(j.at("peft_type") == "LORA");
    CHECK(j.at("task_type") == "CAUSAL_LM");
    CHECK(j.at("r") == 4);
    CHECK(j.at("lora_alpha") == 6);
    CHECK(j.at("lora_dropout") == 0.0);
    CHECK(j.at("bias") == "none");
    CHECK(j.at("base_model_name_or_path") == "some/base");
    CHECK(j.at("target_modules") == nlohmann::json({"q_proj", "down_proj"}));
    CHECK(j.contains("lora_use_mixer") == (v != 0));
    CHECK(j.contains("mixer_num") == (v >= 2));
    if (v >= 2) CHECK(j.at("mixer_num") == cfg.chain);

    // Tensor names and shapes as PEFT writes them; metadata {"format": "pt"} only.
    const SafeTensors st = read_safetensors(weights);
    CHECK(st.metadata == std::map<std::string, std::string>{{"format", "pt"}});
    const int nm = cfg.num_mixers();
    CHECK(st.names.size() == 4 * static_cast<size_t>(2 + nm * (cfg.chain_bias ? 2 : 1)));
    for (const auto& a : set.adapters) {
      const std::string pre = "base_model.model." + a.module;
      CHECK(st.tensors.at(pre + ".lora_A.weight").shape() == Shape{4, a.linear->in_features()});
      CHECK(st.tensors.at(pre + ".lora_B.weight").shape() == Shape{a.linear->out_features(), 4});
      for (int jj = 0; jj < nm; ++jj) {
        const std::string mix = v == 1 ? pre + ".lora_AB" : pre + ".lora_mixer." + std::to_string(jj);
        CHECK(st.tensors.at(mix + ".weight").shape() == Shape{4, 4});
        if (cfg.chain_bias) CHECK(st.tensors.at(mix + ".bias").shape() == Shape{4});
      }
    }

    // Back: the same config, the same store bit for bit, the same outputs.
    AdapterSet got = load_adapter(dir, m2.linears());
    CHECK(got.config.kind == cfg.kind);
    CHECK(got.config.num_mixers() == nm);
    CHECK(got.config.chain_bias == cfg.chain_bias);
    CHECK(got.config.rank == 4);
    CHECK(got.config.alpha == 6.0);
    CHECK(got.config.targets == cfg.targets);
    REQUIRE(got.store->params().size() == set.store->params().size());
    for (size_t i = 0; i < got.store->params().size(); ++i) {
      CHECK(got.store->params()[i].first == set.store->params()[i].first);
      CHECK(got.store->params()[i].second.to_f64_vector() == set.store->params()[i].second.to_f64_vector());
    }
    Rng rng(1);
    NoGrad ng;
    for (size_t i = 0; i < 4; ++i) {
      const Tensor x = rand_uniform({3, m1.lin[i].in_features()}, -1, 1, rng);
      CHECK(m1.lin[i].forward(x).to_f64_vector() == m2.lin[i].forward(x).to_f64_vector());
    }
    // Folder → single file → folder: the same tensors again; the config file or the weights
    // file named instead of the folder read the same.
    const std::string single = tmp.file("single" + std::to_string(v) + ".safetensors");
    write_adapter(single, read_adapter_file(dir));
    CHECK(cg::testing::safetensors_file_problem(single) == "");
    for (const std::string& p : {single, dir + "/adapter_config.json", weights}) {
      const AdapterFile f = read_adapter_file(p);
      const AdapterFile g = read_adapter_file(dir);
      CHECK(f.modules == g.modules);
      REQUIRE(f.tensors.size() == g.tensors.size());
      for (const auto& [name, t] : g.tensors) CHECK(f.tensors.at(name).to_f64_vector() == t.to_f64_vector());
    }
    AdapterSet again = load_adapter(single, m3.linears());
    const Tensor x = rand_uniform({2, 8}, -1, 1, rng);
    CHECK(m1.lin[0].forward(x).to_f64_vector() == m3.lin[0].forward(x).to_f64_vector());
  }
}

// The folders of the authors' forks, written here from their code's rules alone: LinChain's
// fork (lora_use_mixer + mixer_num, nn.Linear(r, r) chain factors with biases, plus the
// fork's other LoraConfig fields), MoSLoRA's fork (lora_use_mixer, lora_AB without bias),
// and a PEFT LoRA with use_rslora.
TEST_CASE("PEFT folder: the authors' LinChain / MoSLoRA folders and PEFT LoRA load and compute the forks' formula") {
  TempDir tmp;
  const int64_t r = 4;
  struct Variant {
    const char* name;
    int mixers;
    bool bias, ab, rslora;
  };
  for (const Variant& var :
       {Variant{"linchain-authors", 3, true, false, false}, Variant{"moslora-authors", 1, false, true, false},
        Variant{"lora-rslora", 0, false, false, true}}) {
    const std::string vname = var.name;
    INFO(vname);
    const std::string dir = tmp.file(var.name);
    fs::create_directories(dir);
    nlohmann::json cfg{{"peft_type", "LORA"},
                       {"task_type", "CAUSAL_LM"},
                       {"r", r},
                       {"lora_alpha", 32},
                       {"lora_dropout", 0.05},
                       {"bias", "none"},
                       {"merge_weights", false},
                       {"fan_in_fan_out", false},
                       {"enable_lora", nullptr},
                       {"modules_to_save", nullptr},
                       {"inference_mode", true},
                       {"base_model_name_or_path", "yahma/llama-7b-hf"},
                       {"target_modules", {"q_proj", "down_proj"}}};
    if (var.mixers > 0) cfg["lora_use_mixer"] = true;
    if (var.mixers > 0 && !var.ab) cfg["mixer_num"] = var.mixers;
    if (var.rslora) cfg["use_rslora"] = true;
    write_json(dir + "/adapter_config.json", cfg);
    Model model;
    Rng rng(11);
    std::vector<std::pair<std::string, Tensor>> ts;
    for (const auto& [name, lin] : model.linears()) {
      const std::string pre = "base_model.model." + name;
      ts.emplace_back(pre + ".lora_A.weight", rand_uniform({r, lin->in_features()}, -0.5, 0.5, rng));
      for (int j = 0; j < var.mixers; ++j) {
        const std::string mix = var.ab ? pre + ".lora_AB" : pre + ".lora_mixer." + std::to_string(j);
        ts.emplace_back(mix + ".weight", rand_uniform({r, r}, -0.5, 0.5, rng));
        if (var.bias) ts.emplace_back(mix + ".bias", rand_uniform({r}, -0.5, 0.5, rng));
      }
      ts.emplace_back(pre + ".lora_B.weight", rand_uniform({lin->out_features(), r}, -0.5, 0.5, rng));
    }
    write_safetensors(dir + "/adapter_model.safetensors", ts, {{"format", "pt"}});

    AdapterSet set = load_adapter(dir, model.linears());
    CHECK(set.config.kind == (var.mixers == 0 ? AdapterKind::LoRA
                              : var.ab        ? AdapterKind::MoSLoRA
                                              : AdapterKind::LinChain));
    CHECK(set.config.num_mixers() == var.mixers);
    CHECK(set.config.chain_bias == var.bias);
    const double s = var.rslora ? 32.0 / std::sqrt(double(r)) : 32.0 / double(r);
    CHECK(set.config.scale() == doctest::Approx(s).epsilon(1e-15));
    const SafeTensors st = read_safetensors(dir + "/adapter_model.safetensors");
    NoGrad ng;
    for (const auto& [name, lin] : model.linears()) {
      const std::string pre = "base_model.model." + name;
      std::vector<std::vector<double>> mix, bias;
      for (int j = 0; j < var.mixers; ++j) {
        const std::string m = var.ab ? pre + ".lora_AB" : pre + ".lora_mixer." + std::to_string(j);
        mix.push_back(st.tensors.at(m + ".weight").to_f64_vector());
        if (var.bias) bias.push_back(st.tensors.at(m + ".bias").to_f64_vector());
      }
      const int64_t in = lin->in_features(), out = lin->out_features();
      const Tensor x = rand_uniform({1, in}, -1, 1, rng);
      const std::vector<double> ref = peft_forward(lin->weight.to_f64_vector(), x.to_f64_vector(),
                                                   st.tensors.at(pre + ".lora_A.weight").to_f64_vector(), mix, bias,
                                                   st.tensors.at(pre + ".lora_B.weight").to_f64_vector(), in, out, r,
                                                   s);
      const double d = rel_diff(lin->forward(x).to_f64_vector(), ref);
      MESSAGE(vname << " " << name << ": max|ours − fork formula| / max|y| = " << d);
      CHECK(d < cg::testing::tol::kPeftForwardRel);
    }
    // Written back by us, use_rslora is folded into lora_alpha (alpha·√r).
    if (var.rslora) {
      save_adapter(tmp.file("rs_back"), set);
      const nlohmann::json back = read_json(tmp.file("rs_back") + "/adapter_config.json");
      CHECK(back.at("lora_alpha").get<double>() == doctest::Approx(64.0));
      CHECK_FALSE(back.contains("use_rslora"));
    }
  }
}

TEST_CASE("PEFT folder: hostile or unsupported folders are FormatErrors naming the problem") {
  TempDir tmp;
  Model m;
  AdapterSet set = attach_adapters(m.linears(), config(3), 3);
  const std::string good = tmp.file("good");
  save_adapter(good, set);
  const nlohmann::json cfg = read_json(good + "/adapter_config.json");
  const SafeTensors st = read_safetensors(good + "/adapter_model.safetensors");
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj";
  int n = 0;
  // A copy of the good folder with its config and tensors edited.
  auto variant = [&](auto edit_cfg, auto edit_ts) {
    const std::string d = tmp.file("bad" + std::to_string(n++));
    fs::create_directories(d);
    nlohmann::json c = cfg;
    edit_cfg(c);
    write_json(d + "/adapter_config.json", c);
    std::vector<std::pair<std::string, Tensor>> ts;
    for (const auto& name : st.names) ts.emplace_back(name, st.tensors.at(name));
    edit_ts(ts);
    write_safetensors(d + "/adapter_model.safetensors", ts, {{"format", "pt"}});
    return d;
  };
  auto same = [](auto&) {};
  struct Case {
    std::string dir, needle;
  };
  std::vector<Case> cases{
      {variant([](auto& c) { c["r"] = 8; }, same), "rank"},
      {variant([](auto& c) { c["peft_type"] = "IA3"; }, same), "IA3"},
      {variant([](auto& c) { c["use_dora"] = true; }, same), "use_dora"},
      {variant([](auto& c) { c["bias"] = "all"; }, same), "bias"},
      {variant([](auto& c) { c["fan_in_fan_out"] = true; }, same), "fan_in_fan_out"},
      {variant([](auto& c) { c["modules_to_save"] = {"lm_head"}; }, same), "modules_to_save"},
      {variant(
           [](auto& c) {
             c["rank_pattern"] = {{"q_proj", 8}};
           },
           same),
       "rank_pattern"},
      {variant([](auto& c) { c["mixer_num"] = 2; }, same), "lora_mixer.2"},  // now unexpected
      {variant([](auto& c) { c.erase("lora_alpha"); }, same), "lora_alpha"},
      {variant([](auto& c) { c.erase("target_modules"); }, same), "target_modules"},
      {variant([](auto& c) { c["target_modules"] = {"q_proj"}; }, same), "down_proj"},
      {variant([](auto& c) { c["r"] = "four"; }, same), "r must be an integer"},
      {variant(same, [&](auto& ts) { std::erase_if(ts, [&](auto& p) { return p.first == q0 + ".lora_B.weight"; }); }),
       q0 + ".lora_B.weight"},
      {variant(same, [&](auto& ts) { ts.emplace_back(q0 + ".lora_embedding_A", Tensor::zeros({4})); }),
       "lora_embedding_A"},
      {variant(same,
               [&](auto& ts) {
                 for (auto& p : ts)
                   if (p.first == q0 + ".lora_mixer.1.weight") p.second = Tensor::zeros({4, 5});
               }),
       "lora_mixer.1"},
      {variant(same,
               [&](auto& ts) {
                 for (auto& p : ts)
                   if (p.first == q0 + ".lora_mixer.0.bias") p.second = Tensor::zeros({5});
               }),
       "lora_mixer.0.bias"},
  };
  for (const Case& c : cases) {
    INFO(c.dir << " expects " << c.needle);
    const std::string e = error_of([&] {
      Model x;
      load_adapter(c.dir, x.linears());
    });
    CHECK(e.find(c.needle) != std::string::npos);
    CHECK(e.find('\n') == std::string::npos);
  }
  // No config; bad JSON; a key twice; a pickle only (never opened).
  const std::string none = tmp.file("noconfig");
  fs::create_directories(none);
  fs::copy_file(good + "/adapter_model.safetensors", none + "/adapter_model.safetensors");
  CHECK(error_of([&] { read_adapter_file(none); }).find("adapter_config.json") != std::string::npos);
  const std::string badjson = variant(same, same);
  std::ofstream(badjson + "/adapter_config.json") << "{\"peft_type\": \"LORA\", \"r\": 4,";
  CHECK(error_of([&] { read_adapter_file(badjson); }).find("adapter_config.json") != std::string::npos);
  const std::string dup = variant(same, same);
  std::ofstream(dup + "/adapter_config.json") << "{\"peft_type\": \"LORA\", \"r\": 4, \"r\": 8}";
  CHECK(error_of([&] { read_adapter_file(dup); }).find("'r' appears twice") != std::string::npos);
  const std::string pickle = tmp.file("pickle");
  fs::create_directories(pickle);
  std::ofstream(pickle + "/adapter_model.bin") << "\x80\x02}q\x00.";
  write_json(pickle + "/adapter_config.json", cfg);
  for (const std::string& p : {pickle, pickle + "/adapter_model.bin"}) {
    const std::string e = error_of([&] { read_adapter_file(p); });
    CHECK(e.find("execute") != std::string::npos);
    CHECK(e.find("safetensors.torch") != std::string::npos);
    CHECK(e.find("safe_serialization=True") != std::string::npos);
    CHECK(e.find('\n') == std::string::npos);
  }
  // The model does not fit: another width (rank is fine, in/out are not), the model untouched.
  Model wide;
  wide.lin[0].weight = Tensor::zeros({16, 9});
  CHECK(error_of([&] { load_adapter(good, wide.linears()); }).find("q_proj") != std::string::npos);
  CHECK(wide.lin[1].adapter == nullptr);
}

TEST_CASE("export as plain LoRA: ΔW of the folded A equals the chain's; chain biases are refused") {
  TempDir tmp;
  for (int v = 0; v < 3; ++v) {  // LoRA (unchanged), MoSLoRA, LinChain n = 2
    INFO("variant " << v);
    Model m1, m2;
    AdapterSet set = attach_adapters(m1.linears(), config(v), 3);
    randomize(set, 50 + static_cast<uint64_t>(v));
    const AdapterFile lora = export_plain_lora(adapter_file_of(set));
    CHECK(lora.config.kind == AdapterKind::LoRA);
    CHECK(lora.config.rank == 4);
    CHECK(lora.config.alpha == 6.0);
    const std::string dir = tmp.file("lora" + std::to_string(v));
    write_adapter(dir, lora);
    CHECK(cg::testing::safetensors_file_problem(dir + "/adapter_model.safetensors") == "");
    CHECK_FALSE(read_json(dir + "/adapter_config.json").contains("lora_use_mixer"));
    AdapterSet got = load_adapter(dir, m2.linears());
    CHECK(got.config.kind == AdapterKind::LoRA);
    for (size_t i = 0; i < set.adapters.size(); ++i) {
      const double d = rel_diff(got.adapters[i].adapter->delta_weight().to_f64_vector(),
                                set.adapters[i].adapter->delta_weight().to_f64_vector());
      MESSAGE("variant " << v << " " << set.adapters[i].module << ": max|ΔW_lora − ΔW_chain| / max|ΔW| = " << d);
      CHECK(d < cg::testing::tol::kExportDeltaRel);
    }
  }
  Model m;
  AdapterSet biased = attach_adapters(m.linears(), config(3), 3);
  const std::string e = error_of([&] { export_plain_lora(adapter_file_of(biased)); });
  CHECK(e.find("β") != std::string::npos);
  CHECK(e.find("merged model") != std::string::npos);
}

TEST_CASE("tools: --adapter-in reads both layouts; --export-lora; hostile adapters are one line, exit 2") {
  const std::string train = "build/bin/train", finetune = "build/bin/finetune", evaluate = "build/bin/evaluate",
                    generate = "build/bin/generate", convert = "build/bin/convert", gradflow = "build/bin/gradflow";
  for (const std::string& t : {train, finetune, evaluate, generate, convert, gradflow})
    if (!fs::exists(t)) {
      cg::testing::skip(cg::testing::SkipKind::Data, t + " not found (run the tests from the repo root after make)");
      return;
    }
  TempDir d;
  const std::string base = d.file("base.safetensors"), text = d.file("t.txt");
  std::ofstream(text) << "12+34=46\n7+8=15\n";
  Run r = cg::testing::run(train, {"--arith",   "add", "--arith-lines", "500", "--dim",   "32", "--layers", "2",
                                   "--heads",   "4",   "--seq",         "32",  "--batch", "4",  "--steps",  "2",
                                   "--threads", "1",   "--out",         base});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  auto ft = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> a{"--model",        base, "--arith", "add", "--arith-lines", "500",  "--seq",     "32",
                               "--batch",        "4",  "--steps", "3",   "--lr",          "1e-2", "--threads", "1",
                               "--eval-batches", "1",  "--rank",  "4"};
    a.insert(a.end(), extra.begin(), extra.end());
    return cg::testing::run(finetune, a);
  };
  auto loss_with = [&](const std::string& adapter) {
    Run e = cg::testing::run(evaluate, {"--model", base, "--tokenizer", "byte", "--text", text, "--json",
                                        "--adapter-in", adapter});
    REQUIRE_MESSAGE(e.code == 0, e.err);
    return nlohmann::json::parse(e.out).at("loss").get<double>();
  };
  // LinChain with biases to a folder, without to a folder plus its plain LoRA.
  r = ft({"--adapter", "linchain", "--chain", "2", "--chain-bias", "--out", d.file("lcb")});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  cg::testing::check_safetensors_under(d.file("lcb"));
  r = ft({"--adapter", "linchain", "--chain", "3", "--out", d.file("lc"), "--export-lora", d.file("lc_lora")});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  cg::testing::check_safetensors_under(d.file("lc_lora"));
  // The adapter changes the loss; the folder, its single-file conversion and (bias-free) its
  // plain LoRA give the same loss (float32 rounding of the fold aside).
  Run e0 = cg::testing::run(evaluate, {"--model", base, "--tokenizer", "byte", "--text", text, "--json"});
  REQUIRE(e0.code == 0);
  const double base_loss = nlohmann::json::parse(e0.out).at("loss").get<double>();
  r = cg::testing::run(convert, {"--adapter-in", d.file("lcb"), "--adapter-out", d.file("lcb.safetensors")});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(loss_with(d.file("lcb")) != base_loss);
  CHECK(loss_with(d.file("lcb")) == loss_with(d.file("lcb.safetensors")));
  CHECK(loss_with(d.file("lc")) == doctest::Approx(loss_with(d.file("lc_lora"))).epsilon(1e-6));
  r = cg::testing::run(convert, {"--adapter-in", d.file("lc"), "--export-lora", d.file("lc_lora2.safetensors")});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(loss_with(d.file("lc_lora2.safetensors")) == loss_with(d.file("lc_lora")));
  // Continue training from a folder; generate and gradflow read it too.
  r = ft({"--adapter-in", d.file("lcb"), "--out", d.file("lcb2")});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(r.err.find("linchain (chain biases) r=4 n=2") != std::string::npos);
  r = cg::testing::run(generate, {"--model", base, "--tokenizer", "byte", "--adapter-in", d.file("lcb"),
                                  "--temperature", "0", "--steps", "8"});
  CHECK_MESSAGE(r.code == 0, r.err);
  r = cg::testing::run(gradflow, {"--model", base, "--text", text, "--adapter-in", d.file("lcb"), "--dump-grads",
                                  d.file("g.safetensors")});
  CHECK_MESSAGE(r.code == 0, r.err);

  // Refusals, one line and exit 2, before any training.
  cg::testing::check_usage_error(ft({"--adapter", "linchain", "--chain-bias", "--export-lora", d.file("x")}),
                                 "finetune", "cannot carry");
  cg::testing::check_usage_error(ft({"--adapter-in", d.file("lcb"), "--export-lora", d.file("x")}), "finetune",
                                 "cannot carry");
  cg::testing::check_usage_error(cg::testing::run(convert,
                                                  {"--adapter-in", d.file("lcb"), "--export-lora", d.file("x")}),
                                 "convert", "cannot carry");
  CHECK_FALSE(fs::exists(d.file("x")));
  // LoRA with a bias in B's span: no PEFT form, refused before training; as one file it
  // loads back with its bias (the loss differs from the bias-free LoRA of the same seed).
  cg::testing::check_usage_error(ft({"--adapter", "lora", "--chain-bias", "--out", d.file("lb")}), "finetune",
                                 "has no PEFT form");
  CHECK_FALSE(fs::exists(d.file("lb")));
  r = ft({"--adapter", "lora", "--chain-bias", "--out", d.file("lb.safetensors"), "--summary", d.file("lb.json")});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.err.find("lora (chain biases) r=4 n=0") != std::string::npos);
  r = ft({"--adapter", "lora", "--out", d.file("l.safetensors")});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(loss_with(d.file("lb.safetensors")) != loss_with(d.file("l.safetensors")));
  {
    const cg::models::AdapterFile f = cg::models::read_adapter_file(d.file("lb.safetensors"));
    CHECK(f.config.kind == AdapterKind::LoRA);
    CHECK(f.config.chain_bias);
  }
  cg::testing::check_usage_error(cg::testing::run(convert, {"--adapter-in", d.file("lb.safetensors"), "--adapter-out",
                                                            d.file("lb_dir")}),
                                 "convert", "has no PEFT form");
  CHECK_FALSE(fs::exists(d.file("lb_dir")));
  cg::testing::check_usage_error(cg::testing::run(convert, {"--adapter-in", d.file("lb.safetensors"), "--export-lora",
                                                            d.file("x")}),
                                 "convert", "cannot carry");
  cg::testing::check_usage_error(ft({"--adapter-in", d.file("lc"), "--out", d.file("lc")}), "finetune",
                                 "same file as --adapter-in");
  cg::testing::check_usage_error(ft({"--adapter-in", d.file("lc") + "/adapter_model.safetensors", "--out",
                                     d.file("lc")}),
                                 "finetune", "same file as --adapter-in");
  fs::create_directories(d.file("pickle"));
  std::ofstream(d.file("pickle") + "/adapter_model.bin") << "not opened";
  fs::create_directories(d.file("noconfig"));
  fs::copy_file(d.file("lc") + "/adapter_model.safetensors", d.file("noconfig") + "/adapter_model.safetensors");
  fs::create_directories(d.file("badjson"));
  fs::copy_file(d.file("lc") + "/adapter_model.safetensors", d.file("badjson") + "/adapter_model.safetensors");
  std::ofstream(d.file("badjson") + "/adapter_config.json") << "{\"r\": ";
  fs::create_directories(d.file("dupkey"));
  fs::copy_file(d.file("lc") + "/adapter_model.safetensors", d.file("dupkey") + "/adapter_model.safetensors");
  {
    std::string j = cg::testing::slurp(d.file("lc") + "/adapter_config.json");
    j.insert(1, "\"r\": 4,");  // r twice
    std::ofstream(d.file("dupkey") + "/adapter_config.json") << j;
  }
  // Tensors: one unknown, one mis-shaped, one missing (a copy of lc with its weights edited).
  const SafeTensors lc = read_safetensors(d.file("lc") + "/adapter_model.safetensors");
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj";
  auto edited = [&](const std::string& name, auto edit) {
    fs::create_directories(d.file(name));
    fs::copy_file(d.file("lc") + "/adapter_config.json", d.file(name) + "/adapter_config.json");
    std::vector<std::pair<std::string, Tensor>> ts;
    for (const std::string& n : lc.names) ts.emplace_back(n, lc.tensors.at(n));
    edit(ts);
    write_safetensors(d.file(name) + "/adapter_model.safetensors", ts, {{"format", "pt"}});
  };
  edited("unknown", [&](auto& ts) { ts.emplace_back(q0 + ".lora_magnitude_vector", Tensor::zeros({32})); });
  edited("wrongshape", [&](auto& ts) {
    for (auto& p : ts)
      if (p.first == q0 + ".lora_B.weight") p.second = Tensor::zeros({32, 5});
  });
  edited("missing",
         [&](auto& ts) { std::erase_if(ts, [&](auto& p) { return p.first == q0 + ".lora_mixer.2.weight"; }); });
  // An adapter of another model: rank 4 on a base of width 64.
  const std::string wide = d.file("wide.safetensors");
  r = cg::testing::run(train,
                       {"--arith", "add", "--arith-lines", "500", "--dim",   "64", "--layers",  "2", "--heads", "4",
                        "--seq",   "32",  "--batch",       "4",   "--steps", "1",  "--threads", "1", "--out",   wide});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const std::vector<std::pair<std::string, std::string>> hostile{{d.file("pickle"), "execute"},
                                                                 {d.file("pickle") + "/adapter_model.bin", "execute"},
                                                                 {d.file("noconfig"), "adapter_config.json"},
                                                                 {d.file("badjson"), "adapter_config.json"},
                                                                 {d.file("dupkey"), "'r' appears twice"},
                                                                 {d.file("absent"), "absent"},
                                                                 {d.file("unknown"), "lora_magnitude_vector"},
                                                                 {d.file("wrongshape"), "rank r = 4"},
                                                                 {d.file("missing"), "lora_mixer.2.weight"}};
  for (const auto& [path, needle] : hostile) {
    INFO(path);
    cg::testing::check_usage_error(cg::testing::run(evaluate, {"--model", base, "--tokenizer", "byte", "--text", text,
                                                               "--adapter-in", path}),
                                   "evaluate", needle);
    cg::testing::check_usage_error(cg::testing::run(generate,
                                                    {"--model", base, "--tokenizer", "byte", "--adapter-in", path}),
                                   "generate", needle);
  }
  cg::testing::check_usage_error(cg::testing::run(evaluate, {"--model", wide, "--tokenizer", "byte", "--text", text,
                                                             "--adapter-in", d.file("lc")}),
                                 "evaluate", "the model's weight is");
  cg::testing::check_usage_error(ft({"--adapter-in", d.file("pickle")}), "finetune", "execute");
  cg::testing::check_usage_error(cg::testing::run(convert, {"--adapter-in", d.file("lc")}), "convert", "--adapter-out");
}
