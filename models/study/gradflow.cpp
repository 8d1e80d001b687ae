// models/study/gradflow.cpp — adapter gradient-flow measurements (norms, ΔW spectrum via engine/linalg,
// update cosines), the JSONL logger and the preconditioner check. Host-side, double.
#include "models/study/gradflow.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/linalg.h"

namespace cg::nn {
namespace {

using Mat = std::vector<double>;  // row-major

// c[m,n] = a[m,k] · b[k,n]
Mat mm(const Mat& a, const Mat& b, int64_t m, int64_t k, int64_t n) {
  Mat c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const double x = a[static_cast<size_t>(i * k + p)];
      if (x == 0) continue;
      for (int64_t j = 0; j < n; ++j) c[static_cast<size_t>(i * n + j)] += x * b[static_cast<size_t>(p * n + j)];
    }
  return c;
}
// t[n,m] = a[m,n]ᵀ
Mat tr(const Mat& a, int64_t m, int64_t n) {
  Mat t(a.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) t[static_cast<size_t>(j * m + i)] = a[static_cast<size_t>(i * n + j)];
  return t;
}
Mat eye(int64_t n) {
  Mat e(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) e[static_cast<size_t>(i * n + i)] = 1.0;
  return e;
}
double norm2(const Mat& a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}
Mat sub(const Mat& a, const Mat& b) {
  Mat c(a.size());
  for (size_t i = 0; i < a.size(); ++i) c[i] = a[i] - b[i];
  return c;
}

std::vector<double> host(const Tensor& t) { return t.to_f64_vector(); }

}  // namespace

// ---- matrix measurements ----------------------------------------------------------------------
double frobenius_norm(const Tensor& t) {
  if (!t.defined()) return 0;
  return std::sqrt(backend(t).sum_squares(t));
}

std::vector<double> singular_values(const Tensor& m) {
  if (m.rank() != 2) throw ShapeError("singular_values: expected a matrix, got " + m.desc());
  return linalg::singular_values(host(m), m.dim(0), m.dim(1));
}

std::vector<double> lowrank_singular_values(const std::vector<double>& b, const std::vector<double>& c, int64_t out,
                                            int64_t in, int64_t r, double s) {
  if (static_cast<int64_t>(b.size()) != out * r || static_cast<int64_t>(c.size()) != in * r)
    throw ShapeError("lowrank_singular_values: B has " + std::to_string(b.size()) + " values, C " +
                     std::to_string(c.size()) + ", for out " + std::to_string(out) + ", in " + std::to_string(in) +
                     ", r " + std::to_string(r));
  if (out < r || in < r) {  // thin side smaller than r: the full product is small anyway
    Mat d = mm(b, tr(c, in, r), out, r, in);
    for (double& x : d) x *= s;
    return linalg::singular_values(d, out, in);
  }
  // s·B·Cᵀ = Q_B · (s·R_B·R_Cᵀ) · Q_Cᵀ with orthonormal Q's: same singular values as the core.
  Mat core = mm(linalg::qr(b, out, r, false).r, tr(linalg::qr(c, in, r, false).r, r, r), r, r, r);
  for (double& x : core) x *= s;
  return linalg::singular_values(core, r, r);
}

double effective_rank(const std::vector<double>& sv) {
  double total = 0;
  for (double x : sv) total += std::abs(x);
  if (total <= 0) return 0;
  double h = 0;
  for (double x : sv) {
    const double p = std::abs(x) / total;
    if (p > 0) h -= p * std::log(p);
  }
  return std::exp(h);
}

double stable_rank(const std::vector<double>& sv) {
  double sq = 0, mx = 0;
  for (double x : sv) {
    sq += x * x;
    mx = std::max(mx, std::abs(x));
  }
  return mx > 0 ? sq / (mx * mx) : 0;
}

std::vector<double> adapter_delta_singular_values(ChainAdapter& ad) {
  const int64_t in = ad.in_features(), out = ad.out_features(), r = ad.rank();
  Mat c = host(ad.a());  // C = A·W₁⋯Wₙ  [in, r]
  for (const Tensor& w : ad.mixers()) c = mm(c, host(w), in, r, r);
  return lowrank_singular_values(host(ad.b()), c, out, in, r, ad.scale());
}

// ---- rows as JSON -------------------------------------------------------------------------------
std::string gradflow_row_json(const GradFlowRow& row) {
  nlohmann::ordered_json j;
  j["step"] = row.step;
  j["module"] = row.module;
  j["loss"] = row.loss;
  for (const auto& [k, v] : row.extra) j[k] = v;
  j["grad_norm_A"] = row.grad_norm_A;
  j["grad_norm_W"] = row.grad_norm_W;
  j["grad_norm_B"] = row.grad_norm_B;
  j["grad_norm_P"] = row.grad_norm_P ? nlohmann::ordered_json(*row.grad_norm_P) : nlohmann::ordered_json(nullptr);
  j["update_norm_A"] = row.update_norm_A;
  j["update_norm_W"] = row.update_norm_W;
  j["update_norm_B"] = row.update_norm_B;
  j["update_norm"] = row.update_norm;
  j["delta_w_norm"] = row.delta_w_norm;
  j["sv"] = row.sv;
  j["eff_rank"] = row.eff_rank;
  j["stable_rank"] = row.stable_rank;
  j["update_cos"] = row.update_cos ? nlohmann::ordered_json(*row.update_cos) : nlohmann::ordered_json(nullptr);
  j["input_term_rms"] = row.input_term_rms ? nlohmann::ordered_json(*row.input_term_rms)
                                           : nlohmann::ordered_json(nullptr);
  j["bias_term_norm"] = row.bias_term_norm ? nlohmann::ordered_json(*row.bias_term_norm)
                                           : nlohmann::ordered_json(nullptr);
  return j.dump();
}

// ---- AdapterMonitor -----------------------------------------------------------------------------
AdapterMonitor::AdapterMonitor(ChainAdapter& adapter, std::string module, int top_k)
    : ad_(adapter), module_(std::move(module)), top_k_(std::max(0, top_k)) {}

std::vector<Tensor> AdapterMonitor::factors() const {
  std::vector<Tensor> f{ad_.a()};
  for (const Tensor& w : ad_.mixers()) f.push_back(w);
  f.push_back(ad_.b());
  return f;
}

void AdapterMonitor::before_step() {
  pending_ = GradFlowRow{};
  pending_.module = module_;
  pending_.grad_norm_A = frobenius_norm(ad_.a().grad());
  pending_.grad_norm_B = frobenius_norm(ad_.b().grad());
  for (const Tensor& w : ad_.mixers()) pending_.grad_norm_W.push_back(frobenius_norm(w.grad()));
  if (!ad_.mixers().empty()) pending_.grad_norm_P = frobenius_norm(ad_.probe().grad_product);
  const ChainAdapter::TermSizes terms = ad_.measured_terms();
  if (terms.rows > 0) {
    pending_.input_term_rms = terms.input_rms;
    if (!ad_.biases().empty()) pending_.bias_term_norm = terms.bias_norm;
  }
  ad_.measure_terms(false);
  before_.clear();
  for (const Tensor& t : factors()) before_.push_back(host(t));
  have_before_ = true;
}

GradFlowRow AdapterMonitor::after_step(bool full) {
  if (!have_before_) throw Error("AdapterMonitor(" + module_ + "): after_step without before_step");
  have_before_ = false;
  const std::vector<Tensor> f = factors();
  std::vector<double> update;
  std::vector<double> norms;
  for (size_t i = 0; i < f.size(); ++i) {
    const Mat now = host(f[i]);
    const Mat d = sub(now, before_[i]);
    norms.push_back(norm2(d));
    update.insert(update.end(), d.begin(), d.end());
  }
  GradFlowRow row = std::move(pending_);
  pending_ = GradFlowRow{};
  const double un = norm2(update), pn = norm2(prev_update_);
  if (un > 0 && pn > 0 && prev_update_.size() == update.size()) {
    double dot = 0;
    for (size_t i = 0; i < update.size(); ++i) dot += update[i] * prev_update_[i];
    row.update_cos = dot / (un * pn);
  }
  prev_update_ = std::move(update);
  if (!full) return GradFlowRow{};
  row.update_norm = un;
  row.update_norm_A = norms.front();
  row.update_norm_B = norms.back();
  row.update_norm_W.assign(norms.begin() + 1, norms.end() - 1);
  row.delta_w_norm = frobenius_norm(ad_.delta_weight());
  const std::vector<double> sv = adapter_delta_singular_values(ad_);
  row.eff_rank = effective_rank(sv);
  row.stable_rank = stable_rank(sv);
  row.sv.assign(sv.begin(), sv.begin() + std::min<int64_t>(top_k_, static_cast<int64_t>(sv.size())));
  return row;
}

// ---- GradFlowLogger -----------------------------------------------------------------------------
GradFlowLogger::GradFlowLogger(const AdapterSet& set, const std::string& path, int every, int top_k,
                               const std::string& modules)
    : path_(path), every_(std::max(1, every)) {
  std::regex re;
  try {
    re = std::regex(modules);
  } catch (const std::regex_error& e) {
    throw FormatError("module filter '" + modules + "' is not a regular expression (" + e.what() + ")");
  }
  for (const auto& a : set.adapters)
    if (modules.empty() || std::regex_search(a.module, re)) monitors_.emplace_back(*a.adapter, a.module, top_k);
  if (monitors_.empty() && !modules.empty())
    throw FormatError("module filter '" + modules + "' matches none of the " + std::to_string(set.adapters.size()) +
                      " adapted modules" +
                      (set.adapters.empty() ? "" : " (the first is " + set.adapters[0].module + ")"));
  if (!path_.empty()) {
    f_ = std::fopen((path_ + ".tmp").c_str(), "w");
    if (!f_) throw FormatError("cannot write gradflow metrics '" + path_ + ".tmp': " + std::strerror(errno));
  }
}

GradFlowLogger::~GradFlowLogger() {
  try {
    close();
  } catch (...) {  // a destructor must not throw; close() reports errors when called directly
  }
}

void GradFlowLogger::before_forward(int64_t step) {
  if (!logs(step)) return;
  for (auto& m : monitors_) m.adapter().measure_terms(true);
}

void GradFlowLogger::before_step(int64_t step) {
  if (!started_) {  // a resumed run continues its file: PATH's rows of the steps before this one
    started_ = true;
    std::error_code ec;
    if (f_ && step > 0 && std::filesystem::is_regular_file(path_, ec)) {
      std::ifstream in(path_);
      for (std::string line; std::getline(in, line);) {
        const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
            row["step"].get<int64_t>() < step)
          std::fprintf(f_, "%s\n", line.c_str());
      }
    }
  }
  for (auto& m : monitors_) m.before_step();
}

std::vector<GradFlowRow> GradFlowLogger::after_step(int64_t step, double loss,
                                                    const std::vector<std::pair<std::string, double>>& extra) {
  const bool full = logs(step);
  std::vector<GradFlowRow> rows;
  for (auto& m : monitors_) {
    GradFlowRow row = m.after_step(full);
    if (!full) continue;
    row.step = step;
    row.loss = loss;
    row.extra = extra;
    if (f_) {
      const std::string line = gradflow_row_json(row) + "\n";
      if (std::fwrite(line.data(), 1, line.size(), f_) != line.size())
        throw FormatError("gradflow metrics '" + path_ + ".tmp': write failed");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void GradFlowLogger::close() {
  if (!f_) return;
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || std::rename((path_ + ".tmp").c_str(), path_.c_str()) != 0)
    throw FormatError("cannot finish gradflow metrics '" + path_ + "': " + std::strerror(errno));
}

// ---- the preconditioner check -------------------------------------------------------------------
std::vector<PrecondRow> check_preconditioner(ChainAdapter& ad, const std::vector<double>& lrs) {
  const auto& mixers = ad.mixers();
  const int64_t n = static_cast<int64_t>(mixers.size()), r = ad.rank();
  if (n < 1) throw Error("check_preconditioner: the adapter has no mixers (LoRA); needs MoSLoRA or LinChain");
  if (!ad.probe().grad_product.defined()) throw Error("check_preconditioner: no ∂L/∂P yet (run a backward first)");
  std::vector<Mat> w, g;
  for (const Tensor& m : mixers) {
    if (!m.grad().defined()) throw Error("check_preconditioner: a mixer has no gradient (run a backward first)");
    w.push_back(host(m));
    g.push_back(host(m.grad()));
  }
  const Mat gp = host(ad.probe().grad_product);
  // Prefixes L[i] = W₁⋯Wᵢ₋₁ and suffixes R[i] = Wᵢ₊₁⋯Wₙ (0-based i).
  std::vector<Mat> pre(static_cast<size_t>(n)), suf(static_cast<size_t>(n));
  pre[0] = eye(r);
  for (int64_t i = 1; i < n; ++i)
    pre[static_cast<size_t>(i)] = mm(pre[static_cast<size_t>(i - 1)], w[static_cast<size_t>(i - 1)], r, r, r);
  suf[static_cast<size_t>(n - 1)] = eye(r);
  for (int64_t i = n - 2; i >= 0; --i)
    suf[static_cast<size_t>(i)] = mm(w[static_cast<size_t>(i + 1)], suf[static_cast<size_t>(i + 1)], r, r, r);
  const Mat p0 = mm(pre[static_cast<size_t>(n - 1)], w[static_cast<size_t>(n - 1)], r, r, r);
  // The mixers' gradients must be the probe's split of G (one forward per backward).
  Mat pred1(static_cast<size_t>(r * r), 0.0);  // Σᵢ LᵢLᵢᵀ G RᵢᵀRᵢ (ΔP_pred = −η·pred1)
  for (int64_t i = 0; i < n; ++i) {
    const Mat& li = pre[static_cast<size_t>(i)];
    const Mat& ri = suf[static_cast<size_t>(i)];
    const Mat split = mm(mm(tr(li, r, r), gp, r, r, r), tr(ri, r, r), r, r, r);  // Lᵢᵀ G Rᵢᵀ
    const double gn = norm2(g[static_cast<size_t>(i)]);
    if (norm2(sub(split, g[static_cast<size_t>(i)])) > 1e-3 * std::max(gn, 1e-30) && gn > 0)
      throw Error("check_preconditioner: mixer " + std::to_string(i + 1) +
                  "'s gradient is not Lᵀ·∂L/∂P·Rᵀ (was the module used more than once per backward?)");
    const Mat term = mm(mm(mm(li, tr(li, r, r), r, r, r), gp, r, r, r), mm(tr(ri, r, r), ri, r, r, r), r, r, r);
    for (size_t k = 0; k < pred1.size(); ++k) pred1[k] += term[k];
  }
  std::vector<PrecondRow> rows;
  for (double lr : lrs) {
    Mat p1 = eye(r);
    for (int64_t i = 0; i < n; ++i) {
      Mat wi = w[static_cast<size_t>(i)];
      for (size_t k = 0; k < wi.size(); ++k) wi[k] -= lr * g[static_cast<size_t>(i)][k];
      p1 = mm(p1, wi, r, r, r);
    }
    const Mat actual = sub(p1, p0);
    Mat pred(pred1.size()), plain(gp.size());
    for (size_t k = 0; k < pred.size(); ++k) {
      pred[k] = -lr * pred1[k];
      plain[k] = -lr * gp[k];
    }
    PrecondRow row;
    row.lr = lr;
    row.actual_norm = norm2(actual);
    row.pred_norm = norm2(pred);
    row.rel_err = row.actual_norm > 0 ? norm2(sub(actual, pred)) / row.actual_norm : 0;
    row.chain_vs_plain = row.pred_norm > 0 ? norm2(sub(pred, plain)) / row.pred_norm : 0;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace cg::nn
