// examples/tape_tour.cpp — docs/01-tape.md: build a tiny graph, print the tape, run
// backward, print the gradients (and check two of them against the hand-derived formula).
#include <cmath>
#include <cstdio>

#include "engine/tape.h"
#include "ops/ops.h"

using namespace cg;

static void show(const char* name, const Tensor& t) {
  std::printf("%-6s", name);
  for (double v : t.to_f64_vector()) std::printf(" %8.4f", v);
  std::printf("\n");
}

int main() {
  Tensor x = Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F64).set_name("x");  // data: no grad
  Tensor w = Tensor::from({.1, -.2, .3, .4, -.5, .6}, {3, 2}, DType::F64).set_name("w").set_requires_grad(true);
  Tensor b = Tensor::from({.5, -1}, {2}, DType::F64).set_name("b").set_requires_grad(true);

  Tensor z = ops::add(ops::matmul(x, w), b);    // z[2,2] = x·w + b   (b broadcast over rows)
  Tensor loss = ops::mean_all(ops::mul(z, z));  // L = mean(z²): z is used twice
  std::printf("tape after forward (* = requires grad):\n%s", tape_str().c_str());
  show("z", z);
  show("loss", loss);

  backward(loss);  // seeds dL/dL = 1 and walks the tape in reverse
  std::printf("tape after backward: %zu nodes\n", tape_nodes().size());
  show("dL/dw", w.grad());
  show("dL/db", b.grad());
  std::printf("x.grad() defined: %s\n", x.grad().defined() ? "yes" : "no");

  // By hand: dL/dz = 2z/4 = z/2, so dL/db_j = Σ_rows z_rj / 2.
  const auto zv = z.to_f64_vector(), gb = b.grad().to_f64_vector();
  const double err = std::fabs(gb[0] - (zv[0] + zv[2]) / 2) + std::fabs(gb[1] - (zv[1] + zv[3]) / 2);
  std::printf("dL/db matches z/2 summed over rows: %s\n", err < 1e-12 ? "yes" : "NO");
  return err < 1e-12 ? 0 : 1;
}
