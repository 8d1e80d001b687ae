// models/train/arith_eval.h — exact-match accuracy of a model on the held-out problems of the
// embedded arithmetic task (models/text/arith.h): greedy decoding of the answer after the
// prompt "\n<a>-<b>=", compared with the true answer up to the end of the line.
#pragma once
#include <cstdint>

#include "models/text/arith.h"
#include "models/llama/llama.h"
#include "models/text/tokenizer.h"

namespace cg::models {

// Fraction of `n` held-out problems answered exactly (greedy, KV cache, no tape).
double arith_accuracy(LlamaModel& model, const Tokenizer& tok, ArithOp op, int64_t n, int max_operand, uint64_t seed);

}  // namespace cg::models
