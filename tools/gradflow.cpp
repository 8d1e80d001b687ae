// tools/gradflow.cpp — gradient-flow runs of the adapters: trains an adapter on a task and
// logs, per step and adapted module, factor gradient norms, update norms, the ΔW spectrum
// and update cosines (nn/gradflow.h) to JSONL; or checks the chain's preconditioner formula.
// Tasks plug in through GradFlowTask: today the built-in teacher–student layer
// (--task teacher, nn/teacher.h). A fine-tune of the real model (--model/--data/--text) and
// the one-batch gradient dump (--dump-grads) are meant to be another GradFlowTask and one
// more mode beside run_training / run_check; they are not built yet.
// Exit status: 0 done, 1 the loss diverged (or an internal error), 2 bad flags or input.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tape.h"
#include "nn/adapters.h"
#include "nn/gradflow.h"
#include "nn/optim.h"
#include "nn/teacher.h"
#include "tools/common/cli.h"
#include "tools/common/progress.h"

namespace {

using namespace cg;

// ---- the task boundary ------------------------------------------------------------------------
// What run_training / run_check need from a task: the modules to adapt, a training loss on
// the tape, and evaluation fields for the logs (the first one, when present, is the metric
// --target-loss watches).
class GradFlowTask {
 public:
  virtual ~GradFlowTask() = default;
  virtual std::string name() const = 0;
  virtual std::vector<std::pair<std::string, nn::Linear*>> linears() = 0;
  virtual Tensor train_loss() = 0;
  virtual std::vector<std::pair<std::string, double>> evaluate() = 0;
  virtual std::string describe() const = 0;
  virtual int64_t rows_per_step() const = 0;
};

class TeacherGradFlowTask : public GradFlowTask {
 public:
  explicit TeacherGradFlowTask(const nn::TeacherConfig& cfg) : task_(cfg) {}
  std::string name() const override { return "teacher"; }
  std::vector<std::pair<std::string, nn::Linear*>> linears() override { return task_.linears(); }
  Tensor train_loss() override { return task_.train_loss(); }
  std::vector<std::pair<std::string, double>> evaluate() override {
    return {{"eval_loss", task_.heldout_loss()}, {"target_err", task_.target_error()}};
  }
  std::string describe() const override {
    const auto& c = task_.config();
    std::ostringstream s;
    s << "teacher: in " << c.in << ", out " << c.out << ", rank " << c.teacher_rank << ", spectrum " << c.spectrum
      << " (σ =";
    for (double x : task_.spectrum()) s << " " << x;
    s << "), batch " << c.batch << ", held-out " << c.heldout;
    return s.str();
  }
  int64_t rows_per_step() const override { return task_.config().batch; }

 private:
  nn::TeacherTask task_;
};

struct RunOptions {
  nn::AdapterConfig adapter;
  nn::OptimConfig optim;
  uint64_t seed = 0;  // adapter init
  int64_t steps = 400;
  int every = 10;
  int top_k = 8;
  std::string metrics, log;
  std::optional<double> target_loss;
  // --check-preconditioner
  int64_t check_at = 20;
  std::vector<double> check_lrs{1e-1, 1e-2, 1e-3, 1e-4};
};

struct Attached {
  nn::AdapterSet set;
  std::unique_ptr<nn::Optimizer> opt;
};

Attached attach(GradFlowTask& task, const RunOptions& o) {
  Attached a;
  a.set = nn::attach_adapters(task.linears(), o.adapter, o.seed);
  a.opt = std::make_unique<nn::Optimizer>(*a.set.store, o.optim);
  std::printf("%s\n", task.describe().c_str());
  std::printf("adapter %s: rank %d, mixers %d, alpha %g, init %s, %zu module(s); trainable parameters: %lld\n",
              nn::adapter_kind_name(o.adapter.kind).c_str(), o.adapter.rank, o.adapter.num_mixers(), o.adapter.alpha,
              nn::mixer_init_name(o.adapter.init).c_str(), a.set.adapters.size(),
              static_cast<long long>(a.set.trainable_params()));
  std::printf("optimizer %s: lr %g, clip %g, weight decay %g, seed %llu\n", o.optim.name.c_str(), o.optim.lr,
              o.optim.clip, o.optim.weight_decay, static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);
  return a;
}

// One optimizer step: backward of the task's loss, measurements around the step. Returns the loss.
double train_step(GradFlowTask& task, Attached& a, nn::GradFlowLogger* logger, int64_t step,
                  std::vector<std::pair<std::string, double>>* extra_out) {
  a.set.store->zero_grad();
  const Tensor loss = task.train_loss();
  backward(loss);
  const double l = loss.item();
  if (!std::isfinite(l)) return l;  // the caller reports the divergence
  if (logger) logger->before_step(step);
  const auto info = a.opt->step();
  std::vector<std::pair<std::string, double>> extra = task.evaluate();
  extra.emplace_back("lr", info.lr);
  extra.emplace_back("global_grad_norm", info.grad_norm);
  if (logger) logger->after_step(step, l, extra);
  if (extra_out) *extra_out = std::move(extra);
  return l;
}

int run_training(GradFlowTask& task, const RunOptions& o) {
  Attached a = attach(task, o);
  nn::GradFlowLogger logger(a.set, o.metrics, o.every, o.top_k);
  logger.set_last_step(o.steps - 1);
  tools::MetricsFile log(o.log);
  tools::Progress progress(o.steps, std::max(1, o.every) * 10);
  std::optional<int64_t> reached;
  double loss = 0, metric = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    std::vector<std::pair<std::string, double>> extra;
    loss = train_step(task, a, &logger, step, &extra);
    if (!std::isfinite(loss)) {
      progress.finish();
      logger.close();
      std::printf("diverged: loss is not finite at step %lld (lr too high?)\n", static_cast<long long>(step));
      return 1;
    }
    metric = extra.empty() ? loss : extra.front().second;
    if (o.target_loss && !reached && metric < *o.target_loss) reached = step + 1;
    nlohmann::json row{{"step", step}, {"loss", loss}};
    for (const auto& [k, v] : extra) row[k] = v;
    log.write(row);
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress.update(step + 1, loss, el > 0 ? static_cast<double>(task.rows_per_step() * (step + 1)) / el : 0.0);
  }
  progress.finish();
  logger.close();
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("final: train loss %.6g, %s %.6g after %lld steps (%.3f ms/step)\n", loss,
              task.evaluate().front().first.c_str(), metric, static_cast<long long>(o.steps),
              o.steps > 0 ? 1e3 * el / static_cast<double>(o.steps) : 0.0);
  for (const auto& [k, v] : task.evaluate()) std::printf("final %s: %.6g\n", k.c_str(), v);
  if (o.target_loss) {
    if (reached)
      std::printf("target: %s < %g first after %lld steps\n", task.evaluate().front().first.c_str(), *o.target_loss,
                  static_cast<long long>(*reached));
    else
      std::printf("target: %s < %g not reached in %lld steps\n", task.evaluate().front().first.c_str(),
                  *o.target_loss, static_cast<long long>(o.steps));
  }
  return 0;
}

int run_check(GradFlowTask& task, const RunOptions& o) {
  if (o.adapter.num_mixers() < 1)
    throw FormatError("--check-preconditioner needs mixers: use --adapter moslora or linchain");
  Attached a = attach(task, o);
  for (int64_t step = 0; step < o.check_at; ++step)
    if (!std::isfinite(train_step(task, a, nullptr, step, nullptr)))
      throw Error("loss is not finite at step " + std::to_string(step) + " before the check (lr too high?)");
  a.set.store->zero_grad();
  const Tensor loss = task.train_loss();
  backward(loss);
  std::printf("preconditioner check after %lld %s steps (B = 0 at init gives ∂L/∂P = 0 until B moves);\n"
              "SGD on the mixers only (A, B held fixed), in double: Wᵢ ← Wᵢ − η·∂L/∂Wᵢ\n",
              static_cast<long long>(o.check_at), o.optim.name.c_str());
  for (const auto& m : a.set.adapters) {
    const auto rows = nn::check_preconditioner(*m.adapter, o.check_lrs);
    std::printf("module %s (n = %zu): ‖∂L/∂P‖ = %.4g\n", m.module.c_str(), m.adapter->mixers().size(),
                nn::frobenius_norm(m.adapter->probe().grad_product));
    std::printf("%10s  %14s  %14s  %12s  %12s\n", "eta", "rel_err", "chain_vs_plain", "|dP actual|", "|dP pred|");
    for (const auto& r : rows)
      std::printf("%10.1e  %14.4e  %14.4e  %12.4e  %12.4e\n", r.lr, r.rel_err, r.chain_vs_plain, r.actual_norm,
                  r.pred_norm);
  }
  std::printf("rel_err = ‖ΔP_actual − ΔP_pred‖/‖ΔP_actual‖ (second order: ∝ η); "
              "chain_vs_plain = ‖ΔP_pred − (−ηG)‖/‖ΔP_pred‖\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Gradient flow through LoRA / MoSLoRA / LinChain adapters: per-factor gradient norms, updates, "
               "ΔW spectrum, and the chain-as-preconditioner check.",
               "gradflow"};
  RunOptions o;
  nn::TeacherConfig tc;
  std::string task = "teacher", adapter = "linchain", init = "kaiming", targets = "q";
  double alpha = 0;
  std::string check_lrs;
  bool check = false;
  double target_loss = NAN;
  o.adapter.rank = 8;
  o.optim.lr = 1e-2;
  o.optim.clip = 0;
  app.add_option("--task", task, "task: teacher")->capture_default_str();
  app.add_option("--adapter", adapter, "lora | moslora | linchain")->capture_default_str();
  app.add_option("--rank", o.adapter.rank, "adapter rank r")->capture_default_str();
  app.add_option("--chain", o.adapter.chain, "LinChain's number of r×r factors n")->capture_default_str();
  app.add_option("--alpha", alpha, "alpha (scale s = alpha/r); default 2·rank");
  app.add_option("--init", init, "mixer init: kaiming | identity | orthogonal")->capture_default_str();
  app.add_option("--optimizer", o.optim.name, "adamw | sgd")->capture_default_str();
  app.add_option("--lr", o.optim.lr, "learning rate (constant)")->capture_default_str();
  app.add_option("--clip", o.optim.clip, "global grad-norm clipping (≤ 0: off)")->capture_default_str();
  app.add_option("--weight-decay", o.optim.weight_decay, "decoupled weight decay")->capture_default_str();
  app.add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
  app.add_option("--batch", tc.batch, "rows per training batch")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the adapter init and the training data stream")->capture_default_str();
  app.add_option("--every", o.every, "log every K steps (and the last)")->capture_default_str();
  app.add_option("--top-k", o.top_k, "singular values of ΔW per row")->capture_default_str();
  app.add_option("--metrics", o.metrics, "per-module gradient-flow JSONL (one row per logged step and module)");
  app.add_option("--log", o.log, "per-step JSONL: step, loss, eval fields, lr");
  app.add_option("--target-loss", target_loss, "report the first step where the held-out loss is below X");
  app.add_flag("--check-preconditioner", check, "print the preconditioner check table and exit");
  app.add_option("--check-at", o.check_at, "steps to train before the check (B = 0 at init)")->capture_default_str();
  app.add_option("--check-lrs", check_lrs, "comma-separated η list for the check (default 1e-1,1e-2,1e-3,1e-4)");
  app.add_option("--in", tc.in, "teacher: input features")->capture_default_str();
  app.add_option("--out", tc.out, "teacher: output features")->capture_default_str();
  app.add_option("--teacher-rank", tc.teacher_rank, "teacher: rank of ΔW*")->capture_default_str();
  app.add_option("--spectrum", tc.spectrum, "teacher: \"flat\" or \"geometric:RATIO\"")->capture_default_str();
  app.add_option("--target-norm", tc.target_norm, "teacher: ‖ΔW*‖_F (default √out: initial MSE ≈ 1)");
  app.add_option("--teacher-seed", tc.teacher_seed, "teacher: seed of W₀ and ΔW*")->capture_default_str();
  app.add_option("--heldout", tc.heldout, "teacher: rows of the held-out batch")->capture_default_str();
  return tools::run_tool(app, argc, argv, [&] {
    if (task != "teacher") throw FormatError("unknown --task '" + task + "' (expected teacher)");
    o.adapter.kind = nn::parse_adapter_kind(adapter);
    o.adapter.init = nn::parse_mixer_init(init);
    o.adapter.targets = nn::parse_targets(targets);
    o.adapter.alpha = alpha != 0 ? alpha : 2.0 * o.adapter.rank;
    o.adapter.validate();
    if (o.steps < 0 || o.every < 1 || o.check_at < 0) throw FormatError("--steps, --check-at must be ≥ 0, --every ≥ 1");
    if (!std::isnan(target_loss)) o.target_loss = target_loss;
    if (!check_lrs.empty()) {
      o.check_lrs.clear();
      std::stringstream ss(check_lrs);
      std::string item;
      while (std::getline(ss, item, ',')) {
        size_t pos = 0;
        double v = 0;
        try {
          v = std::stod(item, &pos);
        } catch (const std::exception&) {
          pos = 0;
        }
        if (pos == 0 || pos != item.size() || !(v > 0)) throw FormatError("bad --check-lrs entry '" + item + "'");
        o.check_lrs.push_back(v);
      }
    }
    tc.data_seed = o.seed + 1;
    TeacherGradFlowTask t(tc);
    return check ? run_check(t, o) : run_training(t, o);
  });
}
