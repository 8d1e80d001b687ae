// models/study/teacher.h — the teacher–student task of the gradient-flow study: one linear layer
// y = x·(W₀ + ΔW*)ᵀ in the [out, in] convention with a frozen random W₀ and a known
// target ΔW* of rank k and a chosen spectrum; the student is an nn::Linear holding W₀ to
// which the caller attaches an adapter (linears() names it "teacher.q_proj", so target "q").
// Inputs are Gaussian: a fresh batch per step from a seeded stream, plus a fixed held-out
// batch. Loss = mean over elements of (y_student − y_teacher)². The training loop is the
// caller's (tools/gradflow.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/rng.h"
#include "engine/tensor.h"
#include "nn/linear.h"
#include "nn/params.h"

namespace cg::nn {

struct TeacherConfig {
  int64_t in = 64, out = 64;
  int teacher_rank = 4;
  std::string spectrum = "geometric:0.5";  // "geometric:RATIO" (σᵢ ∝ RATIOⁱ) or "flat"
  double target_norm = 0;                  // ‖ΔW*‖_F; ≤ 0 means √out, so the initial MSE (ΔW = 0) is ≈ 1
  int64_t batch = 64;                      // rows of each training batch
  int64_t heldout = 512;                   // rows of the fixed held-out batch
  uint64_t teacher_seed = 0;               // W₀ and ΔW*
  uint64_t data_seed = 1;                  // the training stream (the held-out batch uses its own stream)
  void validate() const;                   // FormatError on bad values
};

// The spectrum σ₁ ≥ … ≥ σ_k with Σσᵢ² = norm²: "flat" or "geometric:RATIO" (0 < RATIO ≤ 1).
// FormatError on a bad string.
std::vector<double> teacher_spectrum(const std::string& spec, int k, double norm);

class TeacherTask {
 public:
  explicit TeacherTask(const TeacherConfig& cfg);
  TeacherTask(const TeacherTask&) = delete;
  TeacherTask& operator=(const TeacherTask&) = delete;

  static constexpr const char* kModule = "teacher.q_proj";
  // {kModule, &student} — for nn::attach_adapters with target "q".
  std::vector<std::pair<std::string, Linear*>> linears() { return {{kModule, &student_}}; }
  Linear& student() { return student_; }

  // MSE of the student on the next training batch, on the tape (shape [1]).
  Tensor train_loss();
  // MSE on the fixed held-out batch, without recording.
  double heldout_loss();
  // ‖ΔW − ΔW*‖_F / ‖ΔW*‖_F for the student's current ΔW (0 without an adapter: relative error 1).
  double target_error();

  const Tensor& target_delta() const { return delta_star_; }  // ΔW*[out, in]
  const std::vector<double>& spectrum() const { return sigma_; }
  const TeacherConfig& config() const { return cfg_; }

 private:
  Tensor mse(const Tensor& x);
  TeacherConfig cfg_;
  ParamStore base_{"base"};  // W₀, frozen
  Linear student_;
  Tensor teacher_w_;   // W₀ + ΔW*  [out, in]
  Tensor delta_star_;  // ΔW*       [out, in]
  std::vector<double> sigma_;
  Rng data_rng_;
  Tensor heldout_x_;
};

}  // namespace cg::nn
