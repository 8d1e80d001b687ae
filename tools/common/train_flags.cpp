// tools/common/train_flags.cpp — shared training flags and the training loop driver.
#include "tools/common/train_flags.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <regex>

#include "engine/backend.h"
#include "engine/error.h"
#include "models/llama/generation.h"
#include "models/text/arith.h"
#include "models/io/train_state.h"
#include "tools/common/progress.h"

namespace cg::tools {

void DataFlags::add(CLI::App& app, bool allow_text) {
  auto* d = app.add_option("--data", data, "training text file (plain text)");
  auto* a = app.add_option("--arith", arith, "train on the embedded arithmetic language instead: add or sub")
                ->check(CLI::IsMember({"add", "sub"}));
  d->excludes(a);
  if (allow_text) {
    auto* t = app.add_option("--text", text, "train on this whole file as one sequence (BOS first, like evaluate)");
    t->excludes(d)->excludes(a);
  }
  app.add_option("--arith-lines", arith_lines, "lines of arithmetic to generate")->capture_default_str();
  app.add_option("--arith-max", arith_max, "largest arithmetic operand")->capture_default_str();
  app.add_option("--tokenizer", tokenizer, "tokenizer: a llama2.c tok*.bin, or 'byte'")->capture_default_str();
  app.add_option("--seq", seq, "sequence length")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "sequences per micro-batch (over all ranks under mpirun)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--val-frac", val_frac, "fraction of the text held out for validation")->capture_default_str();
}

models::TokenDataset DataFlags::load(const models::Tokenizer& tok, int64_t max_seq, uint64_t seed) {
  if (seq > max_seq)
    throw FormatError("--seq " + std::to_string(seq) + " exceeds the model's context of " + std::to_string(max_seq));
  std::vector<int32_t> ids;
  auto append = [&](const std::vector<int>& v) { ids.insert(ids.end(), v.begin(), v.end()); };
  if (!text.empty()) {
    append(tok.encode(models::read_text_file(text), true, false));
    if (ids.size() < 2) throw FormatError("--text " + text + ": fewer than two tokens");
    if (static_cast<int64_t>(ids.size()) - 1 < seq) seq = static_cast<int64_t>(ids.size()) - 1;
    ids.resize(static_cast<size_t>(seq + 1));  // one window: the file's first seq+1 tokens
    return models::TokenDataset(ids, 0.0, seq);
  }
  std::string corpus;
  if (!arith.empty())
    corpus = models::arith_corpus(arith == "add" ? models::ArithOp::Add : models::ArithOp::Sub, arith_lines, arith_max, seed);
  else if (!data.empty())
    corpus = models::read_text_file(data);
  else
    throw FormatError("no training data: give --data FILE" + std::string(arith.empty() ? " or --arith add|sub" : ""));
  append(tok.encode(corpus, false, false));
  return models::TokenDataset(ids, val_frac, seq);
}

void OptimFlags::add(CLI::App& app) {
  app.add_option("--optimizer", optimizer, "adamw or sgd")->capture_default_str()->check(CLI::IsMember({"adamw", "sgd"}));
  app.add_option("--lr", lr, "peak learning rate")->capture_default_str();
  app.add_option("--warmup", warmup, "linear warmup steps (0: none)")->capture_default_str();
  app.add_option("--min-lr-frac", min_lr_frac, "cosine decay floor as a fraction of --lr")->capture_default_str();
  app.add_option("--weight-decay", weight_decay, "decoupled weight decay (AdamW) / L2 (SGD)")->capture_default_str();
  app.add_option("--clip", clip, "global gradient-norm clip (0: off)")->capture_default_str();
  app.add_option("--momentum", momentum, "SGD momentum")->capture_default_str();
  app.add_option("--accum", accum, "micro-batches per optimizer step")->capture_default_str()->check(CLI::PositiveNumber);
}

nn::OptimConfig OptimFlags::config(int64_t total_steps) const {
  nn::OptimConfig c;
  c.name = optimizer;
  c.lr = lr;
  c.weight_decay = weight_decay;
  c.clip = clip;
  c.momentum = momentum;
  c.warmup = warmup;
  c.total_steps = min_lr_frac < 1.0 ? static_cast<int>(total_steps) : 0;
  c.min_lr_frac = min_lr_frac;
  return c;
}

void RunFlags::add(CLI::App& app) {
  app.add_option("--steps", steps, "optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed for initialisation and data order")->capture_default_str();
  app.add_option("--eval-every", eval_every, "validation loss every N steps (0: only at the end)")->capture_default_str();
  app.add_option("--eval-batches", eval_batches, "validation batches per evaluation")->capture_default_str();
  app.add_option("--sample-every", sample_every, "print a generated sample every N steps (0: never)")->capture_default_str();
  app.add_option("--sample-tokens", sample_tokens, "length of those samples")->capture_default_str();
  app.add_option("--log-every", log_every, "plain progress line every N steps when not on a terminal")->capture_default_str();
  app.add_option("--metrics", metrics, "write one JSON object per step to this file (JSONL)");
  app.add_option("--checkpoint", checkpoint, "training checkpoint file (written atomically)");
  app.add_option("--checkpoint-every", checkpoint_every, "save the checkpoint every N steps (0: at the end only)")
      ->capture_default_str();
  app.add_option("--resume", resume, "continue from this training checkpoint");
  app.add_option("--stop-after", stop_after,
                 "stop after this step (the schedule still spans --steps), e.g. to continue later with --resume")
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: OpenMP's default)")->capture_default_str();
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
}

void RunFlags::apply() const {
  if (threads > 0) set_num_threads(threads);
}

Device RunFlags::device() const {
  if (device_name == "cuda") {
    backend_for(Device::CUDA);  // throws a clear DeviceError when unavailable
    return Device::CUDA;
  }
  return Device::CPU;
}

void FlowFlags::add(CLI::App& app, const std::string& flag, const std::string& every_flag) {
  app.add_option(flag, path, "record the adapters' gradient flow during the run: one JSON row per module every " +
                                 every_flag + " steps (docs/05-gradient-flow.md lists the fields)");
  app.add_option(every_flag, every, "gradient-flow row every N steps (and the last)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--flow-modules", modules, "gradient flow of the modules matching this regex only (default: all)");
}

void FlowFlags::validate() const {
  try {
    std::regex re(modules);
  } catch (const std::regex_error& e) {
    throw FormatError("--flow-modules '" + modules + "' is not a regular expression (" + e.what() + ")");
  }
}

std::function<std::string(int64_t)> sampler(models::LlamaModel& model, const models::Tokenizer& tok, const RunFlags& run) {
  return [&model, &tok, &run](int64_t step) {
    models::GenerateOptions go;
    go.steps = run.sample_tokens;
    go.temperature = 0.8;
    go.seed = run.seed + static_cast<uint64_t>(step);
    std::string text;
    models::generate(model, tok, go, [&](const std::string& piece) { text += piece; });
    return "sample @" + std::to_string(step) + ": " + text;
  };
}

void check_writable(const std::string& path, const char* flag) {
  if (path.empty()) return;
  const std::string probe = path + ".probe";
  std::ofstream f(probe);
  if (!f) throw FormatError(std::string(flag) + " " + path + ": cannot write there");
  f.close();
  std::remove(probe.c_str());
}

TrainLoop::TrainLoop(models::Trainer& trainer, nn::ParamStore& trained, const RunFlags& run, std::string tool)
    : trainer_(trainer), trained_(trained), run_(run), tool_(std::move(tool)) {}

void TrainLoop::save(int64_t step) {
  models::TrainState st;
  st.data_position = trainer_.data_position();
  st.meta["tool"] = tool_;
  models::save_train_state(run_.checkpoint, trained_, trainer_.optimizer(), st);
  (void)step;
}

void TrainLoop::run() {
  // Data parallel: every rank trains; rank 0 alone logs, evaluates, samples and writes files.
  const bool lead = trainer_.comm().lead();
  if (lead) check_writable(run_.checkpoint, "--checkpoint");
  int64_t start = 0;
  if (!run_.resume.empty()) {  // every rank loads the same checkpoint
    models::TrainState st = models::load_train_state(run_.resume, trained_, trainer_.optimizer());
    trainer_.set_data_position(st.data_position);
    start = trainer_.optimizer().step_count();
    if (lead)
      std::fprintf(stderr, "%s: resumed from %s at step %lld\n", tool_.c_str(), run_.resume.c_str(), static_cast<long long>(start));
    if (start >= run_.steps) throw FormatError("--resume " + run_.resume + " is already at step " + std::to_string(start) +
                                               " of --steps " + std::to_string(run_.steps));
  }
  std::optional<Progress> progress;
  if (lead) progress.emplace(run_.steps, run_.log_every);
  MetricsFile metrics(lead ? run_.metrics : std::string());
  double ms_sum = 0;
  int64_t ms_n = 0;
  const int64_t last = run_.stop_after > 0 ? std::min(run_.steps, run_.stop_after) : run_.steps;
  if (lead && start == 0 && run_.eval_batches > 0 && trainer_.has_val()) {
    last_val_loss = trainer_.val_loss(run_.eval_batches);
    metrics.write(nlohmann::json{{"step", 0}, {"val_loss", last_val_loss}});
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: step 0  val loss %.4f (before training)", tool_.c_str(), last_val_loss);
    progress->note(buf);
  }
  for (int64_t step = start + 1; step <= last; ++step) {
    const models::StepStats s = trainer_.step();
    nlohmann::json row{{"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm}, {"ms", s.ms}, {"tok_s", s.tok_s}};
    if (trainer_.comm().size() > 1) {
      row["ranks"] = trainer_.comm().size();
      row["comm_ms"] = s.comm_ms;
    }
    if (step > start + 1 || run_.steps - start == 1) {  // the first step warms caches up
      ms_sum += s.ms;
      ++ms_n;
    }
    last_loss = s.loss;
    steps_done = step;
    if (!lead) continue;  // the other ranks go straight on to the next step's all-reduce
    const bool eval_now = (run_.eval_every > 0 && step % run_.eval_every == 0) || step == run_.steps;
    if (eval_now && run_.eval_batches > 0 && trainer_.has_val()) {
      last_val_loss = trainer_.val_loss(run_.eval_batches);
      row["val_loss"] = last_val_loss;
      char buf[128];
      std::snprintf(buf, sizeof buf, "%s: step %lld  val loss %.4f", tool_.c_str(), static_cast<long long>(step), last_val_loss);
      progress->note(buf);
    }
    if (extra) extra(row);
    metrics.write(row);
    progress->update(step, s.loss, s.tok_s);
    if (sample && run_.sample_every > 0 && step % run_.sample_every == 0) progress->note(sample(step));
    if (!run_.checkpoint.empty() && ((run_.checkpoint_every > 0 && step % run_.checkpoint_every == 0) || step == run_.steps))
      save(step);
  }
  if (progress) progress->finish();
  mean_ms = ms_n ? ms_sum / static_cast<double>(ms_n) : 0.0;
}

}  // namespace cg::tools
