// tests/test_tools_train.cpp — train and finetune run as a user runs them: 10 steps
// straight equal 5 steps + --resume + 5 steps, bit for bit (losses in the metrics files);
// adapter files round-trip through --adapter-in; bad flags and files give exit code 2 and
// one stderr line, and leave no output file behind.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "models/io/safetensors.h"
#include "tests/tool_runner.h"
#include "tests/skip.h"
#include "tests/safetensors_validate.h"

using namespace cg::testing;

namespace {

std::vector<nlohmann::json> rows(const std::string& path) {
  std::vector<nlohmann::json> r;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) r.push_back(nlohmann::json::parse(line));
  return r;
}

// The losses of steps 6..10: from the straight run, and from the resumed run (whose
// metrics have no step-0 row: the validation loss before training is a fresh run's).
void check_resume_equal(const std::string& straight, const std::string& resumed) {
  auto a = rows(straight);
  const auto b = rows(resumed);
  REQUIRE(!a.empty());
  CHECK(a.front()["step"] == 0);
  CHECK_FALSE(a.front().contains("loss"));
  a.erase(a.begin());
  REQUIRE(a.size() == 10);
  REQUIRE(b.size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    INFO("step " << a[i + 5]["step"]);
    CHECK(b[i]["step"] == a[i + 5]["step"]);
    // Bitwise: the JSON writer prints doubles round-trip exactly.
    CHECK(b[i]["loss"].get<double>() == a[i + 5]["loss"].get<double>());
    CHECK(b[i]["grad_norm"].get<double>() == a[i + 5]["grad_norm"].get<double>());
    CHECK(b[i]["lr"].get<double>() == a[i + 5]["lr"].get<double>());
  }
}

const std::vector<std::string> kModelFlags{"--arith",      "add", "--arith-lines", "2000", "--dim",      "32",
                                           "--layers",     "2",   "--heads",       "4",    "--kv-heads", "2",
                                           "--seq",        "32",  "--batch",       "4",    "--warmup",   "3",
                                           "--eval-every", "5",   "--threads",     "2",    "--seed",     "3"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The run with the 10-step schedule stopped after its step-5 save (as if interrupted),
// then resumed to step 10, against the straight run already logged in d/a.jsonl.
void check_stop_and_resume(const std::string& tool, const std::vector<std::string>& flags, const TempDir& d) {
  Run k1 = run(tool, with(flags, {"--steps", "10", "--checkpoint", d.file("ck5"), "--checkpoint-every", "5",
                                  "--stop-after", "5", "--metrics", d.file("k1.jsonl")}));
  REQUIRE_MESSAGE(k1.code == 0, k1.err);
  Run k2 = run(tool, with(flags, {"--steps", "10", "--resume", d.file("ck5"), "--metrics", d.file("k2.jsonl")}));
  REQUIRE_MESSAGE(k2.code == 0, k2.err);
  check_resume_equal(d.file("a.jsonl"), d.file("k2.jsonl"));
}

}  // namespace

TEST_CASE("train: 10 steps straight = 5 steps + resume + 5 steps, bitwise") {
  if (!have_tools()) return;
  TempDir d;
  Run a = run(kTrain,
              with(kModelFlags, {"--steps", "10", "--metrics", d.file("a.jsonl"), "--out", d.file("m.safetensors")}));
  REQUIRE_MESSAGE(a.code == 0, a.err);
  check_stop_and_resume(kTrain, kModelFlags, d);
  // Every file the tool wrote (the model, the checkpoints) passes the independent validator.
  CHECK(cg::testing::safetensors_file_problem(d.file("m.safetensors")) == "");
  CHECK(cg::testing::check_safetensors_under(d.path.string()) >= 2);
}

TEST_CASE("finetune: LinChain 10 steps straight = 5 + resume + 5, bitwise; the adapter file reloads") {
  if (!have_tools()) return;
  TempDir d;
  Run base = run(kTrain, with(kModelFlags, {"--steps", "3", "--out", d.file("base.safetensors")}));
  REQUIRE_MESSAGE(base.code == 0, base.err);
  const std::vector<std::string> ft{"--model",       d.file("base.safetensors"),
                                    "--arith",       "sub",
                                    "--arith-lines", "2000",
                                    "--adapter",     "linchain",
                                    "--rank",        "4",
                                    "--chain",       "3",
                                    "--seq",         "32",
                                    "--batch",       "4",
                                    "--lr",          "1e-2",
                                    "--eval-every",  "5",
                                    "--threads",     "2",
                                    "--seed",        "5"};
  Run a =
      run(kFinetune, with(ft, {"--steps", "10", "--metrics", d.file("a.jsonl"), "--out", d.file("ad.safetensors")}));
  REQUIRE_MESSAGE(a.code == 0, a.err);
  CHECK(a.err.find("trainable parameters") != std::string::npos);
  check_stop_and_resume(kFinetune, ft, d);
  // --adapter-in: the saved adapter describes itself; continuing from it needs no flags.
  Run c = run(kFinetune,
              {"--model", d.file("base.safetensors"), "--adapter-in", d.file("ad.safetensors"), "--arith", "sub",
               "--arith-lines", "2000", "--seq", "32", "--batch", "4", "--steps", "1", "--lr", "0", "--threads", "2"});
  REQUIRE_MESSAGE(c.code == 0, c.err);
  CHECK(c.err.find("linchain r=4 n=3") != std::string::npos);
  CHECK(cg::testing::safetensors_file_problem(d.file("ad.safetensors")) == "");
  CHECK(cg::testing::check_safetensors_under(d.path.string()) >= 3);
}

TEST_CASE("finetune --dropout: straight = 5 + resume + 5, bitwise; another P is refused; the file records P") {
  if (!have_tools()) return;
  TempDir d;
  Run base = run(kTrain, with(kModelFlags, {"--steps", "3", "--out", d.file("base.safetensors")}));
  REQUIRE_MESSAGE(base.code == 0, base.err);
  const std::vector<std::string> ft{"--model",
                                    d.file("base.safetensors"),
                                    "--arith",
                                    "sub",
                                    "--arith-lines",
                                    "2000",
                                    "--adapter",
                                    "linchain",
                                    "--chain-bias",
                                    "--rank",
                                    "4",
                                    "--seq",
                                    "32",
                                    "--batch",
                                    "4",
                                    "--lr",
                                    "1e-2",
                                    "--eval-every",
                                    "5",
                                    "--threads",
                                    "2",
                                    "--seed",
                                    "5",
                                    "--dropout",
                                    "0.1"};
  Run a =
      run(kFinetune, with(ft, {"--steps", "10", "--metrics", d.file("a.jsonl"), "--out", d.file("ad.safetensors")}));
  REQUIRE_MESSAGE(a.code == 0, a.err);
  CHECK(a.err.find("dropout=0.1") != std::string::npos);
  check_stop_and_resume(kFinetune, ft, d);
  // The same run without dropout trains differently (the masks act from step 1 on).
  std::vector<std::string> no_drop(ft.begin(), ft.end() - 2);
  Run z = run(kFinetune, with(no_drop, {"--steps", "10", "--metrics", d.file("z.jsonl")}));
  REQUIRE_MESSAGE(z.code == 0, z.err);
  CHECK(rows(d.file("z.jsonl")).back()["loss"] != rows(d.file("a.jsonl")).back()["loss"]);
  // A resume with another P is another run: refused, naming the adapter entry.
  std::vector<std::string> other(ft.begin(), ft.end() - 1);
  other.push_back("0.2");
  Run r = run(kFinetune, with(other, {"--steps", "10", "--resume", d.file("ck5")}));
  CHECK(r.code == 2);
  CHECK(r.err.find("adapter") != std::string::npos);
  CHECK(r.err.find("dropout") != std::string::npos);
  // The adapter file records P (PEFT's lora_dropout); --adapter-in takes it.
  const auto st = cg::models::read_safetensors(d.file("ad.safetensors"));
  CHECK(std::stod(st.metadata.at("lora_dropout")) == 0.1);
  Run c = run(kFinetune,
              {"--model", d.file("base.safetensors"), "--adapter-in", d.file("ad.safetensors"), "--arith", "sub",
               "--arith-lines", "2000", "--seq", "32", "--batch", "4", "--steps", "1", "--lr", "0", "--threads", "2"});
  REQUIRE_MESSAGE(c.code == 0, c.err);
  CHECK(c.err.find("dropout=0.1") != std::string::npos);
}

TEST_CASE("train and finetune: bad flags and files give exit 2, one line, no output file") {
  if (!have_tools()) return;
  TempDir d;
  check_usage_error(run(kTrain, {"--no-such-flag"}), "train", "no-such-flag");
  check_usage_error(run(kTrain, {"--steps", "2", "--out", d.file("m.safetensors")}), "train", "no training data");
  CHECK_FALSE(fs::exists(d.file("m.safetensors")));
  check_usage_error(run(kTrain, {"--data", d.file("missing.txt"), "--steps", "2"}), "train", "missing.txt");
  check_usage_error(run(kTrain, with(kModelFlags, {"--steps", "2", "--out", d.file("no/such/dir/m.safetensors")})),
                    "train", "cannot write");
  check_usage_error(run(kFinetune, {"--model", d.file("missing.safetensors"), "--arith", "sub"}), "finetune",
                    "missing");
  {
    std::ofstream f(d.file("garbage.safetensors"));
    f << "not a safetensors file";
  }
  check_usage_error(run(kFinetune,
                        {"--model", d.file("garbage.safetensors"), "--arith", "sub", "--out", d.file("ad.st")}),
                    "finetune", "garbage");
  CHECK_FALSE(fs::exists(d.file("ad.st")));
  check_usage_error(run(kFinetune, {"--model", d.file("x"), "--adapter", "dora", "--arith", "sub"}), "finetune",
                    "dora");
}

TEST_CASE("finetune on instruction records (chat, --pack --mask-prompt): 10 steps straight = 5 + resume + 5, bitwise") {
  if (!have_tools()) return;
  TempDir d;
  Run base = run(kTrain, {"--arith",   "add", "--arith-lines", "500",
                          "--dim",     "32",  "--layers",      "2",
                          "--heads",   "4",   "--seq",         "96",
                          "--batch",   "2",   "--steps",       "2",
                          "--threads", "2",   "--out",         d.file("base.safetensors")});
  REQUIRE_MESSAGE(base.code == 0, base.err);
  {
    std::ofstream f(d.file("chat.jsonl"));
    for (int i = 0; i < 40; ++i)
      f << R"({"messages": [{"role": "user", "content": ")" << i << "+" << i % 7
        << R"("}, {"role": "assistant", "content": ")" << i + i % 7 << "\"}]}\n";
  }
  const std::vector<std::string> ft{"--model",
                                    d.file("base.safetensors"),
                                    "--data",
                                    d.file("chat.jsonl"),
                                    "--chat-template",
                                    "chatml",
                                    "--cutoff",
                                    "64",
                                    "--pack",
                                    "--mask-prompt",
                                    "--val-frac",
                                    "0.1",
                                    "--adapter",
                                    "lora",
                                    "--rank",
                                    "4",
                                    "--batch",
                                    "2",
                                    "--lr",
                                    "1e-2",
                                    "--eval-every",
                                    "5",
                                    "--threads",
                                    "2",
                                    "--seed",
                                    "5"};
  Run a = run(kFinetune, with(ft, {"--steps", "10", "--metrics", d.file("a.jsonl")}));
  REQUIRE_MESSAGE(a.code == 0, a.err);
  CHECK(a.err.find("36 training samples in") != std::string::npos);
  CHECK(a.err.find("(packed)") != std::string::npos);
  check_stop_and_resume(kFinetune, ft, d);
  // Hostile records: one line, exit 2.
  {
    std::ofstream f(d.file("bad.json"));
    f << R"([{"instruction": "i", "output": 7}])";
  }
  check_usage_error(run(kFinetune,
                        {"--model", d.file("base.safetensors"), "--data", d.file("bad.json"), "--steps", "1"}),
                    "finetune", "not a string");
  check_usage_error(run(kFinetune, {"--model", d.file("base.safetensors"), "--data", d.file("chat.jsonl"), "--cutoff",
                                    "200", "--steps", "1"}),
                    "finetune", "context");
}
