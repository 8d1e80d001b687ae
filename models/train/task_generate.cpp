// models/train/task_generate.cpp — generation-mode task scoring and LLM-Adapters' answer
// extraction.
#include "models/train/task_generate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <regex>

#include "engine/error.h"
#include "models/llama/generation.h"
#include "models/text/chat_template.h"

namespace cg::models {
namespace {

// LLM-Adapters' fixed alternatives for a choice family ("answer" → answer1..answer5), or the
// item's own choices.
std::vector<std::string> alternatives(const TaskItem& item) {
  if (item.choices == std::vector<std::string>{"true", "false"}) return {"true", "false"};
  static const std::vector<std::pair<std::string, int>> families = {{"solution", 2},
                                                                    {"answer", 5},
                                                                    {"ending", 4},
                                                                    {"option", 2}};
  for (const auto& [stem, n] : families) {
    const bool all = std::all_of(item.choices.begin(), item.choices.end(), [&](const std::string& c) {
      return c.size() == stem.size() + 1 && c.compare(0, stem.size(), stem) == 0 && c.back() >= '1' && c.back() <= '9';
    });
    if (all) {
      std::vector<std::string> out;
      for (int i = 1; i <= n; ++i) out.push_back(stem + std::to_string(i));
      return out;
    }
  }
  return item.choices;
}

bool is_letter_item(const TaskItem& item) {
  return item.choices.empty() && item.answer.size() == 1 && item.answer[0] >= 'A' && item.answer[0] <= 'E';
}

// The leftmost occurrence of any alternative (at one position, the first listed), or "".
std::string first_match(const std::string& text, const std::vector<std::string>& alts) {
  size_t best = std::string::npos;
  std::string found;
  for (const std::string& a : alts) {
    const size_t p = text.find(a);
    if (p != std::string::npos && (best == std::string::npos || p < best)) best = p, found = a;
  }
  return found;
}

// evaluate.py's extract_answer_number: commas removed, the last match of -?\d+\.?\d*.
std::string last_number(std::string text) {
  text.erase(std::remove(text.begin(), text.end(), ','), text.end());
  static const std::regex number(R"(-?\d+\.?\d*)");
  std::string last;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), number); it != std::sregex_iterator(); ++it)
    last = it->str();
  return last;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n\v\f"), b = s.find_last_not_of(" \t\r\n\v\f");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

std::string extract_answer(const TaskItem& item, const std::string& reply) {
  const std::string r = trim(reply);
  if (!item.choices.empty()) return first_match(r, alternatives(item));
  if (is_letter_item(item)) return first_match(r, {"A", "B", "C", "D", "E"});
  return last_number(r);
}

bool answer_correct(const TaskItem& item, const std::string& extracted) {
  if (extracted.empty()) return false;
  if (!item.choices.empty() || is_letter_item(item)) return extracted == item.answer;
  char* end = nullptr;
  const double gold = std::strtod(item.answer.c_str(), &end);
  if (end == item.answer.c_str()) return false;
  const double pred = std::strtod(extracted.c_str(), nullptr);
  return std::isfinite(pred) && std::fabs(gold - pred) <= 0.001;
}

std::vector<int> reply_stop_tokens(const Tokenizer& tokenizer) {
  std::vector<int> stop;
  if (tokenizer.eos_id() >= 0) stop.push_back(tokenizer.eos_id());
  if (!tokenizer.chat_template().empty()) {
    try {
      for (const std::string& s : chat_stop_tokens(detect_chat_format(tokenizer.chat_template())))
        if (const int id = tokenizer.token_id(s); id >= 0 && std::find(stop.begin(), stop.end(), id) == stop.end())
          stop.push_back(id);
    } catch (const FormatError&) {  // a template of no known family: EOS alone
    }
  }
  return stop;
}

TaskScore score_task_generate(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<TaskItem>& items,
                              const GenerateEvalOptions& options,
                              const std::function<void(const GeneratedItem&)>& on_item) {
  const int64_t L = model.config().seq_len;
  if (options.max_new < 1 || options.max_new >= L)
    throw FormatError("evaluate: --max-new " + std::to_string(options.max_new) + " must be in [1, " +
                      std::to_string(L - 1) + "] (the context is " + std::to_string(L) + ")");
  if (options.batch < 1) throw FormatError("evaluate: --batch must be ≥ 1");
  const size_t n = options.limit > 0 ? std::min(items.size(), static_cast<size_t>(options.limit)) : items.size();
  const std::vector<int> stop = reply_stop_tokens(tokenizer);
  const size_t room = static_cast<size_t>(L - options.max_new);
  std::vector<std::vector<int>> ids(n);
  std::vector<GeneratedItem> done(n);
  std::map<size_t, std::vector<size_t>> by_length;  // prompt length → item indices
  std::vector<size_t> lengths;                      // in order of first appearance
  for (size_t i = 0; i < n; ++i) {
    GeneratedItem& g = done[i];
    g.index = i;
    g.prompt = alpaca_prompt(items[i]);
    ids[i] = tokenizer.encode(g.prompt, tokenizer.add_bos(), false);
    if (ids[i].empty()) throw FormatError("evaluate: item " + std::to_string(i) + "'s prompt encodes to no token");
    if (ids[i].size() > room) {
      g.cut_tokens = static_cast<int64_t>(ids[i].size() - room);
      ids[i].erase(ids[i].begin(), ids[i].begin() + static_cast<std::ptrdiff_t>(ids[i].size() - room));
    }
    g.prompt_tokens = static_cast<int64_t>(ids[i].size());
    auto& group = by_length[ids[i].size()];
    if (group.empty()) lengths.push_back(ids[i].size());
    group.push_back(i);
  }
  // The prefill's logits [B, P, V] dominate memory: a chunk holds at most ~256 MiB of them.
  const int64_t V = model.config().vocab_size;
  for (size_t len : lengths) {
    const std::vector<size_t>& group = by_length[len];
    const int64_t fit = std::max<int64_t>(1, (int64_t{256} << 20) / (4 * V * static_cast<int64_t>(len)));
    const size_t chunk = static_cast<size_t>(std::min(options.batch, fit));
    for (size_t a = 0; a < group.size(); a += chunk) {
      std::vector<std::vector<int>> prompts;
      for (size_t j = a; j < std::min(group.size(), a + chunk); ++j) prompts.push_back(ids[group[j]]);
      const std::vector<GreedyRow> rows = greedy_batch(model, prompts, options.max_new, stop);
      for (size_t j = 0; j < rows.size(); ++j) {
        GeneratedItem& g = done[group[a + j]];
        g.reply = tokenizer.decode(rows[j].new_tokens);
        g.new_tokens = static_cast<int64_t>(rows[j].new_tokens.size());
        g.stopped = rows[j].stopped;
        g.extracted = extract_answer(items[g.index], g.reply);
        g.correct = answer_correct(items[g.index], g.extracted);
      }
    }
  }
  TaskScore s;
  std::map<std::string, int64_t> answers;
  for (size_t i = 0; i < n; ++i) {
    s.correct += done[i].correct;
    count_baselines(s, answers, items[i]);
    if (on_item) on_item(done[i]);
  }
  finish_baselines(s, answers);
  return s;
}

}  // namespace cg::models
