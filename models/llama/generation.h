// models/llama/generation.h — text generation with a LlamaModel and a Tokenizer, the way
// llama2.c's run.c generate() does it: encode the prompt with BOS (no EOS), feed one token
// per position through the KV cache (prompt tokens are forced), then sample; stop after
// `steps` positions or when BOS is sampled. The generate tool is a thin wrapper.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/llama/llama.h"
#include "models/text/tokenizer.h"

namespace cg::models {

struct GenerateOptions {
  std::string prompt;
  int64_t steps = 256;       // positions in total, BOS included; ≤ 0 or > seq_len → seq_len
  double temperature = 1.0;  // 0 → greedy
  double top_p = 0.9;
  uint64_t seed = 0;
};

struct GenerateStats {
  int64_t positions = 0;      // forward calls (one per position)
  int64_t prompt_tokens = 0;  // BOS included
  double seconds = 0;         // from the end of the first position to the end (as run.c)
  double tokens_per_second() const { return positions > 1 && seconds > 0 ? (positions - 1) / seconds : 0; }
};

// Runs the loop, calling emit(piece) for every token after BOS (prompt tokens included)
// with tokenizer.decode_piece(prev, next). Like run.c's safe_printf, a piece that is one
// byte which is neither printable ASCII nor whitespace is not emitted.
GenerateStats generate(LlamaModel& model, const Tokenizer& tokenizer, const GenerateOptions& options,
                       const std::function<void(const std::string&)>& emit);

// Continuation of given prompt ids (a chat turn): the whole prompt goes through the KV cache
// in one forward call, then up to max_new tokens are sampled one at a time; a token in `stop`
// ends it (not emitted). Every new token's bytes are emitted unfiltered (decode_piece).
struct ContinueStats {
  std::vector<int> new_tokens;  // stop token excluded
  bool stopped = false;         // a stop token ended it
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0;  // the prompt forward (prefill), first token's logits included
  double decode_seconds = 0;  // every later forward
  double prompt_tokens_per_second() const { return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0; }
  double decode_tokens_per_second() const {
    const double n = static_cast<double>(new_tokens.size()) + (stopped ? 1 : 0) - 1;
    return decode_seconds > 0 && n > 0 ? n / decode_seconds : 0;
  }
};
ContinueStats continue_tokens(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<int>& prompt,
                              int64_t max_new, const std::vector<int>& stop, double temperature, double top_p,
                              uint64_t seed, const std::function<void(const std::string&)>& emit);

// Greedy continuation of B prompts of the same length at once: one forward of [B, P] ids
// through a batch-B KV cache, then one [B, 1] forward per new token. Rows never interact (each
// attends to its own cache row), so row b's tokens equal a batch of one's up to float rounding
// (tests/test_task_generate.cpp checks it). A row stops at a token in `stop` (not kept); the
// batch ends when every row stopped or after max_new tokens (1 ≤ max_new, P + max_new ≤ seq_len).
struct GreedyRow {
  std::vector<int> new_tokens;  // stop token excluded
  bool stopped = false;
};
std::vector<GreedyRow> greedy_batch(LlamaModel& model, const std::vector<std::vector<int>>& prompts, int64_t max_new,
                                    const std::vector<int>& stop);

}  // namespace cg::models
