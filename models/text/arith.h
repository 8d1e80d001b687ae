// models/text/arith.h — the embedded task of `make demo`: a procedurally generated arithmetic
// language, so the demo needs no data files. Lines look like "47+85=231\n": fixed-width
// operands (zero-padded) and the answer (132) written least-significant digit first, one
// digit wider than the operands. A base model is pretrained on one operation (addition)
// and fine-tuned on a related new one (subtraction, "85-47=830\n" for 38); accuracy is
// exact match of the greedy answer to a prompt "a-b=" on held-out pairs: about one operand pair in ten never appears in a training
// corpus and is the only kind an eval set draws.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cg::models {

enum class ArithOp { Add, Sub };

// FormatError unless max_operand is in [1, 10⁹] and, with need_held_out, some operand pair
// in range is held out (--arith-max 2 has none, so an eval set could never be drawn).
void check_arith_settings(ArithOp op, int max_operand, bool need_held_out);
bool arith_has_held_out(ArithOp op, int max_operand);
// `lines` random problems with operands in [0, max_operand], seeded.
std::string arith_corpus(ArithOp op, int64_t lines, int max_operand, uint64_t seed);
// Held-out (prompt, answer) pairs, e.g. ("85-47=", "830"): operand pairs that no corpus
// contains.
std::vector<std::pair<std::string, std::string>> arith_eval_set(ArithOp op, int64_t n, int max_operand, uint64_t seed);

}  // namespace cg::models
