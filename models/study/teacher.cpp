// models/study/teacher.cpp — the teacher–student linear task: target construction, data streams, MSE.
#include "models/study/teacher.h"

#include <cmath>
#include <cstdlib>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/tape.h"
#include "nn/adapters.h"
#include "ops/ops.h"

namespace cg::nn {

void TeacherConfig::validate() const {
  if (in < 1 || out < 1) throw FormatError("teacher: --in and --out must be ≥ 1");
  if (teacher_rank < 1 || teacher_rank > std::min(in, out))
    throw FormatError("teacher: --teacher-rank must be in [1, min(in, out)] = [1, " +
                      std::to_string(std::min(in, out)) + "], got " + std::to_string(teacher_rank));
  if (batch < 1 || heldout < 1) throw FormatError("teacher: --batch and the held-out size must be ≥ 1");
  if (!std::isfinite(target_norm)) throw FormatError("teacher: target norm must be finite");
}

std::vector<double> teacher_spectrum(const std::string& spec, int k, double norm) {
  std::vector<double> s(static_cast<size_t>(k), 1.0);
  if (spec == "flat") {
  } else if (spec.rfind("geometric:", 0) == 0) {
    const std::string num = spec.substr(10);
    char* end = nullptr;
    const double ratio = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !(ratio > 0) || ratio > 1)
      throw FormatError("bad spectrum '" + spec + "': geometric ratio must be in (0, 1]");
    for (int i = 1; i < k; ++i) s[static_cast<size_t>(i)] = s[static_cast<size_t>(i - 1)] * ratio;
  } else {
    throw FormatError("bad spectrum '" + spec + "' (expected \"flat\" or \"geometric:RATIO\")");
  }
  double sq = 0;
  for (double x : s) sq += x * x;
  for (double& x : s) x *= norm / std::sqrt(sq);
  return s;
}

TeacherTask::TeacherTask(const TeacherConfig& cfg) : cfg_(cfg), data_rng_(cfg.data_seed) {
  cfg_.validate();
  const int64_t in = cfg_.in, out = cfg_.out, k = cfg_.teacher_rank;
  const double norm = cfg_.target_norm > 0 ? cfg_.target_norm : std::sqrt(static_cast<double>(out));
  sigma_ = teacher_spectrum(cfg_.spectrum, cfg_.teacher_rank, norm);
  Rng rng(cfg_.teacher_seed);
  // W₀ ~ N(0, 1/in): outputs of unit scale for unit Gaussian inputs.
  const Tensor w0 = rand_normal({out, in}, 0.0, 1.0 / std::sqrt(static_cast<double>(in)), rng);
  // ΔW* = U·diag(σ)·Vᵀ with U, V the first k columns of random orthogonal matrices.
  const std::vector<double> u = random_orthogonal(out, rng, DType::F64).to_f64_vector();
  const std::vector<double> v = random_orthogonal(in, rng, DType::F64).to_f64_vector();
  std::vector<double> d(static_cast<size_t>(out * in), 0.0);
  for (int64_t i = 0; i < out; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < k; ++c)
        acc +=
            u[static_cast<size_t>(i * out + c)] * sigma_[static_cast<size_t>(c)] * v[static_cast<size_t>(j * in + c)];
      d[static_cast<size_t>(i * in + j)] = acc;
    }
  delta_star_ = Tensor::from(d, {out, in});
  const std::vector<double> w0v = w0.to_f64_vector();
  for (size_t i = 0; i < d.size(); ++i) d[i] += w0v[i];
  teacher_w_ = Tensor::from(d, {out, in});
  student_.weight = base_.add(std::string(kModule) + ".weight", w0);
  base_.finalize();
  base_.set_trainable(false);
  Rng held(cfg_.data_seed ^ 0x5DEECE66Dull);
  heldout_x_ = rand_normal({cfg_.heldout, in}, 0.0, 1.0, held);
}

// mean over elements of (x·(W₀+ΔW)ᵀ − x·(W₀+ΔW*)ᵀ)²;  x[N, in], y[N, out]
Tensor TeacherTask::mse(const Tensor& x) {
  Tensor target;
  {
    NoGrad ng;
    target = ops::linear(x, teacher_w_);  // [N, out]
  }
  const Tensor diff = ops::sub(student_.forward(x), target);  // [N, out]
  return ops::mean_all(ops::mul(diff, diff));                 // [1]
}

Tensor TeacherTask::train_loss() {
  const Tensor x = rand_normal({cfg_.batch, cfg_.in}, 0.0, 1.0, data_rng_);
  return mse(x);
}

double TeacherTask::heldout_loss() {
  NoGrad ng;
  return mse(heldout_x_).item();
}

double TeacherTask::target_error() {
  const double ref = std::sqrt(backend_for(Device::CPU).sum_squares(delta_star_));
  if (!student_.adapter) return 1.0;
  const std::vector<double> dw = student_.adapter->delta_weight().to_f64_vector();
  const std::vector<double> ds = delta_star_.to_f64_vector();
  double sq = 0;
  for (size_t i = 0; i < dw.size(); ++i) sq += (dw[i] - ds[i]) * (dw[i] - ds[i]);
  return std::sqrt(sq) / ref;
}

}  // namespace cg::nn
