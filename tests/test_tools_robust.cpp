// tests/test_tools_robust.cpp — train and finetune under interruption and hostile input:
// SIGINT mid-run saves a loadable checkpoint and the output, exits 130 with one line, and
// --resume reproduces the uninterrupted run's later losses bit for bit (metrics appended);
// outputs that would overwrite an input, directories, bad numbers, typos and impossible
// settings are one-line exit-2 errors before anything loads; a locked checkpoint is refused;
// --precision and finetune's --base-dtype are checked and recorded in checkpoints.
#include <doctest/doctest.h>

#include <cmath>
#include <sys/file.h>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/io/adapter_file.h"
#include "models/io/file_io.h"
#include "models/io/safetensors.h"
#include "tests/tool_runner.h"

using namespace cg::testing;

namespace {

// The metrics rows of optimizer steps (a fresh run also logs the untrained val loss as a
// step-0 row, which has no "loss"); with all = true every row.
std::vector<nlohmann::json> rows(const std::string& path, bool all = false) {
  std::vector<nlohmann::json> r;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line);
    if (all || j.contains("loss")) r.push_back(std::move(j));
  }
  return r;
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<std::string> kModel{"--arith",  "add", "--arith-lines", "2000", "--dim",  "32",
                                      "--layers", "2",   "--heads",       "4",    "--seq",  "32",
                                      "--batch",  "4",   "--threads",     "1",    "--seed", "3"};

std::string make_base(const TempDir& d) {
  const std::string base = d.file("base.safetensors");
  Run r = run(kTrain, with(kModel, {"--steps", "2", "--out", base}));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  return base;
}

}  // namespace

TEST_CASE("finetune: SIGINT mid-run → exit 130, one line, checkpoint + adapter; --resume continues bitwise") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  const std::vector<std::string> ft{"--model",   base,   "--arith", "sub",  "--arith-lines", "2000",
                                    "--adapter", "lora", "--rank",  "4",    "--seq",         "32",
                                    "--batch",   "4",    "--lr",    "1e-2", "--eval-every",  "0",
                                    "--threads", "1",    "--seed",  "5",    "--steps",       "1000000"};
  const std::string ck = d.file("ck.safetensors"), metrics = d.file("m.jsonl");
  Run i = run_interrupted(kFinetune,
                          with(ft, {"--checkpoint", ck, "--out", d.file("ad.safetensors"), "--metrics", metrics}),
                          metrics, 20, SIGINT);
  INFO("stderr: " << i.err);
  REQUIRE(i.code == 130);
  const auto got = rows(metrics);
  REQUIRE(got.size() >= 20);
  const int64_t k = got.back()["step"].get<int64_t>();
  const std::string line = "finetune: interrupted by SIGINT after step " + std::to_string(k) + " of 1000000";
  CHECK(i.err.find(line) != std::string::npos);
  CHECK(std::count(i.err.begin(), i.err.end(), '\n') >= 1);
  CHECK(i.err.substr(i.err.rfind(line)).find('\n') == i.err.size() - i.err.rfind(line) - 1);  // the last line
  CHECK(fs::exists(d.file("ad.safetensors")));
  CHECK(files_starting(d.path, "ck.safetensors.").empty());  // no temp, no lock left
  CHECK(files_starting(d.path, "ad.safetensors.").empty());
  // The uninterrupted run to k + 5, and the resumed one (same metrics file: appended).
  Run s = run(kFinetune, with(ft, {"--stop-after", std::to_string(k + 5), "--metrics", d.file("s.jsonl")}));
  REQUIRE_MESSAGE(s.code == 0, s.err);
  Run r = run(kFinetune, with(ft, {"--resume", ck, "--checkpoint", ck, "--stop-after", std::to_string(k + 5),
                                   "--metrics", metrics}));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto a = rows(d.file("s.jsonl")), b = rows(metrics);
  REQUIRE(a.size() == static_cast<size_t>(k + 5));
  REQUIRE(b.size() == static_cast<size_t>(k + 5));                  // the k rows kept, 5 appended
  CHECK(rows(metrics, true).size() == static_cast<size_t>(k + 6));  // and one step-0 row, not repeated
  for (size_t j = 0; j < a.size(); ++j) {
    INFO("step " << a[j]["step"]);
    CHECK(b[j]["step"] == a[j]["step"]);
    CHECK(b[j]["loss"].get<double>() == a[j]["loss"].get<double>());
    CHECK(b[j]["grad_norm"].get<double>() == a[j]["grad_norm"].get<double>());
  }
  // A checkpoint of another run is refused with the field named.
  Run m = run(kFinetune, with(ft, {"--resume", ck, "--alpha", "8"}));
  CHECK(m.code == 2);
  CHECK(m.err.find("adapter differs") != std::string::npos);
  Run o = run(kFinetune, with(ft, {"--resume", ck, "--optimizer", "sgd"}));
  CHECK(o.code == 2);
  // The checkpoint is locked while a run writes it.
  {
    const int fd = ::open((ck + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    Run l = run(kFinetune, with(ft, {"--checkpoint", ck, "--stop-after", "1"}));
    CHECK(l.code == 2);
    CHECK(l.err.find("another run") != std::string::npos);
    ::close(fd);
    fs::remove(ck + ".lock");
  }
}

TEST_CASE("train: --stop-after always saves; periodic checkpoints by default; stale temps go") {
  if (!have_tools()) return;
  TempDir d;
  const std::string ck = d.file("ck.safetensors");
  { std::ofstream(ck + ".tmp.AbC123") << "left by a process killed mid-save"; }
  Run r = run(kTrain, with(kModel, {"--steps", "10", "--stop-after", "3", "--checkpoint", ck}));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(fs::exists(ck));
  CHECK(files_starting(d.path, "ck.safetensors.").empty());
  Run c = run(kTrain, with(kModel, {"--steps", "10", "--resume", ck, "--stop-after", "4"}));
  CHECK_MESSAGE(c.code == 0, c.err);
  CHECK(c.err.find("resumed from") != std::string::npos);
  // Another model of the same shapes (2 heads instead of 4) is refused, naming the field.
  std::vector<std::string> two_heads = kModel;
  *(std::find(two_heads.begin(), two_heads.end(), "--heads") + 1) = "2";
  Run h = run(kTrain, with(two_heads, {"--steps", "10", "--resume", ck}));
  INFO("stderr: " << h.err);
  CHECK(h.code == 2);
  CHECK(h.err.find("model differs") != std::string::npos);
}

TEST_CASE("train and finetune: hostile flags are one line, exit 2, before anything loads") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  const std::vector<std::string> ft{"--model", base, "--arith", "sub", "--seq", "32", "--batch", "4", "--steps", "2"};
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  std::filesystem::create_directories(d.file("dir.safetensors"));
  std::ofstream(d.file("plain")) << "x";
  const std::vector<Case> cases{
      {{"--rank", "0"}, "--rank must be ≥ 1, got 0"},
      {{"--rank", "1e6"}, "--rank must be ≤ 4096"},
      {{"--rank", "40"}, "smaller side"},
      {{"--weight-decay", "nan"}, "--weight-decay must be a finite number"},
      {{"--clip", "nan"}, "--clip must be a finite number"},
      {{"--min-lr-frac", "nan"}, "--min-lr-frac must be a finite number"},
      {{"--lr", "inf"}, "--lr must be a finite number"},
      {{"--modle", "x"}, "unknown flag --modle; did you mean --model?"},
      {{"--schedule", "step"}, "--schedule"},
      {{"--arith-max", "2", "--eval-arith", "3"}, "no held-out operand pair"},
      {{"--out", d.file("dir.safetensors")}, "is a directory"},    // a file path that is a folder
      {{"--out", d.file("plain")}, "exists and is not a folder"},  // a folder path that is a file
      {{"--export-lora", d.file("plain")}, "exists and is not a folder"},
      {{"--out", base}, "is the same file as --model"},
      {{"--merge-out", d.file("./base.safetensors")}, "is the same file as --model"},
      {{"--out", d.file("a.st"), "--summary", d.file("a.st")}, "is the same file as --out"},
      {{"--metrics", d.file("c.st"), "--checkpoint", d.file("c.st")}, "same file"},
  };
  for (const Case& c : cases) {
    INFO("args: " << c.args[0]);
    Run r = run(kFinetune, with(ft, c.args));
    check_usage_error(r, "finetune", c.needle);
    CHECK(r.err.find("base ") == std::string::npos);  // no info line came first
  }
  check_usage_error(run(kTrain, with(kModel, {"--steps", "2", "--out", d.path.string()})), "train", "is a directory");
  check_usage_error(run(kTrain, with(kModel, {"--steps", "2", "--modle", "x"})), "train", "unknown flag");
  // Checked against the loaded model, but still before the first info line.
  const Run seq = run(kFinetune, {"--model", base, "--arith", "sub", "--seq", "100000", "--steps", "2"});
  check_usage_error(seq, "finetune", "exceeds the model's context");
  CHECK(seq.err.find("base ") == std::string::npos);
  // --text longer than the model's context is refused (not cut to --seq).
  {
    std::ofstream f(d.file("long.txt"));
    for (int i = 0; i < 200; ++i) f << "1+1=20\n";
  }
  Run t = run(kFinetune, {"--model", base, "--text", d.file("long.txt"), "--steps", "1"});
  CHECK(t.code == 2);
  CHECK(t.err.find("do not fit the model's context") != std::string::npos);
  // A 64-bit step count is accepted.
  Run big = run(kFinetune, with({"--model", base, "--arith", "sub", "--seq", "32", "--batch", "4"},
                                {"--steps", "3000000000", "--stop-after", "1"}));
  CHECK_MESSAGE(big.code == 0, big.err);
  // Metrics to a full disk: exit 2 with one line.
  if (fs::exists("/dev/full")) {
    Run full = run(kFinetune, with(ft, {"--metrics", "/dev/full"}));
    CHECK(full.code == 2);
    CHECK(full.err.find("--metrics /dev/full: write failed") != std::string::npos);
  }
}

TEST_CASE("finetune: a non-finite loss stops with exit 3; --skip-nonfinite skips and counts") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  {  // a NaN in the base's last weight (the last 4 bytes of the file): every loss is NaN
    std::fstream f(base, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    const uint32_t nan_bits = 0x7fc00000u;
    f.write(reinterpret_cast<const char*>(&nan_bits), 4);
  }
  const std::vector<std::string> ft{"--model", base, "--arith",      "sub", "--seq",          "32", "--batch", "4",
                                    "--steps", "5",  "--eval-every", "0",   "--eval-batches", "0"};
  Run r = run(kFinetune, with(ft, {"--checkpoint", d.file("ck"), "--out", d.file("ad")}));
  INFO("stderr: " << r.err);
  if (r.code == 2 && r.err.find("finite") != std::string::npos) {
    MESSAGE("the reader refuses a NaN weight already: " << r.err);
    return;
  }
  CHECK(r.code == 3);
  CHECK(r.err.find("finetune: non-finite loss at step 1; stopped without taking that update") != std::string::npos);
  CHECK_FALSE(fs::exists(d.file("ad")));
  Run s = run(kFinetune, with(ft, {"--skip-nonfinite", "--metrics", d.file("m.jsonl")}));
  CHECK(s.code == 0);
  CHECK(s.err.find("skipped 5 updates with a non-finite loss or gradient") != std::string::npos);
  const auto m = rows(d.file("m.jsonl"));
  REQUIRE(m.size() == 5);
  CHECK(m[4]["step"] == 5);
  CHECK(m[4]["skipped"] == "loss");
}

TEST_CASE("finetune: --optimizer sgd --schedule constant --warmup 0 --clip 0 --weight-decay 0 is plain SGD") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  Run r = run(kFinetune,
              {"--model",      base, "--arith",     "sub", "--seq",          "32",       "--batch",   "4",
               "--steps",      "6",  "--optimizer", "sgd", "--schedule",     "constant", "--lr",      "0.05",
               "--warmup",     "0",  "--clip",      "0",   "--weight-decay", "0",        "--metrics", d.file("m.jsonl"),
               "--eval-every", "0"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto m = rows(d.file("m.jsonl"));
  REQUIRE(m.size() == 6);
  for (const auto& row : m) CHECK(row["lr"].get<double>() == 0.05);  // no warmup, no decay
  // The same with --schedule linear decays to 0 over --steps.
  Run l =
      run(kFinetune, {"--model", base, "--arith", "sub", "--seq", "32", "--batch", "4", "--steps", "6", "--optimizer",
                      "sgd", "--schedule", "linear", "--lr", "0.05", "--metrics", d.file("l.jsonl")});
  REQUIRE_MESSAGE(l.code == 0, l.err);
  const auto ml = rows(d.file("l.jsonl"));
  REQUIRE(ml.size() == 6);
  CHECK(ml[0]["lr"].get<double>() == doctest::Approx(0.05));
  CHECK(ml[3]["lr"].get<double>() == doctest::Approx(0.05 * (1 - 3.0 / 6)));
}

TEST_CASE("adapter files: LoRA/MoSLoRA/LinChain load without chain_length; lora_alpha 1e308 is refused") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  for (const std::string kind : {"lora", "moslora", "linchain"}) {
    INFO(kind);
    const std::string ad = d.file(kind + ".safetensors");
    Run r = run(kFinetune, {"--model", base, "--arith", "sub", "--seq", "32", "--batch", "4", "--steps", "1",
                            "--adapter", kind, "--rank", "4", "--chain", "2", "--out", ad});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const cg::models::SafeTensors st = cg::models::read_safetensors(ad);
    auto rewrite = [&](const std::string& key, const std::string* value) {
      std::vector<std::pair<std::string, cg::Tensor>> ts;
      for (const std::string& n : st.names) ts.emplace_back(n, st.tensors.at(n));
      auto meta = st.metadata;
      if (value) meta[key] = *value;
      else meta.erase(key);
      const std::string p = d.file("re_" + kind + ".safetensors");
      cg::models::write_file_atomic(p, cg::models::serialize_safetensors(ts, meta));
      return p;
    };
    const auto f = cg::models::read_adapter_file(rewrite("chain_length", nullptr));
    CHECK(f.config.num_mixers() == (kind == "lora" ? 0 : kind == "moslora" ? 1 : 2));
    const std::string huge = "1e308";
    CHECK_THROWS_WITH_AS(cg::models::read_adapter_file(rewrite("lora_alpha", &huge)), doctest::Contains("out of range"),
                         cg::FormatError);
  }
}

TEST_CASE("--precision: f32 or bf16 on train, finetune, evaluate and generate; anything else is exit 2") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  // Refused by the parser, before anything loads (the model file need not exist).
  for (const char* bad : {"fp16", "BF16", "bf32", ""}) {
    INFO("--precision '" << bad << "'");
    check_usage_error(run(kTrain, with(kModel, {"--steps", "2", "--precision", bad})), "train", "--precision");
    check_usage_error(run(kFinetune, {"--model", base, "--arith", "sub", "--steps", "2", "--precision", bad}),
                      "finetune", "--precision");
    check_usage_error(run("build/bin/evaluate", {"--model", d.file("none.bin"), "--text", base, "--precision", bad}),
                      "evaluate", "--precision");
    check_usage_error(run("build/bin/generate", {"--model", d.file("none.bin"), "--precision", bad}), "generate",
                      "--precision");
  }
  // bf16 runs, and its losses are close to f32's but not the same bits (the GEMMs changed).
  auto losses = [&](const std::string& p) {
    const std::string m = d.file("m_" + p + ".jsonl");
    Run r = run(kTrain, with(kModel, {"--steps", "3", "--eval-every", "0", "--precision", p, "--metrics", m}));
    REQUIRE_MESSAGE(r.code == 0, r.err);
    std::vector<double> l;
    for (const nlohmann::json& j : rows(m)) l.push_back(j["loss"].get<double>());
    return l;
  };
  const std::vector<double> f32 = losses("f32"), bf16 = losses("bf16");
  REQUIRE(f32.size() == 3);
  REQUIRE(bf16.size() == 3);
  CHECK(f32 != bf16);
  for (size_t i = 0; i < f32.size(); ++i) CHECK(std::abs(bf16[i] - f32[i]) <= 0.02 * std::abs(f32[i]));
  // A checkpoint records the precision: --resume under the other one is refused, naming it.
  const std::string ck = d.file("ck.safetensors");
  Run c = run(kTrain, with(kModel, {"--steps", "4", "--stop-after", "2", "--checkpoint", ck, "--precision", "bf16"}));
  REQUIRE_MESSAGE(c.code == 0, c.err);
  Run other = run(kTrain, with(kModel, {"--steps", "4", "--resume", ck}));
  CHECK(other.code == 2);
  CHECK(other.err.find("precision differs") != std::string::npos);
  Run same = run(kTrain, with(kModel, {"--steps", "4", "--resume", ck, "--precision", "bf16"}));
  CHECK_MESSAGE(same.code == 0, same.err);
  Run g = run("build/bin/generate",
              {"--model", base, "--tokenizer", "byte", "--precision", "bf16", "--steps", "8", "--temperature", "0"});
  CHECK_MESSAGE(g.code == 0, g.err);
}

TEST_CASE("finetune --base-dtype bf16: needs --precision bf16, not with --merge-out; runs, and a resume checks it") {
  if (!have_tools()) return;
  TempDir d;
  const std::string base = make_base(d);
  const std::vector<std::string> ft{"--model", base, "--arith", "sub", "--seq", "32", "--batch", "4", "--steps", "4"};
  check_usage_error(run(kFinetune, with(ft, {"--base-dtype", "bf16"})), "finetune", "--base-dtype bf16 needs");
  check_usage_error(run(kFinetune, with(ft, {"--base-dtype", "bf16", "--precision", "bf16", "--merge-out",
                                             d.file("m.safetensors")})),
                    "finetune", "--merge-out needs --base-dtype f32");
  check_usage_error(run(kFinetune, with(ft, {"--base-dtype", "f16"})), "finetune", "--base-dtype");
  const std::string s = d.file("s.json"), ck = d.file("ck.safetensors");
  Run r = run(kFinetune, with(ft, {"--base-dtype", "bf16", "--precision", "bf16", "--summary", s, "--checkpoint", ck,
                                   "--stop-after", "2"}));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.err.find("weight matrices stored in bf16") != std::string::npos);
  std::ifstream sf(s);
  const nlohmann::json j = nlohmann::json::parse(sf);
  CHECK(j["base_dtype"] == "bf16");
  CHECK(j["precision"] == "bf16");
  CHECK(std::isfinite(j["final_loss"].get<double>()));
  // The checkpoint names the bf16 base: resuming with the f32 base is refused.
  Run other = run(kFinetune, with(ft, {"--precision", "bf16", "--resume", ck}));
  CHECK(other.code == 2);
  CHECK(other.err.find("base differs") != std::string::npos);
  Run same = run(kFinetune, with(ft, {"--base-dtype", "bf16", "--precision", "bf16", "--resume", ck}));
  CHECK_MESSAGE(same.code == 0, same.err);
}
