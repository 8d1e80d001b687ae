// tests/test_sgd_reference.cpp — finetune with plain SGD (constant rate, no warmup, no clip,
// no weight decay) against an independent PyTorch float64 reference, step for step:
// tests/reference/llama_ref.py sgd wrote the initial LoRA adapter (non-zero A and B) and the
// loss before each of its 10 updates on stories260K; the built finetune starts from that
// adapter (--adapter-in) on the same text (--text) and must print the same losses.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/skip.h"
#include "tests/tolerances.h"
#include "tests/tool_runner.h"

using namespace cg::testing;

TEST_CASE("finetune --optimizer sgd --schedule constant matches PyTorch plain SGD step for step") {
  const std::string model = "../shared/data/stories260K/stories260K.bin";
  const std::string tok = "../shared/data/stories260K/tok512.bin";
  if (!have_file("build/bin/finetune") || !have_file(model) || !have_file(tok)) return;
  const auto golden = nlohmann::json::parse(slurp("tests/golden/sgd_lora_losses.json"));
  const auto want = golden["losses"].get<std::vector<double>>();
  REQUIRE(want.size() == 10);
  TempDir d;
  for (const char* threads : {"1", "2"}) {
    INFO("threads " << threads);
    const Run r = run("build/bin/finetune", {"--model",        model,
                                             "--tokenizer",    tok,
                                             "--text",         "tests/golden/sgd_text.txt",
                                             "--adapter-in",   "tests/golden/sgd_lora_init.safetensors",
                                             "--optimizer",    "sgd",
                                             "--schedule",     "constant",
                                             "--lr",           "0.05",
                                             "--warmup",       "0",
                                             "--clip",         "0",
                                             "--weight-decay", "0",
                                             "--steps",        "10",
                                             "--batch",        "1",
                                             "--threads",      threads,
                                             "--metrics",      d.file("m.jsonl")});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    std::vector<double> got;
    std::ifstream f(d.file("m.jsonl"));
    for (std::string line; std::getline(f, line);) {
      const auto row = nlohmann::json::parse(line);
      if (row.contains("loss")) got.push_back(row["loss"].get<double>());
    }
    REQUIRE(got.size() == want.size());
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / std::abs(want[i]));
    MESSAGE("max relative loss difference over 10 SGD steps: " << worst);
    CHECK(worst < tol::kToolSgdLossesRel);
    // The losses fall (lr 0.05 on a 36-token text): a reference that did not train would not match.
    CHECK(want.back() < want.front() - 0.03);
  }
}
