// tests/test_recipes.cpp — finetune --config and the recipes/ folder: every recipe's keys are
// finetune flags with valid values (each is run up to reading its model), the short recipe
// trains to the end, flags on the command line win over the file, and a bad key is one line
// with a suggestion.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/skip.h"
#include "tests/tool_runner.h"

namespace fs = std::filesystem;
using namespace cg::testing;

namespace {}

TEST_CASE("recipes: every recipe parses and validates; the short one runs; the command line overrides the file") {
  if (!fs::exists(kFinetune) || !fs::exists("../shared/data/llm_adapters/dataset/boolq/test.json") ||
      !fs::exists("../shared/data/stories260K/stories260K.bin"))
    return (void)skip(SkipKind::Data, "build/bin/finetune or ../shared/data not found");
  TempDir d;
  const std::vector<std::string> outputs = {"--out", d.file("a.safetensors"), "--summary", d.file("s.json")};
  int recipes = 0;
  for (const auto& e : fs::directory_iterator("recipes")) {
    if (e.path().extension() != ".json") continue;
    ++recipes;
    CAPTURE(e.path().string());
    const auto j = nlohmann::json::parse(slurp(e.path()));
    REQUIRE(j.is_object());
    if (e.path().filename() == "short-stories260k.json") continue;
    // Everything is checked before the model is read, so a missing model is the first error.
    std::vector<std::string> a = {"--config",  e.path().string(), "--model",      d.file("no-model.gguf"),
                                  "--metrics", d.file("m.jsonl"), "--checkpoint", d.file("ck")};
    a.insert(a.end(), outputs.begin(), outputs.end());
    check_usage_error(run(kFinetune, a), "finetune", "no-model.gguf");
    CHECK(j.at("rank") == 16);
    CHECK(j.at("alpha") == 32);
    CHECK(j.at("lr").get<double>() == 3e-4);
    CHECK(j.at("targets") == "q,k,v,up,down");
    CHECK(j.at("batch").get<int>() * j.at("accum").get<int>() == 16);
  }
  CHECK(recipes == 9);
  std::vector<std::string> a = {"--config", "recipes/short-stories260k.json"};
  a.insert(a.end(), outputs.begin(), outputs.end());
  Run r = run(kFinetune, a);
  REQUIRE(r.code == 0);
  auto s = nlohmann::json::parse(r.out);
  CHECK(s.at("steps") == 40);
  CHECK(s.at("rank") == 16);
  CHECK(s.at("best_metric") == "val_loss");
  a.insert(a.end(), {"--steps", "4", "--rank", "2"});  // the command line wins
  r = run(kFinetune, a);
  REQUIRE(r.code == 0);
  s = nlohmann::json::parse(r.out);
  CHECK(s.at("steps") == 4);
  CHECK(s.at("rank") == 2);

  std::ofstream(d.file("typo.json")) << R"({"model": "x", "lrr": 0.1})";
  check_usage_error(run(kFinetune, {"--config", d.file("typo.json")}), "finetune", "did you mean \"lr\"");
  std::ofstream(d.file("list.json")) << R"(["--lr", "0.1"])";
  check_usage_error(run(kFinetune, {"--config", d.file("list.json")}), "finetune", "JSON object");
  std::ofstream(d.file("nested.json")) << R"({"model": "x", "lr": [1]})";
  check_usage_error(run(kFinetune, {"--config", d.file("nested.json")}), "finetune", "\"lr\"");
  std::ofstream(d.file("bad.json")) << R"({"model": )";
  check_usage_error(run(kFinetune, {"--config", d.file("bad.json")}), "finetune", "bad.json");
  check_usage_error(run(kFinetune, {"--config", d.file("missing.json")}), "finetune", "missing.json");
}
