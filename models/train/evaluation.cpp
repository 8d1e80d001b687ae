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
    const std::vector<int> win(ids.begin() + static_cast<std::ptrdiff_t>(s), ids.begin() + static_cast<std::ptrdiff_t>(end));
    total += -sum_logprob(model, win, 1);
    count += static_cast<int64_t>(win.size()) - 1;
  }
  if (count == 0) throw FormatError("evaluate: the text has no token to score (it encodes to BOS only)");
  return {total / static_cast<double>(count), count};
}

TextScore score_text(LlamaModel& model, const Tokenizer& tokenizer, const std::string& text) {
  return score_tokens(model, tokenizer.encode(text, tokenizer.add_bos(), false));
}

std::vector<TaskItem> parse_task(const std::string& json_text, const std::string& what) {
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
    if (p == std::string::npos)
      throw FormatError(at + " has no \"Answer format:\" line (only multiple-choice tasks can be scored)");
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

std::vector<TaskItem> read_task(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxTaskBytes);
  return parse_task(std::string(bytes.begin(), bytes.end()), path);
}

std::string task_prompt(const TaskItem& item) {
  return alpaca_prompt(item.instruction, item.input) + "the correct answer is ";
}

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

TaskScore score_task(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<TaskItem>& items, int64_t limit) {
  TaskScore s;
  const size_t n = limit > 0 ? std::min(items.size(), static_cast<size_t>(limit)) : items.size();
  std::map<std::string, int64_t> answers;
  for (size_t i = 0; i < n; ++i) {
    const ChoiceScores cs = score_choices(model, tokenizer, items[i]);
    s.correct += items[i].choices[static_cast<size_t>(cs.predicted)] == items[i].answer;
    s.items += 1;
    s.chance += 1.0 / static_cast<double>(items[i].choices.size());
    ++answers[items[i].answer];
  }
  int64_t most = 0;
  for (const auto& [answer, count] : answers)
    if (count > most) most = count, s.majority_answer = answer;
  if (s.items > 0) {
    s.chance /= static_cast<double>(s.items);
    s.majority = static_cast<double>(most) / static_cast<double>(s.items);
  }
  return s;
}

}  // namespace cg::models
