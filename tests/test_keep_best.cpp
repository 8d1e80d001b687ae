// tests/test_keep_best.cpp — finetune's evaluation during training: --keep-best keeps the
// adapter of the best evaluation (byte-identical to a run stopped at that step), --patience
// stops a run whose validation loss rises, --resume keeps the best-so-far record, and
// --eval-task logs task accuracy beside the validation loss.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/skip.h"
#include "tests/tool_runner.h"

namespace fs = std::filesystem;
using namespace cg::testing;

namespace {

const std::string kModel = "../shared/data/stories260K/stories260K.bin";
const std::string kTok = "../shared/data/stories260K/tok512.bin";

// lr 0.01 on this text: the validation loss is lowest after 2 steps and rises after that.
std::vector<std::string> args(std::vector<std::string> extra) {
  std::vector<std::string> a = {
      "--model",        kModel, "--tokenizer", kTok,   "--data",       "tests/data/tinystories_sample.txt",
      "--seq",          "32",   "--batch",     "4",    "--steps",      "40",
      "--rank",         "4",    "--lr",        "0.01", "--eval-every", "2",
      "--eval-batches", "4",    "--val-frac",  "0.2",  "--threads",    "1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

TEST_CASE(
    "finetune --keep-best / --patience: the best step is kept, a rising val loss stops the run, resume keeps the record") {
  if (!fs::exists(kFinetune) || !fs::exists(kModel))
    return (void)skip(SkipKind::Data, "build/bin/finetune or " + kModel + " not found");
  TempDir d;
  const std::string out = d.file("a.safetensors"), best = d.file("a.best.safetensors"), metrics = d.file("m.jsonl");
  Run r = run(kFinetune, args({"--keep-best", "val_loss", "--patience", "2", "--out", out, "--metrics", metrics}));
  REQUIRE(r.code == 0);
  const auto s = nlohmann::json::parse(r.out);
  // The best step is the evaluated step (after training) with the lowest val loss in the metrics.
  int64_t argmin = -1, evals = 0, last_step = 0;
  double lowest = 1e30;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    last_step = row.at("step").get<int64_t>();
    if (!row.contains("val_loss") || last_step == 0) continue;
    ++evals;
    if (row.at("val_loss").get<double>() < lowest) lowest = row.at("val_loss").get<double>(), argmin = last_step;
  }
  MESSAGE("summary: " << r.out);
  CHECK(s.at("best_step").get<int64_t>() == argmin);
  CHECK(s.at("best_value").get<double>() == doctest::Approx(lowest));
  CHECK(s.at("best_metric") == "val_loss");
  // Patience 2: exactly two evaluations after the best one, then the run stopped early.
  CHECK(s.at("stopped_early").get<bool>());
  CHECK(s.at("steps").get<int64_t>() == argmin + 2 * 2);
  CHECK(s.at("steps").get<int64_t>() < 40);
  CHECK(last_step == s.at("steps").get<int64_t>());
  CHECK(r.err.find("stopped early at step") != std::string::npos);
  // The best file is the adapter as it was at that step: a run stopped there writes the same bytes.
  const std::string at_best = d.file("at_best.safetensors");
  REQUIRE(run(kFinetune, args({"--stop-after", std::to_string(argmin), "--out", at_best})).code == 0);
  CHECK(slurp(best) == slurp(at_best));
  CHECK(slurp(out) != slurp(best));

  // Interrupted after the best step and resumed: the same record, the same best file, the same stop.
  const std::string out2 = d.file("b.safetensors"), best2 = d.file("b.best.safetensors"), ck = d.file("ck");
  const auto flags2 = args({"--keep-best", "val_loss", "--patience", "2", "--out", out2, "--checkpoint", ck});
  auto first = flags2;
  first.insert(first.end(), {"--stop-after", std::to_string(argmin + 2)});
  REQUIRE(run(kFinetune, first).code == 0);
  auto resumed = flags2;
  resumed.insert(resumed.end(), {"--resume", ck});
  r = run(kFinetune, resumed);
  REQUIRE(r.code == 0);
  const auto s2 = nlohmann::json::parse(r.out);
  CHECK(s2.at("best_step").get<int64_t>() == argmin);
  CHECK(s2.at("best_value").get<double>() == s.at("best_value").get<double>());
  CHECK(s2.at("steps").get<int64_t>() == s.at("steps").get<int64_t>());
  CHECK(slurp(best2) == slurp(best));
  CHECK(slurp(out2) == slurp(out));

  // --eval-task: accuracy beside the val loss in the metrics rows and the progress line.
  const std::string task = d.file("task.json"), m3 = d.file("m3.jsonl");
  std::ofstream(task)
      << R"([{"instruction": "Is the sky blue?\n\nAnswer format: true/false", "input": "", "output": "", "answer": "true"},
    {"instruction": "Is ice hot?\n\nAnswer format: true/false", "input": "", "output": "", "answer": "false"}])";
  for (const char* mode : {"likelihood", "generate"}) {
    r = run(kFinetune, args({"--stop-after", "4", "--eval-task", task, "--eval-mode", mode, "--metrics", m3,
                             "--keep-best", "accuracy", "--out", d.file("c.safetensors")}));
    REQUIRE(r.code == 0);
    CHECK(r.err.find("  accuracy ") != std::string::npos);
    std::ifstream m(m3);
    int with_acc = 0;
    for (std::string line; std::getline(m, line);) with_acc += nlohmann::json::parse(line).contains("accuracy");
    CHECK(with_acc == 3);  // steps 0, 2, 4
    CHECK(nlohmann::json::parse(r.out).contains("task_accuracy"));
    CHECK(fs::exists(d.file("c.best.safetensors")));
  }
  // Flag combinations that cannot work: one line, exit 2, before anything is loaded.
  check_usage_error(run(kFinetune, args({"--keep-best", "val_loss"})), "finetune", "--out");
  check_usage_error(run(kFinetune, args({"--keep-best", "accuracy", "--out", out})), "finetune", "--eval-task");
  check_usage_error(run(kFinetune, args({"--patience", "2"})), "finetune", "--keep-best");
  check_usage_error(run(kFinetune, args({"--keep-best", "loss", "--out", out})), "finetune", "loss");
  check_usage_error(run(kFinetune, args({"--eval-task", d.file("none.json")})), "finetune", "none.json");
  check_usage_error(run(kFinetune, args({"--eval-limit", "5"})), "finetune", "--eval-task");
}
