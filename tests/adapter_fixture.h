// tests/adapter_fixture.h — the small frozen base the adapter-file tests attach adapters to
// (two layers of q_proj [16, 8] and down_proj [8, 24]), random adapter values, and the
// message of a FormatError a call throws.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "nn/adapters.h"
#include "nn/linear.h"
#include "nn/params.h"

namespace cg::testing {

struct AdapterTestModel {
  nn::ParamStore base{"base"};
  std::vector<nn::Linear> lin = std::vector<nn::Linear>(4);
  std::vector<std::string> names{"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj",
                                 "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.down_proj"};
  explicit AdapterTestModel(int layers = 2) {
    Rng rng(5);
    names.resize(static_cast<size_t>(2 * layers));
    lin.resize(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      const Shape s = i % 2 == 0 ? Shape{16, 8} : Shape{8, 24};
      lin[i].weight = base.add(names[i] + ".weight", rand_uniform(s, -0.3, 0.3, rng));
    }
    base.finalize();
  }
  std::vector<std::pair<std::string, nn::Linear*>> linears() {
    std::vector<std::pair<std::string, nn::Linear*>> out;
    for (size_t i = 0; i < names.size(); ++i) out.emplace_back(names[i], &lin[i]);
    return out;
  }
};

// Every adapter parameter of `set` drawn from U(−0.7, 0.7).
inline void randomize(nn::AdapterSet& set, uint64_t seed) {
  Rng rng(seed);
  Tensor& flat = set.store->flat();
  flat.copy_from(rand_uniform(flat.shape(), -0.7, 0.7, rng));
}

// The message of the FormatError that f() throws, or "" when it throws none.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace cg::testing
