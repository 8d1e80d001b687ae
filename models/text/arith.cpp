// models/text/arith.cpp — the arithmetic language generator.
#include "models/text/arith.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/rng.h"

namespace cg::models {
namespace {
// About one operand pair in ten is held out: never in a training corpus, only in eval sets.
bool held_out(int64_t a, int64_t b) { return (a * 31 + b * 17) % 10 == 3; }

std::pair<std::string, std::string> problem(ArithOp op, Rng& rng, int max_operand, bool want_held_out) {
  int64_t a = 0, b = 0;
  do {
    a = static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_operand) + 1));
    b = static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_operand) + 1));
    if (op == ArithOp::Sub && a < b) std::swap(a, b);  // non-negative answers
  } while (held_out(a, b) != want_held_out);
  const char sym = op == ArithOp::Add ? '+' : '-';
  const int64_t c = op == ArithOp::Add ? a + b : a - b;
  // Fixed width: operands zero-padded to the width of max_operand, the answer to one
  // digit more and written least-significant digit first, so every answer digit depends
  // on the operand digits at fixed distances plus one carry (a left-to-right model can
  // then learn the algorithm rather than a table).
  const size_t w = std::to_string(max_operand).size();
  auto pad = [](std::string d, size_t width) { return std::string(width > d.size() ? width - d.size() : 0, '0') + d; };
  std::string ans = pad(std::to_string(c), w + 1);
  std::reverse(ans.begin(), ans.end());
  return {pad(std::to_string(a), w) + sym + pad(std::to_string(b), w) + "=", ans};
}
}  // namespace

bool arith_has_held_out(ArithOp op, int max_operand) {
  const int64_t m = std::min(max_operand, 40);  // if a pair exists at all, one exists below 40
  for (int64_t a = 0; a <= m; ++a)
    for (int64_t b = 0; b <= (op == ArithOp::Sub ? a : m); ++b)
      if (held_out(a, b)) return true;
  return false;
}

void check_arith_settings(ArithOp op, int max_operand, bool need_held_out) {
  if (max_operand < 1 || max_operand > 1000000000)
    throw FormatError("--arith-max must be in [1, 1000000000], got " + std::to_string(max_operand));
  if (need_held_out && !arith_has_held_out(op, max_operand)) {
    int least = max_operand;
    while (!arith_has_held_out(op, least)) ++least;
    throw FormatError("--arith-max " + std::to_string(max_operand) +
                      " leaves no held-out operand pair to evaluate on (the least --arith-max with one is " +
                      std::to_string(least) + ")");
  }
}

std::string arith_corpus(ArithOp op, int64_t lines, int max_operand, uint64_t seed) {
  check_arith_settings(op, max_operand, false);
  Rng rng(seed);
  std::string s;
  for (int64_t i = 0; i < lines; ++i) {
    auto [p, a] = problem(op, rng, max_operand, false);
    s += p + a + "\n";
  }
  return s;
}

std::vector<std::pair<std::string, std::string>> arith_eval_set(ArithOp op, int64_t n, int max_operand, uint64_t seed) {
  check_arith_settings(op, max_operand, n > 0);
  Rng rng(seed ^ 0x5EEDF00Dull);
  std::vector<std::pair<std::string, std::string>> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(problem(op, rng, max_operand, true));
  return out;
}

}  // namespace cg::models
