// models/study/flow_recorder.cpp — the Trainer's gradient-flow observer.
#include "models/study/flow_recorder.h"

namespace cg::models {

FlowRecorder::FlowRecorder(const nn::AdapterSet& set, const FlowOptions& o, int64_t last_step)
    : logger_(set, o.path, o.every, o.top_k, o.modules) {
  logger_.set_last_step(last_step);
}

void FlowRecorder::after_update(int64_t step, const StepStats& s) {
  rows_ +=
      static_cast<int64_t>(logger_.after_step(step, s.loss, {{"lr", s.lr}, {"global_grad_norm", s.grad_norm}}).size());
}

}  // namespace cg::models
