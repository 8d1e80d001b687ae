// models/train/evaluation.h — scoring a LlamaModel: mean next-token cross-entropy over a token
// stream in context-sized windows, and multiple-choice tasks in the LLM-Adapters format
// scored by the log-likelihood of each candidate answer. The evaluate tool wraps these.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "models/llama/llama.h"
#include "models/text/tokenizer.h"

namespace cg::models {

struct TextScore {
  double loss = 0;     // mean negative log-likelihood, nats per scored token
  int64_t tokens = 0;  // scored tokens
  double ppl() const;  // e^loss
};

// Windowing: with N ids and L = seq_len, window w feeds ids[w·L, min(w·L + L, N − 1)) and
// scores the token that follows each of them. Windows do not overlap, every id but the
// first is scored exactly once (tokens = N − 1), and each window's first id is context
// only (the previous window scored it). The attention context restarts at every window.
TextScore score_tokens(LlamaModel& model, const std::vector<int>& ids);
// The text's bytes encoded with BOS when the tokenizer adds one (add_bos()), no EOS, then score_tokens.
TextScore score_text(LlamaModel& model, const Tokenizer& tokenizer, const std::string& text);

// One LLM-Adapters item: {"instruction", "input", "output", "answer"}; choices come from
// the instruction's last "Answer format:" line, split on '/'. Items without that line (the
// arithmetic sets: a number, or AQuA's letter A–E) have no choices and can only be scored by
// generation (models/train/task_generate.h).
struct TaskItem {
  std::string instruction, input, answer;
  std::vector<std::string> choices;
};
// Parses a JSON list of items; malformed JSON, a missing field, an item whose answer is not
// one of its choices, or (need_choices) an item without an "Answer format:" line → FormatError
// naming the item. `what` names the source in messages. Limits (the LLM-Adapters sets have ≤ 5
// choices and ≤ 170k items): JSON depth kMaxJsonDepth, kMaxTaskBytes, kMaxTaskItems items,
// kMaxTaskChoices choices per item.
constexpr uint64_t kMaxTaskBytes = 512u << 20;
constexpr size_t kMaxTaskItems = 1000000;
constexpr size_t kMaxTaskChoices = 64;
std::vector<TaskItem> parse_task(const std::string& json_text, const std::string& what, bool need_choices = true);
// HellaSwag in 6-line records (`activity_label: context`, the 0-based gold label 0..3, then the
// four endings), turned into LLM-Adapters' hellaswag items: "Please choose the correct ending to
// complete the given sentence: {context}\n\nEnding1: {e1} Ending2: {e2} Ending3: {e3} Ending4:
// {e4}\n\nAnswer format: ending1/ending2/ending3/ending4", answer "ending{label+1}".
std::vector<TaskItem> parse_hellaswag_text(const std::string& text, const std::string& what);
// A JSON list (the first non-blank byte is '[') or else the HellaSwag text format.
std::vector<TaskItem> read_task(const std::string& path, bool need_choices = true);

// The LLM-Adapters (Alpaca-style) prompt of a task item, ending at "### Response:\n" (the
// generation mode starts there): alpaca_prompt (models/text/instruct_data.h, the one
// training renders too) of its instruction and input.
std::string alpaca_prompt(const TaskItem& item);
// The likelihood mode's prompt: alpaca_prompt(item) + "the correct answer is ".
std::string task_prompt(const TaskItem& item);

struct ChoiceScores {
  std::vector<double> logprob;  // per choice: Σ log p(answer tokens | prompt)
  int predicted = 0;            // argmax of logprob (first on ties)
};
// Scores each choice c of an item: ids = encode(prompt + c) with BOS when add_bos(); the answer tokens
// are those from the first position where ids differs from encode(prompt) (BPE may merge
// the prompt's trailing space into the answer's first token). When ids is longer than
// seq_len, it is truncated from the left.
ChoiceScores score_choices(LlamaModel& model, const Tokenizer& tokenizer, const TaskItem& item);

// With the two baselines every accuracy needs: chance = the mean over the scored items of
// 1/#choices (guessing uniformly), majority = the share of the most common gold answer
// (always answering it; ties: the answer that comes first alphabetically).
struct TaskScore {
  int64_t correct = 0, items = 0;
  double chance = 0, majority = 0;
  std::string majority_answer;
  double accuracy() const { return items ? static_cast<double>(correct) / static_cast<double>(items) : 0.0; }
};
// Adds item `item`'s gold answer and choice count to the baselines' running sums;
// finish_baselines turns them into chance and majority (called once, after the last item).
void count_baselines(TaskScore& s, std::map<std::string, int64_t>& answers, const TaskItem& item);
void finish_baselines(TaskScore& s, const std::map<std::string, int64_t>& answers);
// Scores the first `limit` items (limit ≤ 0: all). on_item (optional) sees each item's index
// and scores as they come (evaluate --items-out).
TaskScore score_task(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<TaskItem>& items,
                     int64_t limit = 0, const std::function<void(size_t, const ChoiceScores&)>& on_item = nullptr);

}  // namespace cg::models
