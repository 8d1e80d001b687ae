// engine/rng.cpp — xoshiro256** and the initialisers.
#include "engine/rng.h"

#include <cmath>
#include <vector>

namespace cg {

static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& v : s_) v = splitmix64(x);
  has_spare_ = false;
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = 0;
  while (u1 <= 0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2 * M_PI * u2);
}

uint64_t Rng::below(uint64_t n) { return n == 0 ? 0 : next_u64() % n; }

void Rng::set_state(const State& st) {
  for (int i = 0; i < 4; ++i) s_[i] = st.s[i];
  has_spare_ = st.has_spare;
  spare_ = st.spare;
}

template <class F>
static Tensor generate(const Shape& shape, DType dtype, Device device, F draw) {
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (double& x : v) x = draw();
  return Tensor::from(v, shape, dtype, device);
}

Tensor rand_uniform(const Shape& shape, double lo, double hi, Rng& rng, DType dtype, Device device) {
  return generate(shape, dtype, device, [&] { return rng.uniform(lo, hi); });
}
Tensor rand_normal(const Shape& shape, double mean, double stddev, Rng& rng, DType dtype, Device device) {
  return generate(shape, dtype, device, [&] { return mean + stddev * rng.normal(); });
}
Tensor kaiming_uniform(const Shape& shape, int64_t fan_in, Rng& rng, DType dtype, Device device) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  return rand_uniform(shape, -bound, bound, rng, dtype, device);
}

}  // namespace cg
