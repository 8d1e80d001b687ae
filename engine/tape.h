// engine/tape.h — the tape (a Wengert list) and reverse-mode autodiff.
// An op that produced y from inputs calls record(); when grad mode is on and some input
// requires grad, one Node is appended. Recording order is a topological order, so
// backward(loss) walks the tape in reverse, calling each node's closure with the
// gradient of its output; closures add into inputs' .grad with accumulate().
//
// Memory: after warm-up a training step does not touch the heap. The tape keeps its node
// slots from one step to the next — after backward a slot is reset (its tensors released,
// its input list emptied but keeping its capacity), not destroyed — and a node's closure
// lives inside the node: BackwardFn stores the lambda inline instead of in the heap block
// a std::function would take for anything bigger than a couple of pointers.
#pragma once
#include <cstddef>
#include <initializer_list>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace cg {

// A `void(const Tensor& gy)` closure stored inline. An op's lambda is copied into the
// buffer; one that does not fit is a compile error (capture less — e.g. a Tensor instead
// of a std::vector — or raise kCapacity), never a silent heap allocation.
class BackwardFn {
 public:
  // Bytes. The biggest closure in the tree today is 128 (examples/rmsnorm_tour.cpp); the
  // ops' own are at most 120 (slice). The compiler prints the size of one that does not fit.
  static constexpr size_t kCapacity = 192;

  BackwardFn() = default;
  ~BackwardFn() { reset(); }
  BackwardFn(const BackwardFn&) = delete;
  BackwardFn& operator=(const BackwardFn&) = delete;

  template <class F>
  void emplace(F&& fn) {
    using Fn = std::decay_t<F>;
    static_assert(sizeof(Fn) <= kCapacity,
                  "backward closure too big for BackwardFn's inline storage: capture less "
                  "(a Tensor, not a std::vector) or raise BackwardFn::kCapacity");
    static_assert(alignof(Fn) <= alignof(std::max_align_t), "backward closure over-aligned");
    reset();
    ::new (static_cast<void*>(buf_)) Fn(std::forward<F>(fn));
    call_ = [](void* f, const Tensor& gy) { (*static_cast<Fn*>(f))(gy); };
    destroy_ = [](void* f) { static_cast<Fn*>(f)->~Fn(); };
  }
  void operator()(const Tensor& gy) { call_(buf_, gy); }
  explicit operator bool() const { return call_ != nullptr; }
  // Destroys the closure (releasing the tensors it captured).
  void reset() {
    if (destroy_) destroy_(buf_);
    call_ = nullptr;
    destroy_ = nullptr;
  }

 private:
  alignas(std::max_align_t) unsigned char buf_[kCapacity];
  void (*call_)(void*, const Tensor&) = nullptr;
  void (*destroy_)(void*) = nullptr;
};

struct Node {
  const char* op = nullptr;    // the op's name
  std::vector<Tensor> inputs;  // what it read (for tape_str; the closure captures its own)
  Tensor output;               // y; the gradient in its .grad is what backward is called with
  BackwardFn backward;         // given ∂L/∂y, adds the inputs' gradients
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

namespace tape_detail {
// Fills the next node slot with op, the n inputs and y (marking y a non-leaf that
// requires grad) and returns it; nullptr when nothing is recorded.
Node* push_node(const char* op, Tensor& y, const Tensor* inputs, size_t n);
}  // namespace tape_detail

// Append a node for y = op(inputs) with backward closure fn (a lambda taking
// `const Tensor& gy`). No-op unless will_record(inputs). Marks y as a non-leaf that
// requires grad. The inputs are copied into the node's reused list, so {a, b} at the
// call site builds no vector.
template <class F>
void record(const char* op, Tensor& y, std::initializer_list<Tensor> inputs, F&& fn) {
  if (Node* node = tape_detail::push_node(op, y, inputs.begin(), inputs.size()))
    node->backward.emplace(std::forward<F>(fn));
}
template <class F>
void record(const char* op, Tensor& y, std::span<const Tensor> inputs, F&& fn) {  // a vector, an array
  if (Node* node = tape_detail::push_node(op, y, inputs.data(), inputs.size()))
    node->backward.emplace(std::forward<F>(fn));
}
// x.grad += g (allocates x.grad on first use; adopts g when nothing else holds it).
void accumulate(const Tensor& x, const Tensor& g);

// Reverse pass from `loss` (numel 1, seeded with 1) or from `loss` with seed gradient
// `seed`. Releases the tape afterwards unless keep_tape. Non-leaf grads are dropped as
// soon as their node has run, unless retain_grad() was called on them.
void backward(const Tensor& loss, bool keep_tape = false);
void backward(const Tensor& loss, const Tensor& seed, bool keep_tape = false);

// The current thread's recorded nodes, in recording order.
class TapeView {
 public:
  size_t size() const;
  bool empty() const { return size() == 0; }
  const Node& operator[](size_t i) const;
};
TapeView tape_nodes();
void tape_clear();
std::string tape_str();  // one line per node: index, op, input shapes -> output shape

}  // namespace cg
