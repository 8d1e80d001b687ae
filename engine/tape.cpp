// engine/tape.cpp — recording nodes and the reverse walk.
#include "engine/tape.h"

#include <deque>
#include <sstream>

#include "engine/backend.h"

namespace cg {
namespace {
thread_local bool g_grad_enabled = true;
// Node slots, kept across steps: nodes [0, g_used) are the tape, the rest are reset slots
// waiting for the next forward. A deque never moves its elements, so a Node (and the
// closure inside it) stays where it was built.
thread_local std::deque<Node> g_slots;
thread_local size_t g_used = 0;

// Empties a slot for reuse: releases its closure and tensors (in the order a Node's
// destructor would), keeps its input list's capacity.
void reset(Node& n) {
  n.backward.reset();
  n.output = Tensor();
  n.inputs.clear();
  n.op = nullptr;
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGrad::NoGrad() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGrad::~NoGrad() { g_grad_enabled = prev_; }

bool will_record(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && needs_grad(*t)) return true;
  return false;
}

Node* tape_detail::push_node(const char* op, Tensor& y, const Tensor* inputs, size_t n) {
  if (!g_grad_enabled) return nullptr;
  bool any = false;
  for (size_t i = 0; i < n; ++i) any = any || needs_grad(inputs[i]);
  if (!any) return nullptr;
  y.impl()->requires_grad = true;
  y.impl()->is_leaf = false;
  if (g_used == g_slots.size()) g_slots.emplace_back();  // a new slot only while warming up
  Node& node = g_slots[g_used++];
  node.op = op;
  node.inputs.assign(inputs, inputs + n);  // reuses the slot's capacity
  node.output = y;
  return &node;
}

void accumulate(const Tensor& x, const Tensor& g) {
  if (!needs_grad(x)) return;
  if (g.shape() != x.shape() || g.dtype() != x.dtype() || g.device() != x.device())
    throw ShapeError("accumulate: gradient " + g.desc() + " does not match tensor " + x.desc());
  TensorImpl& xi = *x.impl();
  if (!xi.grad.defined()) {
    // Adopt g when only the caller holds its storage; otherwise copy so later
    // in-place accumulation cannot write into someone else's memory.
    xi.grad = g.storage().use_count() == 1 ? g : g.clone();
    return;
  }
  backend(x).axpy(1.0, g, xi.grad);
}

static void run_backward(const Tensor& loss, const Tensor& seed, bool keep_tape) {
  // Gradients of non-leaves left by an earlier backward over a kept tape are stale.
  for (size_t i = 0; i < g_used; ++i) g_slots[i].output.impl()->grad = Tensor();
  accumulate(loss, seed);
  // Walk in reverse; a node runs only if its output received a gradient.
  for (size_t i = g_used; i-- > 0;) {
    Node& node = g_slots[i];
    TensorImpl& out = *node.output.impl();
    if (!out.grad.defined() || !node.backward) continue;
    Tensor gy = out.grad;
    if (!out.retain_grad && !keep_tape) out.grad = Tensor();  // free as we go
    node.backward(gy);
  }
  if (!keep_tape) tape_clear();
}

void backward(const Tensor& loss, bool keep_tape) {
  if (loss.numel() != 1) throw ShapeError("backward: loss " + loss.desc() + " is not a scalar; pass a seed gradient");
  if (!loss.requires_grad())
    throw Error("backward: loss " + loss.desc() + " does not require grad (nothing recorded?)");
  run_backward(loss, Tensor::ones(loss.shape(), loss.dtype(), loss.device()), keep_tape);
}

void backward(const Tensor& loss, const Tensor& seed, bool keep_tape) {
  if (!loss.requires_grad()) throw Error("backward: " + loss.desc() + " does not require grad (nothing recorded?)");
  run_backward(loss, seed.clone(), keep_tape);
}

size_t TapeView::size() const { return g_used; }
const Node& TapeView::operator[](size_t i) const {
  if (i >= g_used) throw Error("tape_nodes: node " + std::to_string(i) + " of " + std::to_string(g_used));
  return g_slots[i];
}
TapeView tape_nodes() { return {}; }

void tape_clear() {
  for (size_t i = 0; i < g_used; ++i) reset(g_slots[i]);  // in recording order, as before
  g_used = 0;
}

std::string tape_str() {
  std::ostringstream os;
  for (size_t i = 0; i < g_used; ++i) {
    const Node& n = g_slots[i];
    os << "#" << i << " " << n.op << "(";
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      const Tensor& t = n.inputs[j];
      os << (j ? ", " : "");
      if (!t.name().empty()) os << t.name() << ":";
      os << t.shape().str() << (t.requires_grad() ? "*" : "");
    }
    os << ") -> " << n.output.shape().str() << "\n";
  }
  return os.str();
}

}  // namespace cg
