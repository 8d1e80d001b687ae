// models/train/task_generate.h — LLM-Adapters tasks scored the way the papers do: the model
// writes a reply to the Alpaca prompt (greedy, up to max_new tokens, stopping at EOS or the
// chat template's end of turn) and the answer is extracted from it as LLM-Adapters'
// commonsense_evaluate.py and evaluate.py do. Items are batched by prompt length (see
// GenerateEvalOptions::batch).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/llama/llama.h"
#include "models/text/tokenizer.h"
#include "models/train/evaluation.h"

namespace cg::models {

// What the reply is searched for, chosen from the item:
//  - choices "true/false" (boolq) → the first match of true|false (case-sensitive);
//  - choices solutionN (piqa) → solution1|solution2; answerN (social_i_qa, ARC, openbookqa) →
//    answer1|…|answer5; endingN (hellaswag) → ending1|…|ending4; optionN (winogrande) →
//    option1|option2 — LLM-Adapters' fixed lists, whatever the item's own "Answer format:";
//  - other choices → the first match of any of them;
//  - no choices and a gold answer that is one letter A–E (AQuA) → the first of A|B|C|D|E;
//  - no choices otherwise (arithmetic) → the last number (commas removed, -?\d+\.?\d*), correct
//    when |number − gold| ≤ 0.001.
// The first match is the leftmost; "" when nothing matches (then the item is wrong).
std::string extract_answer(const TaskItem& item, const std::string& reply);
bool answer_correct(const TaskItem& item, const std::string& extracted);

struct GenerateEvalOptions {
  int64_t max_new = 32;  // new tokens per reply (LLM-Adapters: 32 commonsense, 256 arithmetic)
  int64_t batch = 8;     // most items per forward; only prompts of the same token length share one
  int64_t limit = 0;     // the first `limit` items (≤ 0: all)
};

// One scored item, for evaluate --items-out.
struct GeneratedItem {
  size_t index = 0;
  std::string prompt, reply, extracted;
  bool correct = false, stopped = false;                      // stopped: ended by EOS / end of turn, not by max_new
  int64_t prompt_tokens = 0, new_tokens = 0, cut_tokens = 0;  // cut: dropped from the left to fit
};

// The stop tokens: the tokenizer's EOS and, when it carries a chat template, that family's
// end-of-turn tokens.
std::vector<int> reply_stop_tokens(const Tokenizer& tokenizer);

// The prompt is alpaca_prompt(item), encoded with BOS only when the tokenizer adds one; a prompt
// longer than seq_len − max_new tokens keeps its last ones. Items are grouped by prompt length
// (in order of first appearance) and each group runs through greedy_batch in chunks of
// `batch`; the reply is tokenizer.decode(new tokens), special tokens skipped. on_item sees
// every item once, in index order. Baselines as score_task's.
TaskScore score_task_generate(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<TaskItem>& items,
                              const GenerateEvalOptions& options,
                              const std::function<void(const GeneratedItem&)>& on_item = nullptr);

}  // namespace cg::models
