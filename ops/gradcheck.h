// ops/gradcheck.h — finite-difference gradient checking and the registry of every op.
// Each registry case builds small random float64 inputs (CPU) and a function of them;
// check() compares the tape's gradients with central differences of a fixed random
// projection of the output, L = Σ y ⊙ r, and reports the worst relative error,
// max|analytic − numeric| / max|numeric|, per input.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace cg::ops {

struct GradCase {
  std::string op;              // registry name, e.g. "matmul"
  std::string detail;          // the shapes, e.g. "[2,3]·[3,4]ᵀ"
  std::vector<Tensor> inputs;  // float inputs get checked; i32 inputs are passed through
  std::function<Tensor(const std::vector<Tensor>&)> fn;
};

struct GradResult {
  double max_rel_err = 0;
  bool pass = false;
  std::string worst;  // which input gave the worst error
};

// One family of cases per op; `make(rng, device)` returns its cases (several shapes).
struct GradOp {
  std::string name;
  std::function<std::vector<GradCase>(Rng&)> make;
};

const std::vector<GradOp>& grad_registry();
GradResult gradcheck(const GradCase& c, double tol = 1e-6, double eps = 1e-6);

}  // namespace cg::ops
