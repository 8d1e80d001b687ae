// models/llama/sampling.h — choosing the next token from a row of logits: greedy argmax, and
// temperature + nucleus (top-p) sampling driven by a cg::Rng, so a seed gives the same
// tokens on every run. Works on host floats; no tensors, no allocation per call after the
// first (the Sampler keeps its scratch buffers).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/rng.h"

namespace cg::models {

// Index of the largest logit (the first one on ties). n ≥ 1.
int32_t argmax(const float* logits, int64_t n);

class Sampler {
 public:
  // temperature 0 → greedy; top_p ≤ 0 or ≥ 1 → sample from the whole distribution.
  Sampler(double temperature, double top_p, uint64_t seed);
  // One token from logits[n]: argmax when temperature is 0, otherwise softmax(logits / T)
  // restricted to the smallest set of most-probable tokens whose mass reaches top_p
  // (probabilities sorted descending, ties by index), renormalised, sampled with one
  // uniform draw.
  int32_t sample(const float* logits, int64_t n);

  double temperature() const { return temperature_; }
  double top_p() const { return top_p_; }

 private:
  double temperature_, top_p_;
  Rng rng_;
  std::vector<double> probs_;
  std::vector<std::pair<double, int32_t>> order_;
};

}  // namespace cg::models
