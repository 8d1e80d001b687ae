// engine/tape.cpp — recording nodes and the reverse walk.
#include "engine/tape.h"

#include <sstream>

#include "engine/backend.h"

namespace cg {
namespace {
thread_local bool g_grad_enabled = true;
thread_local std::vector<Node> g_tape;
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

void record(const char* op, Tensor& y, std::vector<Tensor> inputs, BackwardFn fn) {
  if (!g_grad_enabled) return;
  bool any = false;
  for (const Tensor& t : inputs) any = any || needs_grad(t);
  if (!any) return;
  y.impl()->requires_grad = true;
  y.impl()->is_leaf = false;
  g_tape.push_back(Node{op, std::move(inputs), y, std::move(fn)});
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
  for (Node& node : g_tape) node.output.impl()->grad = Tensor();
  accumulate(loss, seed);
  // Walk in reverse; a node runs only if its output received a gradient.
  for (size_t i = g_tape.size(); i-- > 0;) {
    Node& node = g_tape[i];
    TensorImpl& out = *node.output.impl();
    if (!out.grad.defined()) continue;
    Tensor gy = out.grad;
    if (!out.retain_grad && !keep_tape) out.grad = Tensor();  // free as we go
    node.backward(gy);
  }
  if (!keep_tape) g_tape.clear();
}

void backward(const Tensor& loss, bool keep_tape) {
  if (loss.numel() != 1)
    throw ShapeError("backward: loss " + loss.desc() + " is not a scalar; pass a seed gradient");
  if (!loss.requires_grad())
    throw Error("backward: loss " + loss.desc() + " does not require grad (nothing recorded?)");
  run_backward(loss, Tensor::ones(loss.shape(), loss.dtype(), loss.device()), keep_tape);
}

void backward(const Tensor& loss, const Tensor& seed, bool keep_tape) {
  if (!loss.requires_grad())
    throw Error("backward: " + loss.desc() + " does not require grad (nothing recorded?)");
  run_backward(loss, seed.clone(), keep_tape);
}

const std::vector<Node>& tape_nodes() { return g_tape; }
void tape_clear() { g_tape.clear(); }

std::string tape_str() {
  std::ostringstream os;
  for (size_t i = 0; i < g_tape.size(); ++i) {
    const Node& n = g_tape[i];
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
