// tests/test_gradflow.cpp — gradient-flow measurements (singular values, effective/stable
// rank, the low-rank ΔW spectrum), the adapter monitor and JSONL logger (LoRA without
// mixers, the B = 0 "wake-up" of the mixers), the preconditioner check, and the
// teacher–student task.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/linalg.h"
#include "engine/rng.h"
#include "engine/tape.h"
#include "nn/adapters.h"
#include "models/study/gradflow.h"
#include "nn/optim.h"
#include "models/study/teacher.h"

using namespace cg;
using namespace cg::nn;

namespace {

TeacherConfig small_teacher(int64_t d = 16) {
  TeacherConfig c;
  c.in = d;
  c.out = d;
  c.teacher_rank = 3;
  c.batch = 32;
  c.heldout = 128;
  return c;
}

AdapterConfig adapter_cfg(AdapterKind kind, int chain = 3, MixerInit init = MixerInit::Kaiming) {
  AdapterConfig c;
  c.kind = kind;
  c.rank = 4;
  c.chain = chain;
  c.alpha = 8;
  c.targets = {"q"};
  c.init = init;
  return c;
}

// Trains `steps` AdamW steps, then leaves the gradients of one more batch in place.
void train_then_backward(TeacherTask& task, AdapterSet& set, int steps, double lr = 1e-2) {
  OptimConfig oc;
  oc.lr = lr;
  oc.clip = 0;
  Optimizer opt(*set.store, oc);
  for (int i = 0; i < steps; ++i) {
    set.store->zero_grad();
    backward(task.train_loss());
    opt.step();
  }
  set.store->zero_grad();
  backward(task.train_loss());
}

}  // namespace

TEST_CASE("gradflow: singular values of hand cases") {
  // [[3,0],[4,5]]: MᵀM = [[25,20],[20,25]], eigenvalues 45 and 5.
  auto s = linalg::singular_values({3, 0, 4, 5}, 2, 2);
  REQUIRE(s.size() == 2);
  CHECK(s[0] == doctest::Approx(std::sqrt(45.0)).epsilon(1e-12));
  CHECK(s[1] == doctest::Approx(std::sqrt(5.0)).epsilon(1e-12));
  // Rectangular, row-major [[3,2,2],[2,3,−2]]: σ = 5, 3.
  s = singular_values(Tensor::from({3, 2, 2, 2, 3, -2}, {2, 3}, DType::F64));
  REQUIRE(s.size() == 2);
  CHECK(s[0] == doctest::Approx(5.0).epsilon(1e-12));
  CHECK(s[1] == doctest::Approx(3.0).epsilon(1e-12));
  // Its transpose [3, 2] has the same values.
  s = linalg::singular_values({3, 2, 2, 3, 2, -2}, 3, 2);
  CHECK(s[0] == doctest::Approx(5.0).epsilon(1e-12));
  CHECK(s[1] == doctest::Approx(3.0).epsilon(1e-12));
  CHECK_THROWS_AS(linalg::singular_values({1, 2, 3}, 2, 2), ShapeError);
}

TEST_CASE("gradflow: effective and stable rank of known matrices") {
  const int64_t n = 6;
  std::vector<double> eye(n * n, 0.0), outer(n * n);
  for (int64_t i = 0; i < n; ++i) eye[static_cast<size_t>(i * n + i)] = 1;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) outer[static_cast<size_t>(i * n + j)] = (i + 1.0) * (j - 2.5);
  auto se = linalg::singular_values(eye, n, n);
  CHECK(effective_rank(se) == doctest::Approx(6.0).epsilon(1e-12));
  CHECK(stable_rank(se) == doctest::Approx(6.0).epsilon(1e-12));
  auto so = linalg::singular_values(outer, n, n);
  CHECK(effective_rank(so) == doctest::Approx(1.0).epsilon(1e-9));
  CHECK(stable_rank(so) == doctest::Approx(1.0).epsilon(1e-9));
  // σ = (2, 1): p = (2/3, 1/3), exp(H) = 1.8899…; stable rank 5/4.
  CHECK(effective_rank({2, 1}) ==
        doctest::Approx(std::exp(-(2.0 / 3) * std::log(2.0 / 3) - (1.0 / 3) * std::log(1.0 / 3))));
  CHECK(stable_rank({2, 1}) == doctest::Approx(1.25));
  CHECK(effective_rank({0, 0, 0}) == 0.0);
  CHECK(stable_rank({0, 0}) == 0.0);
}

TEST_CASE("gradflow: low-rank spectrum equals the SVD of the full product") {
  Rng rng(11);
  for (auto [out, in, r] : {std::tuple<int64_t, int64_t, int64_t>{20, 12, 4}, {3, 9, 5}, {7, 7, 7}}) {
    const auto b = rand_normal({out, r}, 0, 1, rng, DType::F64).to_f64_vector();
    const auto c = rand_normal({in, r}, 0, 1, rng, DType::F64).to_f64_vector();
    std::vector<double> full(static_cast<size_t>(out * in), 0.0);
    for (int64_t i = 0; i < out; ++i)
      for (int64_t j = 0; j < in; ++j)
        for (int64_t k = 0; k < r; ++k)
          full[static_cast<size_t>(i * in + j)] +=
              0.5 * b[static_cast<size_t>(i * r + k)] * c[static_cast<size_t>(j * r + k)];
    const auto ref = linalg::singular_values(full, out, in);
    const auto low = lowrank_singular_values(b, c, out, in, r, 0.5);
    for (size_t i = 0; i < std::min(ref.size(), low.size()); ++i)
      CHECK(low[i] == doctest::Approx(ref[i]).epsilon(1e-10));
    for (size_t i = ref.size(); i < low.size(); ++i) CHECK(std::abs(low[i]) < 1e-10);
  }
  // An adapter's spectrum against the SVD of delta_weight() (non-zero B).
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LinChain, 2), 5);
  ChainAdapter& ad = *set.adapters[0].adapter;
  Rng rb(3);
  Tensor b = ad.b();
  b.copy_from(rand_normal({b.dim(0), b.dim(1)}, 0, 1, rb));
  const auto ref = singular_values(ad.delta_weight());
  const auto low = adapter_delta_singular_values(ad);
  REQUIRE(low.size() == 4);
  for (size_t i = 0; i < low.size(); ++i) CHECK(low[i] == doctest::Approx(ref[i]).epsilon(1e-5));
}

TEST_CASE("gradflow: mixers wake up after B leaves zero") {
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LinChain, 3), 1);
  ChainAdapter& ad = *set.adapters[0].adapter;
  AdapterMonitor mon(ad, "teacher.q_proj");
  OptimConfig oc;
  oc.name = "sgd";
  oc.lr = 0.1;
  oc.clip = 0;
  Optimizer opt(*set.store, oc);
  std::vector<GradFlowRow> rows;
  for (int step = 0; step < 2; ++step) {
    set.store->zero_grad();
    backward(task.train_loss());
    mon.before_step();
    opt.step();
    rows.push_back(mon.after_step());
  }
  // Step 0: B = 0, so ∂L/∂P = s·(xA)ᵀ·gy·B = 0, the mixers and A get nothing; only B moves.
  CHECK(rows[0].grad_norm_B > 0);
  CHECK(rows[0].grad_norm_A == 0.0);
  REQUIRE(rows[0].grad_norm_W.size() == 3);
  for (double g : rows[0].grad_norm_W) CHECK(g == 0.0);
  REQUIRE(rows[0].grad_norm_P.has_value());
  CHECK(*rows[0].grad_norm_P == 0.0);
  CHECK(rows[0].update_norm_B > 0);
  CHECK(rows[0].update_norm_A == 0.0);
  CHECK(rows[0].delta_w_norm > 0);
  CHECK(!rows[0].update_cos.has_value());
  // Step 1: B ≠ 0, every factor has a gradient and moves.
  CHECK(rows[1].grad_norm_A > 0);
  for (double g : rows[1].grad_norm_W) CHECK(g > 0);
  CHECK(*rows[1].grad_norm_P > 0);
  for (double u : rows[1].update_norm_W) CHECK(u > 0);
  REQUIRE(rows[1].update_cos.has_value());
  CHECK(std::abs(*rows[1].update_cos) <= 1.0 + 1e-12);
  // ‖ΔW‖ after the step equals the spectrum's norm.
  double sq = 0;
  for (double s : adapter_delta_singular_values(ad)) sq += s * s;
  CHECK(std::sqrt(sq) == doctest::Approx(rows[1].delta_w_norm).epsilon(1e-5));
}

TEST_CASE("gradflow: LoRA has no mixers and no P") {
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LoRA), 2);
  ChainAdapter& ad = *set.adapters[0].adapter;
  train_then_backward(task, set, 2);
  AdapterMonitor mon(ad, "m");
  mon.before_step();
  const GradFlowRow row = mon.after_step();  // nothing changed in between
  CHECK(row.grad_norm_W.empty());
  CHECK(!row.grad_norm_P.has_value());
  CHECK(row.grad_norm_A > 0);
  CHECK(row.grad_norm_B > 0);
  CHECK(row.update_norm == 0.0);
  CHECK(row.eff_rank > 0);
  const auto j = nlohmann::json::parse(gradflow_row_json(row));
  CHECK(j["grad_norm_P"].is_null());
  CHECK(j["grad_norm_W"].is_array());
  CHECK(j["grad_norm_W"].empty());
  CHECK_THROWS_AS(check_preconditioner(ad, {1e-2}), Error);
  CHECK_THROWS_AS(AdapterMonitor(ad, "m").after_step(), Error);
}

TEST_CASE("gradflow: preconditioner prediction is first order in the learning rate") {
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LinChain, 3), 4);
  ChainAdapter& ad = *set.adapters[0].adapter;
  train_then_backward(task, set, 15);
  const auto rows = check_preconditioner(ad, {1e-2, 1e-3});
  REQUIRE(rows.size() == 2);
  MESSAGE("linchain n=3: rel_err(1e-2) = " << rows[0].rel_err << ", rel_err(1e-3) = " << rows[1].rel_err
                                           << ", chain_vs_plain = " << rows[0].chain_vs_plain);
  CHECK(rows[0].rel_err > 0);
  CHECK(rows[0].actual_norm > 0);
  CHECK(rows[1].rel_err < 0.2 * rows[0].rel_err);
  CHECK(rows[0].chain_vs_plain > 0.1);  // kaiming mixers are far from one plain factor
  // The check changes nothing.
  const auto again = check_preconditioner(ad, {1e-2});
  CHECK(again[0].rel_err == rows[0].rel_err);

  // MoSLoRA (one mixer): ΔP = −ηG exactly, the chain is the plain factor.
  TeacherTask t2(small_teacher());
  AdapterSet s2 = attach_adapters(t2.linears(), adapter_cfg(AdapterKind::MoSLoRA), 4);
  train_then_backward(t2, s2, 5);
  const auto r2 = check_preconditioner(*s2.adapters[0].adapter, {1e-2});
  CHECK(r2[0].rel_err < 1e-10);
  CHECK(r2[0].chain_vs_plain < 1e-6);
}

TEST_CASE("gradflow: identity mixers scale the plain step by n") {
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LinChain, 3, MixerInit::Identity), 6);
  ChainAdapter& ad = *set.adapters[0].adapter;
  Rng rb(8);
  Tensor b = ad.b();
  b.copy_from(rand_normal({b.dim(0), b.dim(1)}, 0, 0.3, rb));
  set.store->zero_grad();
  backward(task.train_loss());
  // Lᵢ = Rᵢ = I: ΔP_pred = −3ηG, so ‖ΔP_pred − (−ηG)‖/‖ΔP_pred‖ = 2/3.
  const auto rows = check_preconditioner(ad, {1e-3});
  CHECK(rows[0].chain_vs_plain == doctest::Approx(2.0 / 3.0).epsilon(1e-6));
  CHECK(rows[0].rel_err < 1e-2);
}

TEST_CASE("gradflow: logger writes parseable JSONL rows every K steps") {
  const std::string path = "build/tests/gradflow_test.jsonl";
  std::remove(path.c_str());
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LinChain, 2), 9);
  OptimConfig oc;
  oc.lr = 1e-2;
  oc.clip = 0;
  Optimizer opt(*set.store, oc);
  {
    GradFlowLogger log(set, path, /*every=*/2, /*top_k=*/3);
    log.set_last_step(4);
    size_t written = 0;
    for (int64_t step = 0; step < 5; ++step) {
      set.store->zero_grad();
      const Tensor loss = task.train_loss();
      backward(loss);
      log.before_step(step);
      opt.step();
      written += log.after_step(step, loss.item(), {{"eval_loss", task.heldout_loss()}}).size();
    }
    CHECK(written == 3);
    std::ifstream pending(path);
    CHECK(!pending.good());  // still PATH.tmp until close
    log.close();
  }
  std::ifstream in(path);
  REQUIRE(in.good());
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["step"] == 0);
  CHECK(rows[1]["step"] == 2);
  CHECK(rows[2]["step"] == 4);
  for (const auto& r : rows) {
    CHECK(r["module"] == "teacher.q_proj");
    CHECK(r["loss"].is_number());
    CHECK(r["eval_loss"].is_number());
    for (const char* k : {"grad_norm_A", "grad_norm_B", "update_norm_A", "update_norm_B", "delta_w_norm", "eff_rank",
                          "stable_rank", "grad_norm_P"})
      CHECK(r[k].is_number());
    CHECK(r["grad_norm_W"].size() == 2);
    CHECK(r["update_norm_W"].size() == 2);
    CHECK(r["sv"].size() == 3);
  }
  CHECK(rows[0]["update_cos"].is_null());
  CHECK(rows[1]["update_cos"].is_number());    // step 1 was measured, unlogged
  CHECK(rows[0]["input_term_rms"].is_null());  // this loop never calls before_forward
  std::remove(path.c_str());
}

TEST_CASE("teacher: spectrum, target and initial loss") {
  const auto g = teacher_spectrum("geometric:0.5", 3, 2.0);
  CHECK(g[1] == doctest::Approx(g[0] * 0.5));
  CHECK(g[2] == doctest::Approx(g[0] * 0.25));
  CHECK(g[0] * g[0] + g[1] * g[1] + g[2] * g[2] == doctest::Approx(4.0));
  const auto f = teacher_spectrum("flat", 4, 2.0);
  for (double x : f) CHECK(x == doctest::Approx(1.0));
  CHECK_THROWS_AS(teacher_spectrum("geometric:2", 3, 1), FormatError);
  CHECK_THROWS_AS(teacher_spectrum("geometric:", 3, 1), FormatError);
  CHECK_THROWS_AS(teacher_spectrum("steep", 3, 1), FormatError);
  TeacherConfig bad = small_teacher();
  bad.teacher_rank = 17;
  CHECK_THROWS_AS(TeacherTask{bad}, FormatError);

  TeacherTask task(small_teacher(24));
  const auto sv = singular_values(task.target_delta());
  for (size_t i = 0; i < 3; ++i) CHECK(sv[i] == doctest::Approx(task.spectrum()[i]).epsilon(1e-5));
  CHECK(sv[3] < 1e-5);
  // Without an adapter the student is W₀: MSE ≈ ‖ΔW*‖²/out = 1 on Gaussian inputs.
  CHECK(task.heldout_loss() == doctest::Approx(1.0).epsilon(0.25));
  CHECK(task.target_error() == 1.0);
  // Seeded: the same config gives the same first training loss.
  TeacherTask again(small_teacher(24));
  CHECK(task.train_loss().item() == again.train_loss().item());
}

TEST_CASE("teacher: a LinChain student learns the target") {
  TeacherTask task(small_teacher());
  AdapterSet set = attach_adapters(task.linears(), adapter_cfg(AdapterKind::LinChain, 2), 3);
  const double before = task.heldout_loss();
  train_then_backward(task, set, 150, 2e-2);
  const double after = task.heldout_loss();
  MESSAGE("held-out loss " << before << " -> " << after << ", target error " << task.target_error());
  CHECK(after < 0.05 * before);
  CHECK(task.target_error() < 0.3);
}
