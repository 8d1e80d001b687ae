// tests/test_task_generate.cpp — generation-mode task scoring: LLM-Adapters' answer
// extraction, the HellaSwag text reader, batched greedy decoding against one item at a time
// (token for token), and evaluate --mode generate / --items-out as a user runs them.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "models/io/llama2c.h"
#include "models/llama/generation.h"
#include "models/train/task_generate.h"
#include "tests/skip.h"
#include "tests/tool_runner.h"

namespace fs = std::filesystem;
using namespace cg;
using namespace cg::models;
using cg::testing::run;
using cg::testing::TempDir;

namespace {

const std::string kModel = "../shared/data/stories260K/stories260K.bin";
const std::string kTok = "../shared/data/stories260K/tok512.bin";
const std::string kEvaluate = "build/bin/evaluate";

bool have_model() {
  if (!fs::exists(kModel) || !fs::exists(kTok))
    return cg::testing::skip(cg::testing::SkipKind::Data, kModel + " not found (../shared/data absent)");
  return true;
}

TaskItem item(std::vector<std::string> choices, std::string answer) {
  TaskItem t;
  t.instruction = "q";
  t.choices = std::move(choices);
  t.answer = std::move(answer);
  return t;
}

// A two-item multiple-choice task (every item has choices, so the likelihood mode reads it).
std::string mc_task(const TempDir& d) {
  const std::string p = d.file("mc.json");
  std::ofstream(p) << R"([
    {"instruction": "Is the sky blue?\n\nAnswer format: true/false", "input": "", "output": "", "answer": "true"},
    {"instruction": "Which?\n\nAnswer format: answer1/answer2", "input": "", "output": "", "answer": "answer2"}])";
  return p;
}

}  // namespace

TEST_CASE("extract_answer: the first LLM-Adapters pattern in the reply, the last number for arithmetic") {
  const TaskItem boolq = item({"true", "false"}, "false");
  CHECK(extract_answer(boolq, " the correct answer is false") == "false");
  CHECK(extract_answer(boolq, "false, no wait, true") == "false");
  CHECK(extract_answer(boolq, "It is true that it is false") == "true");
  CHECK(extract_answer(boolq, "True") == "");        // case-sensitive, as re.findall(r'true|false')
  CHECK(extract_answer(boolq, "untrue") == "true");  // no word boundaries either
  CHECK(answer_correct(boolq, "false"));
  CHECK_FALSE(answer_correct(boolq, ""));
  // ARC lists four choices here, but LLM-Adapters searches answer1..answer5 for every such set.
  const TaskItem arc = item({"answer1", "answer2", "answer3", "answer4"}, "answer2");
  CHECK(extract_answer(arc, "answer5 or answer2") == "answer5");
  CHECK(extract_answer(arc, "the correct answer is Answer2") == "");
  CHECK(extract_answer(item({"solution1", "solution2"}, "solution1"), "solution3 solution2") == "solution2");
  CHECK(extract_answer(item({"option1", "option2"}, "option1"), "option3, option1") == "option1");
  CHECK(extract_answer(item({"ending1", "ending2", "ending3", "ending4"}, "ending4"), "ending5 ending4") == "ending4");
  CHECK(extract_answer(item({"yes", "no"}, "no"), "I say no") == "no");  // other choices: the item's own
  // Arithmetic: commas dropped, the last match of -?\d+\.?\d*, within 0.001 of the gold answer.
  const TaskItem num = item({}, "1234.5");
  CHECK(extract_answer(num, "3 apples and 1,234.5 pears") == "1234.5");
  CHECK(extract_answer(num, "so -2 then 7.") == "7.");
  CHECK(answer_correct(num, "1234.5004"));
  CHECK_FALSE(answer_correct(num, "1234.502"));
  CHECK(extract_answer(num, "no number") == "");
  // AQuA: one letter A–E, the first of them anywhere (so "Answer" gives A, as in evaluate.py).
  const TaskItem aqua = item({}, "C");
  CHECK(extract_answer(aqua, "(C) 12") == "C");
  CHECK(extract_answer(aqua, "Answer: C") == "A");
}

TEST_CASE("extract_answer equals Python re on LLM-Adapters' patterns (tests/golden/extract_answer.json)") {
  std::ifstream f("tests/golden/extract_answer.json");
  REQUIRE(f.good());
  const auto rows = nlohmann::json::parse(f);
  REQUIRE(rows.size() >= 100);
  for (const auto& r : rows) {
    TaskItem t = item(r.at("choices").get<std::vector<std::string>>(), r.at("gold").get<std::string>());
    const std::string reply = r.at("reply").get<std::string>();
    CAPTURE(r.dump());
    const std::string got = extract_answer(t, reply);
    if (r.at("extracted").is_string()) {
      CHECK(got == r.at("extracted").get<std::string>());
    } else if (r.at("number").is_null()) {
      CHECK(got.empty());
    } else {
      REQUIRE_FALSE(got.empty());
      CHECK(std::strtod(got.c_str(), nullptr) == r.at("number").get<double>());
    }
  }
}

TEST_CASE("parse_hellaswag_text: 6-line records become LLM-Adapters' hellaswag items; damage is refused") {
  const auto items = parse_hellaswag_text("Roof: A man is on a roof. he\n3\nis a.\nis b.\nis c.\nis d.\n", "hs");
  REQUIRE(items.size() == 1);
  CHECK(items[0].answer == "ending4");
  CHECK(items[0].choices == std::vector<std::string>{"ending1", "ending2", "ending3", "ending4"});
  CHECK(
      items[0].instruction ==
      "Please choose the correct ending to complete the given sentence: Roof: A man is on a roof. he\n\n"
      "Ending1: is a. Ending2: is b. Ending3: is c. Ending4: is d.\n\nAnswer format: ending1/ending2/ending3/ending4");
  CHECK_THROWS_AS(parse_hellaswag_text("ctx\n7\na\nb\nc\nd\n", "hs"), FormatError);
  CHECK_THROWS_AS(parse_hellaswag_text("ctx\n1\na\nb\n", "hs"), FormatError);
  // Items without "Answer format:" are kept for generation and refused for likelihood.
  const std::string arith = R"([{"instruction": "What is 2+2?", "input": "", "output": "", "answer": "4"}])";
  CHECK(parse_task(arith, "a", false).at(0).choices.empty());
  CHECK_THROWS_AS(parse_task(arith, "a", true), FormatError);
}

TEST_CASE("greedy_batch: a batch of prompts decodes token for token as each prompt alone") {
  if (!have_model()) return;
  auto model = LlamaModel::from_checkpoint(read_llama2c(kModel));
  Rng rng(7);
  std::vector<std::vector<int>> prompts(5);
  for (auto& p : prompts) {
    p.push_back(1);  // BOS
    for (int t = 0; t < 11; ++t) p.push_back(3 + static_cast<int>(rng.next_u64() % 500));
  }
  const auto batched = greedy_batch(*model, prompts, 24, {});
  REQUIRE(batched.size() == prompts.size());
  for (size_t b = 0; b < prompts.size(); ++b) {
    const auto alone = greedy_batch(*model, {prompts[b]}, 24, {});
    CHECK(batched[b].new_tokens == alone[0].new_tokens);
    CHECK(batched[b].new_tokens.size() == 24);
  }
  // A stop token ends its row there (not kept); the other rows go on.
  const int stop = batched[0].new_tokens[3];
  const auto stopped = greedy_batch(*model, prompts, 24, {stop});
  const auto& first = batched[0].new_tokens;
  CHECK(stopped[0].stopped);
  CHECK(stopped[0].new_tokens ==
        std::vector<int>(first.begin(), first.begin() + (std::find(first.begin(), first.end(), stop) - first.begin())));
  CHECK_THROWS_AS(greedy_batch(*model, {prompts[0], {1, 2}}, 4, {}), ShapeError);
  CHECK_THROWS_AS(greedy_batch(*model, {prompts[0]}, 512, {}), ShapeError);
}

TEST_CASE("score_task_generate: batching items changes no reply; the baselines are the likelihood mode's") {
  if (!have_model()) return;
  auto model = LlamaModel::from_checkpoint(read_llama2c(kModel));
  const auto tok = BpeTokenizer::read(kTok, 512);
  std::vector<TaskItem> items;
  for (const char* q : {"Is the sky blue?", "Is the sun hot?", "Is ice cold?", "Is the sea wet?", "Can a cat fly?",
                        "Is a dog an animal?"})
    items.push_back(item({"true", "false"}, items.size() % 3 ? "true" : "false")),
        items.back().instruction = std::string(q) + "\n\nAnswer format: true/false";
  auto replies = [&](int64_t batch, TaskScore* score) {
    GenerateEvalOptions o;
    o.max_new = 16;
    o.batch = batch;
    std::vector<GeneratedItem> out;
    *score = score_task_generate(*model, tok, items, o, [&](const GeneratedItem& g) { out.push_back(g); });
    return out;
  };
  TaskScore s1, s8;
  const auto one = replies(1, &s1), eight = replies(8, &s8);
  REQUIRE(one.size() == items.size());
  REQUIRE(eight.size() == items.size());
  std::map<int64_t, int> lengths;
  for (size_t i = 0; i < items.size(); ++i) {
    CHECK(one[i].index == i);
    CHECK(one[i].reply == eight[i].reply);
    CHECK(one[i].extracted == eight[i].extracted);
    CHECK(one[i].prompt == alpaca_prompt(items[i]));
    ++lengths[one[i].prompt_tokens];
  }
  CHECK(lengths.size() < items.size());  // some items did share a forward
  CHECK(s1.correct == s8.correct);
  CHECK(s8.items == 6);
  CHECK(s8.chance == doctest::Approx(0.5));
  CHECK(s8.majority == doctest::Approx(4.0 / 6.0));
  CHECK(s8.majority_answer == "true");
}

TEST_CASE("evaluate --mode generate: JSON accuracy, --items-out lines, HellaSwag text, bad flags") {
  if (!have_model() || !fs::exists(kEvaluate)) return;
  TempDir d;
  const std::string task = d.file("task.json"), items = d.file("items.jsonl");
  std::ofstream(task) << R"([
    {"instruction": "Is the sky blue?\n\nAnswer format: true/false", "input": "", "output": "", "answer": "true"},
    {"instruction": "What is 2+2?", "input": "", "output": "", "answer": "4"},
    {"instruction": "Which?\n\nAnswer format: answer1/answer2", "input": "some context", "output": "", "answer": "answer2"}
  ])";
  auto r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", task, "--mode", "generate", "--max-new",
                           "12", "--json", "--items-out", items});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j.at("mode") == "generate");
  CHECK(j.at("items").get<int64_t>() == 3);
  CHECK(j.at("accuracy").get<double>() == doctest::Approx(j.at("correct").get<double>() / 3.0));
  CHECK(j.at("items_per_second").get<double>() > 0);
  std::ifstream in(items);
  std::string line;
  int n = 0, correct = 0;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line);
    CHECK(row.at("index").get<int>() == n);
    CHECK(row.at("prompt").get<std::string>().rfind("Below is an instruction", 0) == 0);
    CHECK(row.at("prompt").get<std::string>().find("### Response:\n") != std::string::npos);
    CHECK(row.at("new_tokens").get<int>() <= 12);
    CHECK(row.contains("generation"));
    CHECK(row.contains("extracted"));
    correct += row.at("correct").get<bool>();
    ++n;
  }
  CHECK(n == 3);
  CHECK(correct == j.at("correct").get<int>());
  r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", task, "--mode", "generate", "--max-new", "4"});
  REQUIRE(r.code == 0);
  CHECK(r.out.rfind("accuracy ", 0) == 0);
  CHECK(r.out.find("generate, ") != std::string::npos);
  CHECK(r.out.find(" items/s") != std::string::npos);

  // The likelihood mode writes its items too: each choice's log-probability and the pick.
  r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", mc_task(d), "--items-out", items});
  REQUIRE(r.code == 0);
  {
    std::ifstream li(items);
    int rows = 0;
    for (std::string l; std::getline(li, l); ++rows) {
      const auto row = nlohmann::json::parse(l);
      CHECK(row.at("logprob").size() == row.at("choices").size());
      CHECK(row.at("prompt").get<std::string>().find("the correct answer is ") != std::string::npos);
    }
    CHECK(rows == 2);
  }

  const std::string hs = d.file("hs.txt");
  std::ofstream(hs) << "Roof: A man is on a roof. he\n3\nis a.\nis b.\nis c.\nis d.\n"
                       "Cats: A cat sits. it\n0\npurrs.\nbarks.\nflies.\nswims.\n";
  for (const char* mode : {"likelihood", "generate"}) {
    r = run(kEvaluate, {"--model", kModel, "--tokenizer", kTok, "--task", hs, "--mode", mode, "--json"});
    REQUIRE(r.code == 0);
    CHECK(nlohmann::json::parse(r.out).at("items").get<int>() == 2);
    CHECK(nlohmann::json::parse(r.out).at("chance").get<double>() == doctest::Approx(0.25));
  }
  using cg::testing::check_usage_error;
  const std::vector<std::string> base = {"--model", kModel, "--tokenizer", kTok, "--task", task};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(kEvaluate, a);
  };
  check_usage_error(with({"--mode", "sample"}), "evaluate", "sample");
  check_usage_error(with({"--max-new", "8"}), "evaluate", "--mode generate");
  check_usage_error(with({"--mode", "generate", "--max-new", "600"}), "evaluate", "--max-new");
  check_usage_error(with({"--mode", "generate", "--items-out", d.path.string()}), "evaluate", "--items-out");
  check_usage_error(with({"--mode", "generate", "--items-out", task}), "evaluate", "--items-out");
  check_usage_error(with({}), "evaluate", "Answer format");  // likelihood needs choices on every item
}
