// models/train/arith_eval.cpp — greedy answers to arithmetic prompts.
#include "models/train/arith_eval.h"

#include "engine/tape.h"
#include "models/llama/sampling.h"

namespace cg::models {

double arith_accuracy(LlamaModel& model, const Tokenizer& tok, ArithOp op, int64_t n, int max_operand, uint64_t seed) {
  NoGrad ng;
  const auto problems = arith_eval_set(op, n, max_operand, seed);
  const int64_t V = model.config().vocab_size;
  int64_t correct = 0;
  for (const auto& [prompt, answer] : problems) {
    // A newline first: in the training corpus every problem starts a line.
    std::vector<int> ids = tok.encode("\n" + prompt, false, false);
    LlamaModel::KVCache cache = model.make_cache(1, static_cast<int64_t>(ids.size()) + 12);
    std::vector<int32_t> in(ids.begin(), ids.end());
    Tensor logits = model.forward(Tensor::from_i32(in, {1, static_cast<int64_t>(in.size())}, model.device()), &cache);
    std::string got;
    int prev = ids.back();
    for (int step = 0; step < 10; ++step) {
      const std::vector<float> all = logits.to_f32_vector();
      const int32_t next = argmax(all.data() + (logits.numel() - V), V);
      const std::string piece = tok.decode_piece(prev, next);
      if (piece.find('\n') != std::string::npos || next == tok.eos_id()) break;
      got += piece;
      prev = next;
      logits = model.forward(Tensor::from_i32({next}, {1, 1}, model.device()), &cache);
    }
    correct += got == answer;
  }
  return n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

}  // namespace cg::models
