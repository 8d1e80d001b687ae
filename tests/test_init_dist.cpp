// tests/test_init_dist.cpp — the distribution of every freshly attached adapter tensor, on
// modules with in > out and in < out: A ~ U(−1/√in, 1/√in) (fan-in, not fan-out), kaiming
// mixers ~ U(−1/√r, 1/√r), B = 0. Checked from both sides: the largest |value| reaches the
// bound (a smaller bound fails) and never passes it (a larger one fails), and the standard
// deviation is the uniform's bound/√3.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "nn/adapters.h"
#include "nn/linear.h"
#include "nn/params.h"

using namespace cg;
using namespace cg::nn;

namespace {

struct Stats {
  double max_abs = 0, mean = 0, std = 0;
};

Stats stats(const Tensor& t) {
  const auto v = t.to_f64_vector();
  Stats s;
  for (double x : v) {
    s.max_abs = std::max(s.max_abs, std::abs(x));
    s.mean += x;
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  return s;
}

// U(−b, b) with n samples: max|x| ∈ (b·(1 − 20/n), b] (P(miss) = e^−20), std = b/√3 within
// 4 standard errors (relative s.e. of the std of a uniform: √(0.8/(4n))), mean within 4 s.e.
void check_uniform(const Tensor& t, double bound, const std::string& what) {
  const double n = static_cast<double>(t.numel());
  const Stats s = stats(t);
  CAPTURE(what);
  CAPTURE(bound);
  CHECK(s.max_abs <= bound * (1 + 1e-6));  // float32 rounding of the bound itself
  CHECK(s.max_abs >= bound * (1 - 20.0 / n));
  CHECK(std::abs(s.std - bound / std::sqrt(3.0)) <= 4 * std::sqrt(0.8 / (4 * n)) * bound / std::sqrt(3.0));
  CHECK(std::abs(s.mean) <= 4 * bound / std::sqrt(3.0 * n));
}

}  // namespace

TEST_CASE("adapter init: A uses fan-in 1/√in, mixers 1/√r, B = 0, on wide and tall modules") {
  const int64_t r = 16;
  for (AdapterKind kind : {AdapterKind::LoRA, AdapterKind::MoSLoRA, AdapterKind::LinChain}) {
    ParamStore base{"base"};
    Linear wide, tall;  // wide: in 384 > out 48; tall: in 48 < out 384
    Rng rng(5);
    wide.weight = base.add("model.layers.0.self_attn.q_proj.weight", rand_uniform({48, 384}, -0.1, 0.1, rng));
    tall.weight = base.add("model.layers.0.mlp.up_proj.weight", rand_uniform({384, 48}, -0.1, 0.1, rng));
    base.finalize();
    base.set_trainable(false);
    AdapterConfig cfg;
    cfg.kind = kind;
    cfg.rank = r;
    cfg.chain = 3;
    cfg.alpha = 32;
    cfg.init = MixerInit::Kaiming;
    cfg.targets = parse_targets("q,up");
    AdapterSet set =
        attach_adapters({{"model.layers.0.self_attn.q_proj", &wide}, {"model.layers.0.mlp.up_proj", &tall}}, cfg, 9);
    REQUIRE(set.adapters.size() == 2);
    for (const auto& a : set.adapters) {
      const int64_t in = a.linear->in_features(), out = a.linear->out_features();
      CAPTURE(adapter_kind_name(kind));
      CAPTURE(a.module);
      REQUIRE(a.adapter->a().shape() == Shape({in, r}));
      REQUIRE(a.adapter->b().shape() == Shape({out, r}));
      check_uniform(a.adapter->a(), 1.0 / std::sqrt(static_cast<double>(in)), "A " + a.module);
      const Stats b = stats(a.adapter->b());
      CHECK(b.max_abs == 0.0);
      REQUIRE(a.adapter->mixers().size() == static_cast<size_t>(cfg.num_mixers()));
      for (const Tensor& w : a.adapter->mixers())
        check_uniform(w, 1.0 / std::sqrt(static_cast<double>(r)), "mixer " + a.module);
    }
  }
}
