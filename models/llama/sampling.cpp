// models/llama/sampling.cpp — argmax and temperature + top-p sampling.
#include "models/llama/sampling.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"

namespace cg::models {

int32_t argmax(const float* logits, int64_t n) {
  if (n < 1) throw ShapeError("argmax: empty logits");
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(double temperature, double top_p, uint64_t seed)
    : temperature_(temperature), top_p_(top_p), rng_(seed) {
  if (!(temperature >= 0) || !std::isfinite(temperature))
    throw FormatError("sampler: temperature must be ≥ 0 and finite, got " + std::to_string(temperature));
  if (!std::isfinite(top_p)) throw FormatError("sampler: top-p must be finite, got " + std::to_string(top_p));
}

int32_t Sampler::sample(const float* logits, int64_t n) {
  if (temperature_ == 0.0) return argmax(logits, n);
  // p_i = softmax(logits / T), in double.
  probs_.resize(static_cast<size_t>(n));
  const double mx = logits[argmax(logits, n)];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    probs_[static_cast<size_t>(i)] = std::exp((logits[i] - mx) / temperature_);
    sum += probs_[static_cast<size_t>(i)];
  }
  const double coin = rng_.uniform();
  if (top_p_ <= 0.0 || top_p_ >= 1.0) {  // plain multinomial draw
    double acc = 0, target = coin * sum;
    for (int64_t i = 0; i < n; ++i) {
      acc += probs_[static_cast<size_t>(i)];
      if (target < acc) return static_cast<int32_t>(i);
    }
    return static_cast<int32_t>(n - 1);
  }
  // Nucleus: most probable first, keep the prefix whose mass reaches top_p.
  order_.clear();
  for (int64_t i = 0; i < n; ++i) order_.emplace_back(probs_[static_cast<size_t>(i)] / sum, static_cast<int32_t>(i));
  std::sort(order_.begin(), order_.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  size_t keep = order_.size();
  double mass = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    mass += order_[i].first;
    if (mass >= top_p_) {
      keep = i + 1;
      break;
    }
  }
  const double target = coin * mass;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += order_[i].first;
    if (target < acc) return order_[i].second;
  }
  return order_[keep - 1].second;
}

}  // namespace cg::models
