// models/study/gradflow.h — measuring the gradient dynamics of ChainAdapters (LoRA, MoSLoRA,
// LinChain): per-factor gradient norms after a backward, update norms around an optimizer
// step, the spectrum of ΔW (singular values, effective and stable rank), the cosine between
// successive updates, a JSONL logger for all of it, and the preconditioner check of the chain
// (the first-order change of P = W₁⋯Wₙ under SGD on the factors vs the real change).
// It works on any training loop: call before_step() after backward and after_step() after
// the optimizer step. Training loops, tasks and the tool live elsewhere (models/study/teacher.h,
// tools/gradflow.cpp).
//
// Conventions are nn/adapters.h's: A[in, r], Wᵢ[r, r], B[out, r], ΔW[out, in] = s·B·Pᵀ·Aᵀ.
// All measurements are computed on the host in double.
#pragma once
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "nn/adapters.h"

namespace cg::nn {

// ---- matrix measurements (host, double) ----------------------------------------------------
double frobenius_norm(const Tensor& t);  // ‖t‖_F of any tensor (fixed-order reduction)
// Singular values of a rank-2 tensor, descending (linalg::singular_values on its host copy).
std::vector<double> singular_values(const Tensor& m);
// Singular values of s·B·Cᵀ for B[out, r], C[in, r] (row-major), descending, r of them,
// from the r×r core s·R_B·R_Cᵀ of the QR factorisations B = Q_B R_B, C = Q_C R_C:
// O((in + out)·r²) instead of an SVD of the full out×in matrix. Exact up to rounding.
std::vector<double> lowrank_singular_values(const std::vector<double>& b, const std::vector<double>& c, int64_t out,
                                            int64_t in, int64_t r, double s);
// exp(H(p)) with p = σ/Σσ (Roy & Vetterli's effective rank); 0 for an all-zero spectrum.
double effective_rank(const std::vector<double>& sv);
// Σσ² / σ_max² = ‖M‖_F² / ‖M‖₂²; 0 for an all-zero spectrum.
double stable_rank(const std::vector<double>& sv);
// Singular values of an adapter's ΔW = s·B·(A·P)ᵀ, descending (via lowrank_singular_values).
std::vector<double> adapter_delta_singular_values(ChainAdapter& ad);

// ---- one logged row ------------------------------------------------------------------------
// One adapted module at one step. Optional fields are null in JSON when absent: grad_norm_P
// for LoRA (no mixers), update_cos at the first measured step or when an update is zero.
struct GradFlowRow {
  int64_t step = 0;  // 0-based index of the optimizer step the row describes
  std::string module;
  double loss = 0;
  double grad_norm_A = 0, grad_norm_B = 0;
  std::vector<double> grad_norm_W;    // one per mixer W₁…Wₙ (empty for LoRA)
  std::optional<double> grad_norm_P;  // ‖∂L/∂P‖ from the chain probe (n ≥ 1)
  double update_norm_A = 0, update_norm_B = 0;
  std::vector<double> update_norm_W;  // ‖ΔWᵢ‖ of the step
  double update_norm = 0;             // ‖Δθ‖ of the whole adapter (A, Wᵢ, B flattened)
  double delta_w_norm = 0;            // ‖ΔW‖_F after the step (delta_weight())
  std::vector<double> sv;             // top-k singular values of ΔW after the step
  double eff_rank = 0, stable_rank = 0;
  std::optional<double> update_cos;  // cos(Δθ_t, Δθ_{t−1}) of the flattened adapter
  // The adapter term's parts on the step's forwards (ChainAdapter::measured_terms; null when
  // the loop did not call GradFlowLogger::before_forward): ‖s·x·A·P·Bᵀ‖ RMS over rows, and
  // ‖Δb‖ = ‖s·B·β‖ (null without chain biases).
  std::optional<double> input_term_rms, bias_term_norm;
  std::vector<std::pair<std::string, double>> extra;  // caller's fields, e.g. eval_loss
};
std::string gradflow_row_json(const GradFlowRow& row);  // one line, no newline

// ---- per-adapter measurement around one optimizer step ------------------------------------
// Use: backward → before_step() (reads gradients, snapshots the values) → optimizer step →
// after_step() (update norms, ΔW spectrum, cosine with the previous measured update).
// The cosine compares successive updates only when before_step/after_step ran on both
// steps (the logger does that every step). grad_norm_P is the probe's share from the
// adapter's latest forward: exact when the module ran once in the step's forward.
class AdapterMonitor {
 public:
  AdapterMonitor(ChainAdapter& adapter, std::string module, int top_k = 8);
  void before_step();
  // Fills everything but step/loss/extra when `full`; otherwise only tracks the update
  // (for the next cosine) and returns an empty row.
  GradFlowRow after_step(bool full = true);
  ChainAdapter& adapter() { return ad_; }
  const std::string& module() const { return module_; }

 private:
  std::vector<Tensor> factors() const;  // A, W₁…Wₙ, B
  ChainAdapter& ad_;
  std::string module_;
  int top_k_;
  GradFlowRow pending_;
  std::vector<std::vector<double>> before_;  // per factor values before the step
  std::vector<double> prev_update_;          // flattened previous update
  bool have_before_ = false;
};

// ---- the JSONL logger ---------------------------------------------------------------------
// One JSON object per line per adapted module on every logged step: step % every == 0 and
// the last step (set_last_step). The file is written to PATH.tmp and renamed to PATH by
// close() (also on destruction), so a crashed run leaves no half-written PATH. A loop that
// starts at step s > 0 (a resumed run) first copies PATH's rows of the steps before s, so
// the file of an interrupted and resumed run holds every logged step once. An empty
// path measures without writing (rows are still returned). `modules`, when not empty, is an
// ECMAScript regex: only the adapted modules whose name it matches (std::regex_search) are
// measured; a bad regex or one that matches no module is a FormatError.
class GradFlowLogger {
 public:
  GradFlowLogger(const AdapterSet& set, const std::string& path, int every = 1, int top_k = 8,
                 const std::string& modules = "");
  ~GradFlowLogger();
  GradFlowLogger(const GradFlowLogger&) = delete;
  GradFlowLogger& operator=(const GradFlowLogger&) = delete;

  void set_last_step(int64_t step) { last_step_ = step; }
  bool logs(int64_t step) const { return step % every_ == 0 || step == last_step_; }
  // Before the first forward of step `step` (optional): on a logged step the adapters measure
  // their term sizes (ChainAdapter::measure_terms) until before_step.
  void before_forward(int64_t step);
  // After backward of step `step`, before the optimizer step.
  void before_step(int64_t step);
  // After the optimizer step: the rows written for this step (empty when not logged).
  std::vector<GradFlowRow> after_step(int64_t step, double loss,
                                      const std::vector<std::pair<std::string, double>>& extra = {});
  void close();
  const std::vector<AdapterMonitor>& monitors() const { return monitors_; }

 private:
  std::vector<AdapterMonitor> monitors_;
  std::string path_;
  std::FILE* f_ = nullptr;
  bool started_ = false;
  int every_;
  int64_t last_step_ = -1;
};

// ---- the chain as a preconditioner --------------------------------------------------------
// For SGD with lr η on the mixers alone (A and B held fixed), P = W₁⋯Wₙ changes to first
// order by  ΔP_pred = −η Σᵢ Lᵢ Lᵢᵀ · G · Rᵢᵀ Rᵢ,  Lᵢ = W₁⋯Wᵢ₋₁, Rᵢ = Wᵢ₊₁⋯Wₙ, G = ∂L/∂P.
// The real step is Wᵢ ← Wᵢ − η·∂L/∂Wᵢ on double copies of the mixers (their .grad()),
// ΔP_actual = ∏Wᵢ' − ∏Wᵢ. Since the difference is second order in η, rel_err ≈ c·η.
struct PrecondRow {
  double lr = 0;
  double rel_err = 0;         // ‖ΔP_actual − ΔP_pred‖ / ‖ΔP_actual‖
  double chain_vs_plain = 0;  // ‖ΔP_pred − (−η G)‖ / ‖ΔP_pred‖: how far the chain is from one factor
  double actual_norm = 0, pred_norm = 0;
};
// Needs an adapter with n ≥ 1 mixers after a backward (probe().grad_product and the mixers'
// gradients defined, one forward per backward); throws cg::Error otherwise. Changes nothing.
std::vector<PrecondRow> check_preconditioner(ChainAdapter& ad, const std::vector<double>& lrs);

}  // namespace cg::nn
