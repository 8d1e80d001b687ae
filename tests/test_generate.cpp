// tests/test_generate.cpp — the generate and evaluate binaries, run as a user runs them
// (from the repo root, build/bin/...): greedy output against the PyTorch reference's
// golden samples, sampling determinism, .safetensors input, evaluate's loss against the
// golden loss, task scoring, and every bad-input case (exit code 2 and one stderr line).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "models/io/hf_llama.h"
#include "models/io/llama2c.h"
#include "models/text/tokenizer.h"
#include "tests/tool_runner.h"
#include "tests/skip.h"

namespace fs = std::filesystem;
using namespace cg::testing;

namespace {

const std::string kModel = "../shared/data/stories260K/stories260K.bin";
const std::string kTok = "../shared/data/stories260K/tok512.bin";
const std::string kGenerate = "build/bin/generate";
const std::string kEvaluate = "build/bin/evaluate";

bool have_all() {
  if (!fs::exists(kGenerate) || !fs::exists(kEvaluate)) {
    return cg::testing::skip(cg::testing::SkipKind::Data,
                             kGenerate + " / " + kEvaluate +
                                 " not found (run the tests from the repo root after make)");
  }
  if (!fs::exists(kModel) || !fs::exists(kTok)) {
    return cg::testing::skip(cg::testing::SkipKind::Data, kModel + " not found (../shared/data absent)");
  }
  return true;
}

}  // namespace

TEST_CASE("generate: greedy output equals the PyTorch reference (llama2.c's published sample)") {
  if (!have_all()) return;
  Run r = run(kGenerate, {"--model", kModel, "--tokenizer", kTok, "--temperature", "0", "--steps", "256"});
  REQUIRE(r.code == 0);
  const std::string golden = slurp("tests/golden/stories260K_greedy.txt");
  CHECK(r.out == golden);
  CHECK(golden.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
                     0) == 0);
  CHECK(r.err.find("achieved tok/s: ") != std::string::npos);
  MESSAGE("generate stderr: " << r.err);

  r = run(kGenerate, {"--model", kModel, "--tokenizer", kTok, "--temperature", "0", "--prompt",
                      "Once upon a time, there was a little"});
  REQUIRE(r.code == 0);
  CHECK(r.out == slurp("tests/golden/stories260K_greedy_prompt.txt"));
  r = run(kGenerate, {"--model", kModel, "--tokenizer", kTok, "--temperature", "0", "--prompt", "Sam had a red kite",
                      "--steps", "120"});
  REQUIRE(r.code == 0);
  CHECK(r.out == slurp("tests/golden/stories260K_greedy_kite.txt"));
}

TEST_CASE("generate: sampling is deterministic for a seed; .safetensors input gives the same text") {
  if (!have_all()) return;
  auto sample = [&](const std::string& model, const std::string& seed) {
    return run(kGenerate, {"--model", model, "--tokenizer", kTok, "--temperature", "1.0", "--top-p", "0.9", "--seed",
                           seed, "--steps", "100", "--threads", "1"});
  };
  const Run a = sample(kModel, "42"), b = sample(kModel, "42"), c = sample(kModel, "43");
  REQUIRE(a.code == 0);
  CHECK(a.out == b.out);
  CHECK(a.out != c.out);
  CHECK(a.out.size() > 50);

  TempDir d;
  const std::string st = d.file("stories260K.safetensors");
  cg::models::write_hf_llama(st, cg::models::read_llama2c(kModel));
  const Run s = sample(st, "42");
  REQUIRE(s.code == 0);
  CHECK(s.out == a.out);
  const Run g = run(kGenerate, {"--model", st, "--tokenizer", kTok, "--temperature", "0"});
  CHECK(g.out == slurp("tests/golden/stories260K_greedy.txt"));
}

TEST_CASE("evaluate: text loss equals the PyTorch reference's (1e-4); tasks give an accuracy") {
  if (!have_all()) return;
  const auto golden = nlohmann::json::parse(slurp("tests/golden/stories260K_eval_tinystories_sample.json"));
  Run r =
      run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--text", "tests/data/tinystories_sample.txt", "--json"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  MESSAGE("evaluate: " << r.out << "reference: " << golden.dump());
  CHECK(std::fabs(j.at("loss").get<double>() - golden.at("loss").get<double>()) <= 1e-4);
  CHECK(j.at("tokens").get<int64_t>() == golden.at("tokens").get<int64_t>());
  CHECK(j.at("ppl").get<double>() == doctest::Approx(std::exp(j.at("loss").get<double>())));
  r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--text", "tests/data/tinystories_sample.txt"});
  REQUIRE(r.code == 0);
  CHECK(r.out.rfind("loss ", 0) == 0);
  CHECK(r.out.find(" nats/token, ppl ") != std::string::npos);

  // A two-item task the model gets right either way it reads it: the answers are scored as
  // text, so check the arithmetic of the report rather than the model's skill.
  TempDir d;
  const std::string task = d.file("task.json");
  std::ofstream(task) << R"([
    {"instruction": "Is the sky blue?\n\nAnswer format: true/false", "input": "", "output": "the correct answer is true", "answer": "true"},
    {"instruction": "Pick one. Option1: a Option2: b Answer format: option1/option2", "input": "", "output": "", "answer": "option2"},
    {"instruction": "Which?\n\nAnswer format: answer1/answer2/answer3", "input": "some context", "output": "", "answer": "answer3"}
  ])";
  r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", task, "--json"});
  REQUIRE(r.code == 0);
  auto t = nlohmann::json::parse(r.out);
  CHECK(t.at("items").get<int64_t>() == 3);
  CHECK(t.at("accuracy").get<double>() == doctest::Approx(t.at("correct").get<double>() / 3.0));
  // Baselines: chance = mean of 1/#choices = (1/2 + 1/2 + 1/3)/3; three different answers,
  // so the majority answer (ties: alphabetically first) covers 1 of 3.
  CHECK(t.at("chance").get<double>() == doctest::Approx((0.5 + 0.5 + 1.0 / 3.0) / 3.0));
  CHECK(t.at("majority").get<double>() == doctest::Approx(1.0 / 3.0));
  CHECK(t.at("majority_answer") == "answer3");
  r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", task, "--limit", "2", "--json"});
  REQUIRE(r.code == 0);
  CHECK(nlohmann::json::parse(r.out).at("items").get<int64_t>() == 2);
  const std::string boolq = "../shared/data/llm_adapters/dataset/boolq/test.json";
  if (fs::exists(boolq)) {
    r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", boolq, "--limit", "4"});
    REQUIRE(r.code == 0);
    CHECK(r.out.rfind("accuracy ", 0) == 0);
    CHECK(r.out.find("/4); chance 0.5000, majority ") != std::string::npos);
  }
}

TEST_CASE("generate / evaluate: bad input gives exit code 2 and one line on stderr") {
  if (!have_all()) return;
  TempDir d;
  // A truncated checkpoint and a truncated tokenizer.
  const std::string bin = slurp(kModel), tok = slurp(kTok);
  std::ofstream(d.file("trunc.bin"), std::ios::binary) << bin.substr(0, bin.size() / 2);
  std::ofstream(d.file("header.bin"), std::ios::binary) << bin.substr(0, 20);
  std::ofstream(d.file("trunc_tok.bin"), std::ios::binary) << tok.substr(0, tok.size() - 7);
  std::ofstream(d.file("garbage.safetensors"), std::ios::binary) << "\xff\xff\xff\xff\xff\xff\xff\x7f{not json";
  // A valid tokenizer with another vocab size (the first 300 pieces of tok512).
  {
    auto full = cg::models::BpeTokenizer::read(kTok, 512);
    std::vector<std::string> pieces;
    std::vector<float> scores;
    for (int i = 0; i < 300; ++i) {
      pieces.push_back(full.piece(i));
      scores.push_back(full.score(i));
    }
    const auto bytes = cg::models::BpeTokenizer(pieces, scores, full.max_token_length()).serialize();
    std::ofstream(d.file("tok300.bin"), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::ofstream(d.file("bad.json")) << "[{\"instruction\": \"x\"";
  std::ofstream(d.file("nochoice.json"))
      << R"([{"instruction": "What is 2+2?", "input": "", "output": "", "answer": "4"}])";
  std::ofstream(d.file("text.txt")) << "Once upon a time.";

  const std::vector<std::string> ok_tok = {"--tokenizer", kTok};
  auto gen = [&](std::vector<std::string> a) { return run(kGenerate, a); };
  check_usage_error(gen({"--model", d.file("missing.bin"), "--tokenizer", kTok}), "generate", "missing.bin");
  check_usage_error(gen({"--model", d.file("trunc.bin"), "--tokenizer", kTok}), "generate", "trunc.bin");
  check_usage_error(gen({"--model", d.file("header.bin"), "--tokenizer", kTok}), "generate", "header.bin");
  check_usage_error(gen({"--model", d.file("garbage.safetensors"), "--tokenizer", kTok}), "generate",
                    "garbage.safetensors");
  check_usage_error(gen({"--model", kModel, "--tokenizer", d.file("trunc_tok.bin")}), "generate", "trunc_tok.bin");
  check_usage_error(gen({"--model", kModel, "--tokenizer", d.file("tok300.bin")}), "generate", "512");
  check_usage_error(gen({"--model", kModel, "--tokenizer", d.file("nope.bin")}), "generate", "nope.bin");
  check_usage_error(gen({"--model", kModel, "--tokenizer", kTok, "--bogus"}), "generate", "--bogus");
  check_usage_error(gen({"--tokenizer", kTok}), "generate", "--model");
  check_usage_error(gen({"--model", kModel, "--tokenizer", kTok, "--device", "tpu"}), "generate", "tpu");
  check_usage_error(gen({"--model", kModel, "--tokenizer", kTok, "--temperature", "-1"}), "generate", "temperature");
  check_usage_error(gen({"--model", kModel, "--tokenizer", kTok, "--steps", "ten"}), "generate", "ten");
  check_usage_error(gen({"--model", d.file("text.txt"), "--tokenizer", kTok}), "generate", "text.txt");

  auto ev = [&](std::vector<std::string> a) { return run(kEvaluate, a); };
  check_usage_error(ev({"--model", kModel, "--tokenizer", kTok, "--text", d.file("missing.txt")}), "evaluate",
                    "missing.txt");
  check_usage_error(ev({"--model", d.file("trunc.bin"), "--tokenizer", kTok, "--text", d.file("text.txt")}), "evaluate",
                    "trunc.bin");
  check_usage_error(ev({"--model", kModel, "--tokenizer", d.file("tok300.bin"), "--text", d.file("text.txt")}),
                    "evaluate", "512");
  check_usage_error(ev({"--model", kModel, "--tokenizer", kTok}), "evaluate", "--text");
  check_usage_error(ev({"--model", kModel, "--tokenizer", kTok, "--task", d.file("bad.json")}), "evaluate", "bad.json");
  check_usage_error(ev({"--model", kModel, "--tokenizer", kTok, "--task", d.file("nochoice.json")}), "evaluate",
                    "Answer format");
  check_usage_error(ev({"--model", kModel, "--tokenizer", kTok, "--task", d.file("missing.json")}), "evaluate",
                    "missing.json");
  check_usage_error(ev({"--model", kModel, "--tokenizer", kTok, "--text", d.file("text.txt"), "--frobnicate"}),
                    "evaluate", "--frobnicate");
}
