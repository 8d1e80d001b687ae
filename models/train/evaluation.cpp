// models/train/evaluation.cpp — windowed text loss and LLM-Adapters multiple-choice scoring.
#include "models/train/evaluation.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/tape.h"
#include "models/io/file_io.h"
#include "models/text/instruct_data.h"
#include "ops/ops.h"

namespace cg::models {
namespace {

// Σ over t in [from, n) of log p(ids[t] | ids[<t]) for one sequence (n ≤ seq_len + 1);
// positions before `from` are context only.
double sum_logprob(LlamaModel& model, const std::vector<int>& ids, size_t from) {
  const int64_t T = static_cast<int64_t>(ids.size()) - 1;
  if (T < 1 || from >= ids.size()) return 0.0;
  std::vector<int32_t> in(ids.begin(), ids.end() - 1), tgt(ids.begin() + 1, ids.end());
  for (size_t t = 0; t + 1 < std::max<size_t>(from, 1); ++t) tgt[t] = -1;  // context only
  int64_t scored = 0;
  for (int32_t v : tgt) scored += v >= 0;
  Tensor logits = model.forward(Tensor::from_i32(in, {1, T}));  // [1,T,V]
  Tensor loss = ops::cross_entropy(logits, Tensor::from_i32(tgt, {1, T}).to(logits.device()));
  return -loss.item() * static_cast<double>(scored);
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

double TextScore::ppl() const { return std::exp(loss); }

TextScore score_tokens(LlamaModel& model, const std::vector<int>& ids) {
  NoGrad ng;
  const size_t L = static_cast<size_t>(model.config().seq_len);
  double total = 0;
  int64_t count = 0;
  for (size_t s = 0; s + 1 < ids.size(); s += L) {
    const size_t end = std::min(s + L + 1, ids.size());  // window ids[s, end): inputs and targets
    const std::vector<int> win(ids.begin() + static_cast<std::ptrdiff_t>(s),
                               ids.begin() + static_cast<std::ptrdiff_t>(end));
    total += -sum_logprob(model, win, 1);
    count += static_cast<int64_t>(win.size()) - 1;
  }
  if (count == 0) throw FormatError("evaluate: the text has no token to score (it encodes to BOS only)");
  return {total / static_cast<double>(count), count};
}

TextScore score_text(LlamaModel& model, const Tokenizer& tokenizer, const std::string& text) {
  return score_tokens(model, tokenizer.encode(text, tokenizer.add_bos(), false));
}

std::vector<TaskItem> parse_task(const std::string& json_text, const std::string& what, bool need_choices) {
  const nlohmann::json j = parse_json_limited(json_text, what);
  if (!j.is_array()) throw FormatError(what + ": expected a JSON list of {instruction, input, output, answer}");
  if (j.size() > kMaxTaskItems)
    throw FormatError(what + ": " + std::to_string(j.size()) + " items is more than the limit of " +
                      std::to_string(kMaxTaskItems));
  std::vector<TaskItem> items;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& o = j[i];
    const std::string at = what + ": item " + std::to_string(i);
    auto field = [&](const char* k, bool required) -> std::string {
      if (!o.is_object()) throw FormatError(at + " is not an object");
      auto it = o.find(k);
      if (it == o.end() || it->is_null()) {
        if (required) throw FormatError(at + " has no \"" + k + "\"");
        return "";
      }
      if (!it->is_string()) throw FormatError(at + ": \"" + k + "\" is not a string");
      return it->get<std::string>();
    };
    TaskItem t;
    t.instruction = field("instruction", true);
    t.input = field("input", false);
    t.answer = trim(field("answer", true));
    const size_t p = t.instruction.rfind("Answer format:");
    if (p == std::string::npos) {
      if (need_choices)
        throw FormatError(at +
                          " has no \"Answer format:\" line (only multiple-choice tasks can be scored by "
                          "likelihood; --mode generate scores the others)");
      items.push_back(std::move(t));
      continue;
    }
    std::string line = t.instruction.substr(p + 14);
    line = trim(line.substr(0, line.find('\n')));
    size_t a = 0;
    while (true) {
      const size_t b = line.find('/', a);
      const std::string c = trim(line.substr(a, b == std::string::npos ? std::string::npos : b - a));
      if (c.empty()) throw FormatError(at + ": empty choice in \"Answer format:\"");
      t.choices.push_back(c);
      if (t.choices.size() > kMaxTaskChoices)
        throw FormatError(at + ": more than " + std::to_string(kMaxTaskChoices) + " choices in \"Answer format:\"");
      if (b == std::string::npos) break;
      a = b + 1;
    }
    if (t.choices.size() < 2) throw FormatError(at + ": \"Answer format:\" lists fewer than 2 choices");
    if (std::find(t.choices.begin(), t.choices.end(), t.answer) == t.choices.end())
      throw FormatError(at + ": answer \"" + (t.answer.size() > 80 ? t.answer.substr(0, 80) + "…" : t.answer) +
                        "\" is not one of its " + std::to_string(t.choices.size()) + " choices");
    items.push_back(std::move(t));
  }
  return items;
}

std::vector<TaskItem> parse_hellaswag_text(const std::string& text, const std::string& what) {
  std::vector<std::string> lines;
  for (size_t a = 0; a < text.size();) {
    size_t b = text.find('\n', a);
    if (b == std::string::npos) b = text.size();
    std::string line = text.substr(a, b - a);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    a = b + 1;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty() || lines.size() % 6 != 0)
    throw FormatError(what +
                      ": neither a JSON list nor HellaSwag text (6 lines per item: context, label 0..3, "
                      "4 endings); it has " +
                      std::to_string(lines.size()) + " lines");
  if (lines.size() / 6 > kMaxTaskItems)
    throw FormatError(what + ": more than " + std::to_string(kMaxTaskItems) + " items");
  std::vector<TaskItem> items;
  for (size_t i = 0; i < lines.size(); i += 6) {
    const std::string& label = lines[i + 1];
    if (label.size() != 1 || label[0] < '0' || label[0] > '3')
      throw FormatError(what + ": line " + std::to_string(i + 2) + " should be the gold label 0..3, got \"" +
                        (label.size() > 20 ? label.substr(0, 20) + "…" : label) + "\"");
    TaskItem t;
    t.instruction = "Please choose the correct ending to complete the given sentence: " + lines[i] + "\n\n";
    for (int e = 0; e < 4; ++e)
      t.instruction +=
          (e ? " Ending" : "Ending") + std::to_string(e + 1) + ": " + lines[i + 2 + static_cast<size_t>(e)];
    t.instruction += "\n\nAnswer format: ending1/ending2/ending3/ending4";
    t.choices = {"ending1", "ending2", "ending3", "ending4"};
    t.answer = "ending" + std::to_string(label[0] - '0' + 1);
    items.push_back(std::move(t));
  }
  return items;
}

std::vector<TaskItem> read_task(const std::string& path, bool need_choices) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxTaskBytes);
  const std::string text(bytes.begin(), bytes.end());
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] != '[' && text[first] != '{') return parse_hellaswag_text(text, path);
  return parse_task(text, path, need_choices);
}

std::string alpaca_prompt(const TaskItem& item) { return alpaca_prompt(item.instruction, item.input); }

std::string task_prompt(const TaskItem& item) { return alpaca_prompt(item) + "the correct answer is "; }

ChoiceScores score_choices(LlamaModel& model, const Tokenizer& tokenizer, const TaskItem& item) {
  NoGrad ng;
  const std::string prompt = task_prompt(item);
  const std::vector<int> ctx = tokenizer.encode(prompt, tokenizer.add_bos(), false);
  const size_t L = static_cast<size_t>(model.config().seq_len);
  ChoiceScores out;
  for (const std::string& c : item.choices) {
    std::vector<int> ids = tokenizer.encode(prompt + c, tokenizer.add_bos(), false);
    size_t from = 0;  // first answer token
    while (from < ids.size() && from < ctx.size() && ids[from] == ctx[from]) ++from;
    from = std::max<size_t>(from, 1);
    if (ids.size() > L + 1) {  // keep the last L+1 ids (L inputs)
      const size_t drop = ids.size() - (L + 1);
      ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(drop));
      from = from > drop ? from - drop : 1;
    }
    out.logprob.push_back(from < ids.size() ? sum_logprob(model, ids, from) : 0.0);
  }
  out.predicted = static_cast<int>(std::max_element(out.logprob.begin(), out.logprob.end()) - out.logprob.begin());
  return out;
}

void count_baselines(TaskScore& s, std::map<std::string, int64_t>& answers, const TaskItem& item) {
  s.items += 1;
  if (!item.choices.empty()) s.chance += 1.0 / static_cast<double>(item.choices.size());
  ++answers[item.answer];
}

void finish_baselines(TaskScore& s, const std::map<std::string, int64_t>& answers) {
  int64_t most = 0;
  for (const auto& [answer, count] : answers)
    if (count > most) most = count, s.majority_answer = answer;
  if (s.items > 0) {
    s.chance /= static_cast<double>(s.items);
    s.majority = static_cast<double>(most) / static_cast<double>(s.items);
  }
}

TaskScore score_task(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<TaskItem>& items, int64_t limit,
                     const std::function<void(size_t, const ChoiceScores&)>& on_item) {
  TaskScore s;
  const size_t n = limit > 0 ? std::min(items.size(), static_cast<size_t>(limit)) : items.size();
  std::map<std::string, int64_t> answers;
  for (size_t i = 0; i < n; ++i) {
    if (items[i].choices.empty())
      throw FormatError("evaluate: item " + std::to_string(i) + " has no \"Answer format:\" choices to score");
    const ChoiceScores cs = score_choices(model, tokenizer, items[i]);
    s.correct += items[i].choices[static_cast<size_t>(cs.predicted)] == items[i].answer;
    count_baselines(s, answers, items[i]);
    if (on_item) on_item(i, cs);
  }
  finish_baselines(s, answers);
  return s;
}

}  // namespace cg::models
