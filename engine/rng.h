// engine/rng.h — a seeded random generator (xoshiro256**, seeded through splitmix64)
// and the tensor initialisers built on it. Values are drawn on the host in a fixed order,
// so a seed gives the same tensor on every device and thread count.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace cg {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal();             // N(0, 1), Box–Muller
  uint64_t below(uint64_t n);  // uniform integer in [0, n)
  // The whole state, for training checkpoints.
  struct State {
    uint64_t s[4];
    bool has_spare;
    double spare;
  };
  State state() const { return {{s_[0], s_[1], s_[2], s_[3]}, has_spare_, spare_}; }
  void set_state(const State& st);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};

Tensor rand_uniform(const Shape& shape, double lo, double hi, Rng& rng, DType dtype = DType::F32,
                    Device device = Device::CPU);
Tensor rand_normal(const Shape& shape, double mean, double stddev, Rng& rng, DType dtype = DType::F32,
                   Device device = Device::CPU);
// Kaiming-uniform with a = √5 (PyTorch's nn.Linear default): U(−b, b), b = 1/√fan_in.
Tensor kaiming_uniform(const Shape& shape, int64_t fan_in, Rng& rng, DType dtype = DType::F32,
                       Device device = Device::CPU);

}  // namespace cg
