// tests/test_flow_recorder.cpp — gradient flow of a real run: `finetune --flow` and
// `gradflow --model` on the same flags write the same rows (one training code path); the
// rows cover the logged steps and the filtered modules; finetune logs the base model's
// validation loss as step 0 and prints --sample-every samples; bad --flow-modules is one
// line and exit code 2. Runs build/bin/* from the repo root on a small base trained here.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "tests/tool_runner.h"

using namespace cg::testing;

namespace {

const std::string kGradflow = "build/bin/gradflow";

// train, finetune (tests/tool_runner.h) and gradflow built; else a visible skip.
bool have_flow_tools() { return have_tools() && have_file(kGradflow); }

std::vector<nlohmann::json> jsonl(const std::string& path) {
  std::vector<nlohmann::json> r;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) r.push_back(nlohmann::json::parse(line));
  return r;
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A 3-step pretrained base (dim 32, 2 layers) and the fine-tune flags both tools accept.
struct Base {
  TempDir d;
  std::vector<std::string> ft;
  Base() {
    const Run b = run(kTrain, {"--arith",       "add",
                               "--arith-lines", "2000",
                               "--dim",         "32",
                               "--layers",      "2",
                               "--heads",       "4",
                               "--kv-heads",    "2",
                               "--seq",         "32",
                               "--batch",       "4",
                               "--steps",       "3",
                               "--seed",        "3",
                               "--out",         d.file("base.safetensors")});
    REQUIRE_MESSAGE(b.code == 0, b.err);
    ft = {"--model",       d.file("base.safetensors"),
          "--arith",       "sub",
          "--arith-lines", "2000",
          "--adapter",     "linchain",
          "--rank",        "4",
          "--chain",       "3",
          "--seq",         "32",
          "--batch",       "4",
          "--lr",          "1e-2",
          "--warmup",      "2",
          "--eval-every",  "3",
          "--steps",       "7",
          "--seed",        "5"};
  }
};

}  // namespace

TEST_CASE("finetune --flow and gradflow --model on the same flags write the same rows") {
  if (!have_flow_tools()) return;
  Base base;
  const std::vector<std::string> flow{"--flow-every", "3"};
  const Run f =
      run(kFinetune,
          with(base.ft, with(flow, {"--flow", base.d.file("ft.jsonl"), "--metrics", base.d.file("m.jsonl")})));
  REQUIRE_MESSAGE(f.code == 0, f.err);
  CHECK(f.err.find("wrote gradient flow") != std::string::npos);
  const Run g = run(kGradflow, with(base.ft, with(flow, {"--flow", base.d.file("gf.jsonl")})));
  REQUIRE_MESSAGE(g.code == 0, g.err << g.out);
  const auto a = jsonl(base.d.file("ft.jsonl")), b = jsonl(base.d.file("gf.jsonl"));
  // 5 modules (q,k,v,up,down) × 2 layers, at 0-based steps 0, 3, 6 (every 3 and the last).
  REQUIRE(a.size() == 3 * 10);
  REQUIRE(b.size() == a.size());
  std::set<int64_t> steps;
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("row " << i << ": " << a[i].dump());
    CHECK(a[i] == b[i]);  // every field, bit for bit (doubles print round-trip)
    steps.insert(a[i]["step"].get<int64_t>());
    CHECK(a[i]["grad_norm_W"].size() == 3);
    CHECK(a[i]["sv"].size() == 4);
    CHECK(a[i]["lr"].get<double>() > 0);
  }
  CHECK(steps == std::set<int64_t>{0, 3, 6});
  // Step 0: B = 0, so only B has a gradient (docs/04-adapters.md).
  CHECK(a[0]["grad_norm_A"].get<double>() == 0);
  CHECK(a[0]["grad_norm_B"].get<double>() > 0);
  CHECK(a.back()["grad_norm_A"].get<double>() > 0);
  // The adapter term's size on each logged step's forwards: 0 at step 0 (B = 0), then not;
  // no chain biases here, so no Δb.
  CHECK(a[0]["input_term_rms"].get<double>() == 0);
  CHECK(a.back()["input_term_rms"].get<double>() > 0);
  CHECK(a.back()["bias_term_norm"].is_null());
  // The per-step metrics of the same run start with the base model's validation loss.
  const auto m = jsonl(base.d.file("m.jsonl"));
  REQUIRE(m.size() == 8);
  CHECK(m[0]["step"] == 0);
  CHECK(m[0].contains("val_loss"));
  CHECK_FALSE(m[0].contains("loss"));
  CHECK(m[1]["step"] == 1);
  CHECK(f.err.find("step 0  val loss") != std::string::npos);
}

TEST_CASE("finetune --flow-modules filters the rows; a bad regex is exit 2; --sample-every samples") {
  if (!have_flow_tools()) return;
  Base base;
  const Run f = run(kFinetune, with(base.ft, {"--flow", base.d.file("q.jsonl"), "--flow-modules",
                                              "layers\\.1\\..*q_proj", "--sample-every", "7", "--sample-tokens", "8"}));
  REQUIRE_MESSAGE(f.code == 0, f.err);
  const auto rows = jsonl(base.d.file("q.jsonl"));
  REQUIRE(rows.size() == 2);  // steps 0 and 6 (default --flow-every 10, and the last)
  for (const auto& r : rows) CHECK(r["module"] == "model.layers.1.self_attn.q_proj");
  CHECK(f.err.find("sample @7: ") != std::string::npos);
  // Off: no file, no rows.
  const Run off = run(kFinetune, base.ft);
  REQUIRE_MESSAGE(off.code == 0, off.err);
  CHECK(off.err.find("gradient flow") == std::string::npos);
  check_usage_error(run(kFinetune, with(base.ft, {"--flow", base.d.file("x.jsonl"), "--flow-modules", "(unclosed"})),
                    "finetune", "not a regular expression");
  check_usage_error(run(kFinetune, with(base.ft, {"--flow", base.d.file("x.jsonl"), "--flow-modules", "nothing_here"})),
                    "finetune", "matches none");
  CHECK_FALSE(fs::exists(base.d.file("x.jsonl")));
}

TEST_CASE("finetune --flow across an interruption: the resumed run's file holds every logged step, as one run's") {
  if (!have_flow_tools()) return;
  Base base;
  // With chain biases and dropout, so that β's term and the dropout masks are in the rows.
  const std::vector<std::string> ft = with(base.ft, {"--chain-bias", "--dropout", "0.1", "--flow-every", "2"});
  const Run whole = run(kFinetune, with(ft, {"--flow", base.d.file("whole.jsonl")}));
  REQUIRE_MESSAGE(whole.code == 0, whole.err);
  const std::string ck = base.d.file("ck");
  const Run first =
      run(kFinetune, with(ft, {"--flow", base.d.file("parts.jsonl"), "--checkpoint", ck, "--stop-after", "3"}));
  REQUIRE_MESSAGE(first.code == 0, first.err);
  CHECK(jsonl(base.d.file("parts.jsonl")).size() == 2 * 10);  // steps 0 and 2
  const Run rest = run(kFinetune, with(ft, {"--flow", base.d.file("parts.jsonl"), "--checkpoint", ck, "--resume", ck}));
  REQUIRE_MESSAGE(rest.code == 0, rest.err);
  const auto a = jsonl(base.d.file("whole.jsonl")), b = jsonl(base.d.file("parts.jsonl"));
  REQUIRE(a.size() == 4 * 10);  // steps 0, 2, 4, 6
  REQUIRE(b.size() == a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("row " << i << ": " << a[i].dump() << " vs " << b[i].dump());
    CHECK(a[i] == b[i]);
  }
  CHECK(a.back()["bias_term_norm"].get<double>() > 0);
}
