// engine/tape.h — the tape (a Wengert list) and reverse-mode autodiff.
// An op that produced y from inputs calls record(); when grad mode is on and some input
// requires grad, one Node is appended. Recording order is a topological order, so
// backward(loss) walks the tape in reverse, calling each node's closure with the
// gradient of its output; closures add into inputs' .grad with accumulate().
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cg {

using BackwardFn = std::function<void(const Tensor& gy)>;

struct Node {
  const char* op;
  std::vector<Tensor> inputs;
  Tensor output;
  BackwardFn backward;
};

// Grad mode: on by default, per thread.
bool grad_enabled();
class NoGrad {  // RAII: no recording inside the scope
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

// Does an op's backward need to produce a gradient for x?
inline bool needs_grad(const Tensor& x) { return x.defined() && x.requires_grad(); }
// True when an op with these inputs will be recorded (grad mode on, some input needs grad).
bool will_record(std::initializer_list<const Tensor*> inputs);
// Append a node for y = op(inputs). No-op unless will_record(inputs). Marks y as a
// non-leaf that requires grad.
void record(const char* op, Tensor& y, std::vector<Tensor> inputs, BackwardFn fn);
// x.grad += g (allocates x.grad on first use; adopts g when nothing else holds it).
void accumulate(const Tensor& x, const Tensor& g);

// Reverse pass from `loss` (numel 1, seeded with 1) or from `loss` with seed gradient
// `seed`. Releases the tape afterwards unless keep_tape. Non-leaf grads are dropped as
// soon as their node has run, unless retain_grad() was called on them.
void backward(const Tensor& loss, bool keep_tape = false);
void backward(const Tensor& loss, const Tensor& seed, bool keep_tape = false);

// The current thread's tape.
const std::vector<Node>& tape_nodes();
void tape_clear();
std::string tape_str();  // one line per node: index, op, input shapes -> output shape

}  // namespace cg
