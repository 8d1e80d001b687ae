// tools/gradflow.cpp — gradient-flow runs of the adapters: trains an adapter on a task and
// logs, per step and adapted module, factor gradient norms, update norms, the ΔW spectrum
// and update cosines (models/study/gradflow.h) to JSONL; or checks the chain's preconditioner formula.
// The teacher–student layer (--task teacher, models/study/teacher.h) trains in this file's
// loop; a real model (--model with --data, --text or --arith; the base frozen, the adapter
// from flags or --adapter-in) trains exactly as `finetune --flow` does — the same flags,
// defaults, Trainer and recorder (models/study/flow_recorder.h) — so the rows are the same.
// --check-preconditioner runs on either through GradFlowTask. --dump-grads (with --model and
// --text) runs one forward/backward of the file encoded whole and writes the loss and every
// adapter gradient under its PEFT name (models/io/adapter_file.h layout) instead of training.
// Exit status: 0 done, 1 the loss diverged (or an internal error), 2 bad flags or input.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tape.h"
#include "models/io/adapter_file.h"
#include "models/io/checkpoint.h"
#include "models/text/data.h"
#include "models/llama/llama.h"
#include "models/io/safetensors.h"
#include "models/text/tokenizer.h"
#include "nn/adapters.h"
#include "models/study/flow_recorder.h"
#include "models/study/gradflow.h"
#include "models/train/trainer.h"
#include "nn/optim.h"
#include "models/study/teacher.h"
#include "ops/ops.h"
#include "tools/common/cli.h"
#include "models/train/progress.h"
#include "tools/common/train_flags.h"

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
  // Called before each training step with its index (tasks with costly evaluations use it
  // to evaluate only on the steps that are logged).
  virtual void begin_step(int64_t /*step*/) {}
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

// A frozen base model fine-tuned through its adapters on a Dataset: the training loss
// of the next batch (the same deterministic batch order as models::Trainer: sample indices
// advance by `batch` per step under `data_seed`), and the validation loss (eval_batches
// batches) on the steps that are logged — cached in between, so evaluate() stays cheap.
class ModelGradFlowTask : public GradFlowTask {
 public:
  ModelGradFlowTask(models::LlamaModel& model, const models::Dataset& data, std::string source, int64_t batch,
                    uint64_t data_seed, int64_t eval_batches, int every, int64_t steps)
      : model_(model),
        data_(data),
        source_(std::move(source)),
        batch_(batch),
        seed_(data_seed),
        eval_batches_(eval_batches),
        every_(std::max(1, every)),
        steps_(steps) {}
  std::string name() const override { return "model"; }
  std::vector<std::pair<std::string, nn::Linear*>> linears() override { return model_.linears(); }
  void begin_step(int64_t step) override { step_ = step; }
  Tensor train_loss() override {
    models::Batch b = data_.train_batch(seed_, position_, batch_, model_.device());
    position_ += batch_;
    return model_.loss(b.ids, b.targets, b.segments);
  }
  std::vector<std::pair<std::string, double>> evaluate() override {
    if (data_.val_windows() == 0 || eval_batches_ <= 0) return {};
    const bool due = step_ < 0 || step_ % every_ == 0 || step_ == steps_ - 1;
    if (due && step_ != evaluated_at_) {
      NoGrad ng;
      double sum = 0;
      int64_t n = 0;
      for (int64_t w = 0; w < data_.val_windows() && n < eval_batches_; w += batch_, ++n) {
        models::Batch b = data_.val_batch(w, batch_, model_.device());
        sum += model_.loss(b.ids, b.targets, b.segments).item();
      }
      val_ = sum / static_cast<double>(n);
      evaluated_at_ = step_;
    }
    return {{"val_loss", val_}};
  }
  std::string describe() const override {
    std::ostringstream s;
    s << "model: " << model_.config().str() << "; data " << source_ << ": " << data_.describe() << ", batch " << batch_;
    return s.str();
  }
  int64_t rows_per_step() const override { return batch_ * data_.seq_len(); }

 private:
  models::LlamaModel& model_;
  const models::Dataset& data_;
  std::string source_;
  int64_t batch_;
  uint64_t seed_;
  int64_t eval_batches_;
  int every_;
  int64_t steps_;
  int64_t position_ = 0, step_ = -1, evaluated_at_ = -2;
  double val_ = 0;
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
  std::string check_module;  // empty: every module (teacher) / the first one (model)
  std::string adapter_in;    // start from this adapter file instead of a fresh init
  Device device = Device::CPU;
};

struct Attached {
  nn::AdapterSet set;
  std::unique_ptr<nn::Optimizer> opt;
};

Attached attach(GradFlowTask& task, const RunOptions& o) {
  Attached a;
  if (!o.adapter_in.empty()) a.set = models::load_adapter(o.adapter_in, task.linears(), o.device);
  else a.set = nn::attach_adapters(task.linears(), o.adapter, o.seed, o.device);
  a.opt = std::make_unique<nn::Optimizer>(*a.set.store, o.optim);
  const nn::AdapterConfig& c = a.set.config;
  std::printf("%s\n", task.describe().c_str());
  std::printf("adapter %s: rank %d, mixers %d, alpha %g, init %s, %zu module(s); trainable parameters: %lld%s\n",
              nn::adapter_kind_name(c.kind).c_str(), c.rank, c.num_mixers(), c.alpha,
              o.adapter_in.empty() ? nn::mixer_init_name(c.init).c_str() : ("from " + o.adapter_in).c_str(),
              a.set.adapters.size(), static_cast<long long>(a.set.trainable_params()),
              c.targets.empty() ? "" : (", targets " + nn::target_modules_csv(c.targets)).c_str());
  std::printf("optimizer %s: lr %g, clip %g, weight decay %g, seed %llu\n", o.optim.name.c_str(), o.optim.lr,
              o.optim.clip, o.optim.weight_decay, static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);
  return a;
}

// One optimizer step: backward of the task's loss, measurements around the step. Returns the loss.
double train_step(GradFlowTask& task, Attached& a, nn::GradFlowLogger* logger, int64_t step, uint64_t seed,
                  std::vector<std::pair<std::string, double>>* extra_out) {
  task.begin_step(step);
  a.set.store->zero_grad();
  if (logger) logger->before_forward(step);
  a.set.dropout_on(dropout_hash(seed, static_cast<uint64_t>(step)));  // --dropout (off when 0)
  const Tensor loss = task.train_loss();
  a.set.dropout_off();
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
  models::MetricsFile log(o.log);
  models::Progress progress(o.steps, std::max(1, o.every) * 10);
  std::optional<int64_t> reached;
  double loss = 0, metric = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    std::vector<std::pair<std::string, double>> extra;
    loss = train_step(task, a, &logger, step, o.seed, &extra);
    const size_t n_eval = extra.size() - 2;  // train_step appends lr and global_grad_norm
    if (!std::isfinite(loss)) {
      progress.finish();
      logger.close();
      std::printf("diverged: loss is not finite at step %lld (lr too high?)\n", static_cast<long long>(step));
      return 1;
    }
    // The watched metric is the task's first evaluation field (the training loss without one).
    metric = n_eval > 0 ? extra.front().second : loss;
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
  const auto fin = task.evaluate();
  const std::string metric_name = fin.empty() ? "train loss" : fin.front().first;
  std::printf("final: train loss %.6g, %s %.6g after %lld steps (%.3f ms/step)\n", loss, metric_name.c_str(), metric,
              static_cast<long long>(o.steps), o.steps > 0 ? 1e3 * el / static_cast<double>(o.steps) : 0.0);
  for (const auto& [k, v] : fin) std::printf("final %s: %.6g\n", k.c_str(), v);
  if (o.target_loss) {
    if (reached)
      std::printf("target: %s < %g first after %lld steps\n", metric_name.c_str(), *o.target_loss,
                  static_cast<long long>(*reached));
    else
      std::printf("target: %s < %g not reached in %lld steps\n", metric_name.c_str(), *o.target_loss,
                  static_cast<long long>(o.steps));
  }
  return 0;
}

// A real model: finetune's loop (models::Trainer, models::TrainLoop) with the recorder on.
int run_model_training(models::LlamaModel& model, const models::Dataset& ds, const std::string& source,
                       const RunOptions& o, const tools::RunFlags& run, const tools::FlowFlags& flow, int64_t batch,
                       int64_t accum) {
  nn::AdapterSet set = !o.adapter_in.empty() ? models::load_adapter(o.adapter_in, model.linears(), o.device)
                                             : nn::attach_adapters(model.linears(), o.adapter, o.seed, o.device);
  models::FlowOptions fo;
  fo.path = flow.path;
  fo.every = flow.every;
  fo.modules = flow.modules;
  fo.top_k = o.top_k;
  models::FlowRecorder recorder(set, fo, o.steps - 1);
  const nn::AdapterConfig& c = set.config;
  std::printf("model: %s; data %s: %s, batch %lld\n", model.config().str().c_str(), source.c_str(),
              ds.describe().c_str(), static_cast<long long>(batch));
  std::printf("adapter %s: rank %d, mixers %d, alpha %g, init %s, %zu module(s); trainable parameters: %lld\n",
              nn::adapter_kind_name(c.kind).c_str(), c.rank, c.num_mixers(), c.alpha,
              o.adapter_in.empty() ? nn::mixer_init_name(c.init).c_str() : ("from " + o.adapter_in).c_str(),
              set.adapters.size(), static_cast<long long>(set.trainable_params()));
  std::printf("optimizer %s: lr %g, warmup %lld, %s, clip %g, weight decay %g, seed %llu\n", o.optim.name.c_str(),
              o.optim.lr, static_cast<long long>(o.optim.warmup),
              o.optim.total_steps > 0 && o.optim.schedule != "constant" ? (o.optim.schedule + " decay").c_str()
                                                                        : "constant",
              o.optim.clip, o.optim.weight_decay, static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);
  models::TrainOptions to;
  to.batch = batch;
  to.accum = accum;
  to.data_seed = o.seed;
  to.observer = &recorder;
  if (!o.adapter_in.empty() && o.adapter.dropout > 0) set.config.dropout = o.adapter.dropout;
  to.adapters = &set;
  models::Trainer trainer(model, *set.store, o.optim, ds, to);
  models::TrainLoop loop(trainer, tools::loop_options(run), "gradflow");
  loop.run();
  recorder.close();
  if (!std::isfinite(loop.last_loss)) {
    std::printf("diverged: the training loss is not finite (lr too high?)\n");
    return 1;
  }
  std::printf("final: train loss %.6g, val_loss %.6g after %lld steps (%.3f ms/step); %lld gradient-flow rows\n",
              loop.last_loss, loop.last_val_loss, static_cast<long long>(loop.steps_done), loop.mean_ms,
              static_cast<long long>(recorder.rows_written()));
  return 0;
}

int run_check(GradFlowTask& task, const RunOptions& o) {
  if (o.adapter_in.empty() && o.adapter.num_mixers() < 1)
    throw FormatError("--check-preconditioner needs mixers: use --adapter moslora or linchain");
  Attached a = attach(task, o);
  if (a.set.config.num_mixers() < 1)
    throw FormatError("--check-preconditioner needs mixers: " + o.adapter_in + " is a LoRA adapter");
  // Which modules: --check-module, else every module of the teacher / the first of a model.
  std::vector<const nn::AttachedAdapter*> checked;
  for (const auto& m : a.set.adapters)
    if (o.check_module.empty() ? (task.name() == "teacher" || checked.empty()) : m.module == o.check_module)
      checked.push_back(&m);
  if (checked.empty()) throw FormatError("--check-module '" + o.check_module + "' is not an adapted module");
  for (int64_t step = 0; step < o.check_at; ++step)
    if (!std::isfinite(train_step(task, a, nullptr, step, o.seed, nullptr)))
      throw Error("loss is not finite at step " + std::to_string(step) + " before the check (lr too high?)");
  a.set.store->zero_grad();
  const Tensor loss = task.train_loss();
  backward(loss);
  std::printf(
      "preconditioner check after %lld %s steps (B = 0 at init gives ∂L/∂P = 0 until B moves);\n"
      "SGD on the mixers only (A, B held fixed), in double: Wᵢ ← Wᵢ − η·∂L/∂Wᵢ\n",
      static_cast<long long>(o.check_at), o.optim.name.c_str());
  for (const nn::AttachedAdapter* mp : checked) {
    const nn::AttachedAdapter& m = *mp;
    const auto rows = nn::check_preconditioner(*m.adapter, o.check_lrs);
    std::printf("module %s (n = %zu): ‖∂L/∂P‖ = %.4g\n", m.module.c_str(), m.adapter->mixers().size(),
                nn::frobenius_norm(m.adapter->probe().grad_product));
    std::printf("%10s  %14s  %14s  %12s  %12s\n", "eta", "rel_err", "chain_vs_plain", "|dP actual|", "|dP pred|");
    for (const auto& r : rows)
      std::printf("%10.1e  %14.4e  %14.4e  %12.4e  %12.4e\n", r.lr, r.rel_err, r.chain_vs_plain, r.actual_norm,
                  r.pred_norm);
  }
  std::printf(
      "rel_err = ‖ΔP_actual − ΔP_pred‖/‖ΔP_actual‖ (second order: ∝ η); "
      "chain_vs_plain = ‖ΔP_pred − (−ηG)‖/‖ΔP_pred‖\n");
  return 0;
}

// --dump-grads: the file encoded whole (BOS first, as evaluate does; cut to the model's
// seq_len + 1 tokens when longer), one forward and backward, and the loss plus every adapter
// gradient under its PEFT name, transposed as models::save_adapter transposes the values
// (lora_A = Aᵀ, lora_B = B, lora_AB / lora_mixer.{j} = W_{j+1}ᵀ), written atomically.
int run_dump(models::LlamaModel& model, const models::Tokenizer& tok, const std::string& text_path, const RunOptions& o,
             const std::string& out) {
  std::vector<int> ids = tok.encode(models::read_text_file(text_path), true, false);
  if (ids.size() < 2) throw FormatError("--text " + text_path + ": fewer than two tokens");
  const size_t limit = static_cast<size_t>(model.config().seq_len) + 1;
  if (ids.size() > limit) {
    std::printf("dump-grads: %s encodes to %zu tokens; truncated to the model's seq_len %lld (+1 target)\n",
                text_path.c_str(), ids.size(), static_cast<long long>(model.config().seq_len));
    ids.resize(limit);
  }
  const int64_t T = static_cast<int64_t>(ids.size()) - 1;
  const std::vector<int32_t> in(ids.begin(), ids.end() - 1), tgt(ids.begin() + 1, ids.end());
  nn::AdapterSet set = !o.adapter_in.empty() ? models::load_adapter(o.adapter_in, model.linears(), o.device)
                                             : nn::attach_adapters(model.linears(), o.adapter, o.seed, o.device);
  set.store->zero_grad();
  const Tensor loss =
      model.loss(Tensor::from_i32(in, {1, T}, model.device()), Tensor::from_i32(tgt, {1, T}, model.device()));
  backward(loss);
  auto grad_of = [](const Tensor& p, bool transpose) {
    const Tensor g = p.grad().defined() ? p.grad().to(Device::CPU) : Tensor::zeros(p.shape(), p.dtype());
    return transpose ? ops::transpose(g, 0, 1) : g;
  };
  const nn::AdapterKind kind = set.config.kind;
  std::vector<std::pair<std::string, Tensor>> tensors{{"loss", loss.to(Device::CPU)}};
  for (const auto& m : set.adapters) {
    const nn::ChainAdapter& ad = *m.adapter;
    tensors.emplace_back(models::kPeftPrefix + nn::adapter_a_name(m.module), grad_of(ad.a(), true));
    if (ad.mixers().empty() && !ad.biases().empty())  // LoRA's bias on A's output
      tensors.emplace_back(models::kPeftPrefix + nn::adapter_lora_bias_name(m.module), grad_of(ad.biases()[0], false));
    for (size_t j = 0; j < ad.mixers().size(); ++j) {
      tensors.emplace_back(models::kPeftPrefix + nn::adapter_mixer_name(m.module, kind, static_cast<int>(j)),
                           grad_of(ad.mixers()[j], true));
      if (!ad.biases().empty())
        tensors.emplace_back(models::kPeftPrefix + nn::adapter_mixer_bias_name(m.module, static_cast<int>(j)),
                             grad_of(ad.biases()[j], false));
    }
    tensors.emplace_back(models::kPeftPrefix + nn::adapter_b_name(m.module), grad_of(ad.b(), false));
  }
  char lbuf[32];
  std::snprintf(lbuf, sizeof lbuf, "%.9g", loss.item());
  models::write_safetensors(out, tensors,
                            {{"format", "pt"},
                             {"content", "gradients"},
                             {"peft_type", models::peft_type_name(kind)},
                             {"text", text_path},
                             {"tokens", std::to_string(T)},
                             {"loss", lbuf}});
  std::printf("dump-grads: %lld predicted tokens, loss %s; %zu tensors (%s, %zu modules) written to %s\n",
              static_cast<long long>(T), lbuf, tensors.size(), models::peft_type_name(kind).c_str(),
              set.adapters.size(), out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Gradient flow through LoRA / MoSLoRA / LinChain adapters: per-factor gradient norms, updates, "
      "ΔW spectrum, and the chain-as-preconditioner check; on the teacher task or a real model "
      "(--model), or one gradient dump (--dump-grads). With --model the flags and defaults are "
      "finetune's (rank 16, alpha 32, AdamW lr 3e-4 with cosine decay, clip 1, 8 eval batches) and "
      "the run is `finetune --flow`'s; the teacher's defaults are rank 8, alpha 2·rank, constant "
      "lr 1e-2, clip 0.",
      "gradflow"};
  RunOptions o;
  nn::TeacherConfig tc;
  tools::DataFlags data;
  tools::OptimFlags optf;
  tools::FlowFlags flow;
  std::string task = "teacher", adapter = "linchain", init = "kaiming", targets, model_path, dump_path, device = "cpu";
  double alpha = 0;
  std::string check_lrs;
  bool check = false;
  double target_loss = NAN;
  int64_t eval_batches = 8, eval_every = 50;
  int rank = 0;
  app.add_option("--task", task, "task: teacher (default; ignored with --model)")->capture_default_str();
  app.add_option("--model", model_path, "fine-tune this base model (llama2.c .bin or HF .safetensors), frozen");
  data.add(app, /*allow_text=*/true);
  app.add_option("--adapter", adapter, "lora | moslora | linchain")->capture_default_str();
  app.add_option("--rank", rank, "adapter rank r (default: 16 with --model, 8 for the teacher)")
      ->check(CLI::PositiveNumber);
  app.add_option("--chain", o.adapter.chain, "LinChain's number of r×r factors n")->capture_default_str();
  app.add_option("--alpha", alpha, "alpha (scale s = alpha/r); default 32 with --model, 2·rank for the teacher");
  app.add_option("--targets", targets, "modules to adapt (default: q for the teacher, q,k,v,up,down for a model)");
  app.add_option("--init", init, "mixer init: kaiming | identity | orthogonal")->capture_default_str();
  app.add_flag("--chain-bias", o.adapter.chain_bias,
               "linchain: a bias on every chain factor (the authors' code); lora: one bias on A's output");
  app.add_option("--dropout", o.adapter.dropout,
                 "adapter dropout p on the adapter's input during training (PEFT's "
                 "lora_dropout); not with --check-preconditioner or --dump-grads")
      ->capture_default_str()
      ->check(tools::real_range(0, 0.99));
  app.add_option(
      "--adapter-in", o.adapter_in,
      "start from this adapter (a PEFT folder or .safetensors file; it fixes kind, rank, chain, alpha, targets)");
  optf.add(app);  // finetune's optimizer flags; the teacher overrides lr, clip and schedule unless given
  app.add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the adapter init and the training data stream")->capture_default_str();
  flow.every = o.every;
  app.add_option("--metrics,--flow", flow.path, "per-module gradient-flow JSONL (one row per logged step and module)");
  app.add_option("--every,--flow-every", flow.every, "log every K steps (and the last)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--flow-modules", flow.modules, "log only the modules matching this regex (default: all)");
  app.add_option("--top-k", o.top_k, "singular values of ΔW per row")->capture_default_str();
  app.add_option("--log", o.log, "per-step JSONL: step, loss, eval fields, lr");
  app.add_option("--eval-every", eval_every, "model: validation loss every N steps (0: only at the end), as finetune")
      ->capture_default_str();
  app.add_option("--eval-batches", eval_batches, "model: validation batches per evaluation (0: none)")
      ->capture_default_str();
  app.add_option("--target-loss", target_loss, "report the first step where the held-out loss is below X");
  app.add_option("--dump-grads", dump_path,
                 "with --model and --text: write the loss and every adapter gradient "
                 "(PEFT names) here after one forward/backward, and exit");
  app.add_flag("--check-preconditioner", check, "print the preconditioner check table and exit");
  app.add_option("--check-at", o.check_at, "steps to train before the check (B = 0 at init)")->capture_default_str();
  app.add_option("--check-lrs", check_lrs, "comma-separated η list for the check (default 1e-1,1e-2,1e-3,1e-4)");
  app.add_option("--check-module", o.check_module,
                 "module of the check (default: all for the teacher, the first "
                 "adapted module of a model)");
  app.add_option("--device", device, "cpu or cuda (model runs)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--in", tc.in, "teacher: input features")->capture_default_str();
  app.add_option("--out", tc.out, "teacher: output features")->capture_default_str();
  app.add_option("--teacher-rank", tc.teacher_rank, "teacher: rank of ΔW*")->capture_default_str();
  app.add_option("--spectrum", tc.spectrum, "teacher: \"flat\" or \"geometric:RATIO\"")->capture_default_str();
  app.add_option("--target-norm", tc.target_norm, "teacher: ‖ΔW*‖_F (default √out: initial MSE ≈ 1)");
  app.add_option("--teacher-seed", tc.teacher_seed, "teacher: seed of W₀ and ΔW*")->capture_default_str();
  app.add_option("--heldout", tc.heldout, "teacher: rows of the held-out batch")->capture_default_str();
  return tools::run_tool(app, argc, argv, [&] {
    const bool on_model = !model_path.empty();
    auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };
    if (!on_model && task != "teacher") throw FormatError("unknown --task '" + task + "' (expected teacher)");
    o.adapter.kind = nn::parse_adapter_kind(adapter);
    o.adapter.init = nn::parse_mixer_init(init);
    o.adapter.targets = nn::parse_targets(targets.empty() ? (on_model ? "q,k,v,up,down" : "q") : targets);
    o.adapter.rank = rank > 0 ? rank : on_model ? 16 : 8;
    o.adapter.alpha = alpha != 0 ? alpha : on_model ? 32.0 : 2.0 * o.adapter.rank;
    o.adapter.validate();
    if (o.adapter.dropout > 0 && (check || !dump_path.empty()))
      throw FormatError("--dropout is training noise: --check-preconditioner and --dump-grads measure without it");
    if (!on_model) {  // the teacher's tuned settings (docs/05-gradient-flow.md), unless given
      if (!given("--lr")) optf.lr = 1e-2;
      if (!given("--clip")) optf.clip = 0;
      if (!given("--min-lr-frac")) optf.min_lr_frac = 1.0;  // constant lr
    }
    o.optim = optf.config(o.steps);
    o.every = flow.every;
    o.metrics = flow.path;
    if (o.steps < 0 || o.check_at < 0) throw FormatError("--steps and --check-at must be ≥ 0");
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
    const bool data_given = !data.data.empty() || !data.text.empty() || !data.arith.empty();
    if (!on_model) {
      if (data_given || !dump_path.empty() || !o.adapter_in.empty())
        throw FormatError("--data/--text/--arith, --dump-grads and --adapter-in need --model");
      if (!flow.modules.empty()) throw FormatError("--flow-modules needs --model (the teacher has one module)");
      if (optf.accum != 1) throw FormatError("--accum needs --model (the teacher draws one batch per step)");
      if (given("--batch")) tc.batch = data.batch;
      tc.data_seed = o.seed + 1;
      TeacherGradFlowTask t(tc);
      return check ? run_check(t, o) : run_training(t, o);
    }
    if (device == "cuda") {
      backend_for(Device::CUDA);  // a clear DeviceError when unavailable
      o.device = Device::CUDA;
    }
    if (!dump_path.empty()) {
      if (data.text.empty()) throw FormatError("--dump-grads needs --text FILE (the file is one sequence)");
      if (check) throw FormatError("--dump-grads and --check-preconditioner exclude each other");
      tools::check_writable(dump_path, "--dump-grads");
    }
    {  // no output may overwrite an input
      auto inputs = data.inputs();
      inputs.insert(inputs.end(), {{model_path, "--model"}, {o.adapter_in, "--adapter-in"}});
      tools::check_outputs(inputs, {{dump_path, "--dump-grads"}, {o.metrics, "--metrics"}, {o.log, "--log"}});
    }
    flow.validate();
    const models::Checkpoint ck = models::read_checkpoint(model_path);
    auto model = models::LlamaModel::from_checkpoint(ck, o.device);
    model->params().set_trainable(false);  // the base stays frozen
    auto tok = models::load_tokenizer(data.tokenizer, static_cast<int>(model->config().vocab_size));
    if (!dump_path.empty()) return run_dump(*model, *tok, data.text, o, dump_path);
    if (!data_given) throw FormatError("no training data: give --data FILE, --text FILE or --arith add|sub");
    const std::unique_ptr<models::Dataset> loaded = data.load(*tok, model->config().seq_len, o.seed);
    const models::Dataset& ds = *loaded;
    const std::string source = !data.text.empty() ? data.text : !data.data.empty() ? data.data : "arith " + data.arith;
    if (check) {
      ModelGradFlowTask t(*model, ds, source, data.batch, o.seed, eval_batches, o.every, o.steps);
      return run_check(t, o);
    }
    tools::RunFlags run;  // finetune's run settings, from gradflow's flags
    run.steps = o.steps;
    run.seed = o.seed;
    run.eval_every = eval_every;
    run.eval_batches = eval_batches;
    run.metrics = o.log;
    return run_model_training(*model, ds, source, o, run, flow, data.batch, optf.accum);
  });
}
