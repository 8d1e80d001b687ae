// models/train/train_loop.cpp — the training loop driver.
#include "models/train/train_loop.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <optional>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/train/interrupt.h"
#include "models/train/progress.h"

namespace cg::models {

TrainLoop::TrainLoop(Trainer& trainer, const LoopOptions& options, std::string tool)
    : trainer_(trainer), run_(options), tool_(std::move(tool)) {}

void TrainLoop::save() {
  std::map<std::string, std::string> meta = describe;
  meta["tool"] = tool_;
  if (best_step >= 0) {  // the --keep-best record, so that --resume keeps it
    char v[32];
    std::snprintf(v, sizeof v, "%.17g", best_value);
    meta["best.step"] = std::to_string(best_step);
    meta["best.value"] = v;
    meta["best.bad_evals"] = std::to_string(bad_evals);
  }
  trainer_.save_state(run_.checkpoint, meta);
}

void TrainLoop::check_resume(const TrainState& st, int64_t step) const {
  const std::string at = "--resume " + run_.resume;
  if (const auto it = st.meta.find("tool"); it == st.meta.end() || it->second != tool_)
    throw FormatError(at + ": is not a " + tool_ + " checkpoint");
  for (const auto& [key, value] : describe) {
    const auto it = st.meta.find(key);
    if (it == st.meta.end()) throw FormatError(at + ": does not record its " + key + " (saved by an older chaingrad?)");
    if (it->second != value)
      throw FormatError(at + ": " + key + " differs: the checkpoint has '" + it->second + "', this run '" + value +
                        "'");
  }
  if (step >= run_.steps)
    throw FormatError(at + " is already at step " + std::to_string(step) + " of --steps " + std::to_string(run_.steps));
  if (st.data_position != step * trainer_.samples_per_step())
    throw FormatError(at + ": data position " + std::to_string(st.data_position) + " does not match step " +
                      std::to_string(step) + " (" + std::to_string(trainer_.samples_per_step()) + " samples per step)");
}

std::string TrainLoop::stop_line(const std::string& outputs) const {
  std::string s = tool_ + ": interrupted by " + signal_name(signal) + " after step " + std::to_string(steps_done) +
                  " of " + std::to_string(run_.steps);
  if (!run_.checkpoint.empty())
    s += "; checkpoint " + run_.checkpoint + " (continue with --resume " + run_.checkpoint + ")";
  else s += "; no --checkpoint, so it cannot be resumed";
  if (!outputs.empty()) s += "; wrote " + outputs;
  return s;
}

void TrainLoop::run() {
  // Data parallel: every rank trains; rank 0 alone logs, evaluates, samples and writes files.
  const bool lead = trainer_.lead();
  std::optional<CheckpointLock> lock;  // the tools checked --checkpoint before loading anything
  if (lead && !run_.checkpoint.empty()) lock.emplace(run_.checkpoint);
  int64_t start = 0;
  if (!run_.resume.empty()) {  // every rank loads the same checkpoint
    const TrainState st = trainer_.load_state(run_.resume);
    start = trainer_.steps_taken();
    check_resume(st, start);
    if (const auto it = st.meta.find("best.step"); it != st.meta.end() && !keep_best.empty()) {
      try {
        best_step = std::stoll(it->second);
        best_value = std::stod(st.meta.at("best.value"));
        bad_evals = std::stoll(st.meta.at("best.bad_evals"));
      } catch (const std::exception&) {
        throw FormatError("--resume " + run_.resume + ": a damaged best-so-far record");
      }
    }
    if (lead)
      std::fprintf(stderr, "%s: resumed from %s at step %lld\n", tool_.c_str(), run_.resume.c_str(),
                   static_cast<long long>(start));
  }
  install_interrupt_handlers();
  std::optional<Progress> progress;
  if (lead) progress.emplace(run_.steps, run_.log_every);
  MetricsFile metrics(lead ? run_.metrics : std::string(), run_.resume.empty() ? -1 : start);
  double ms_sum = 0;
  int64_t ms_n = 0;
  steps_done = start;
  const int64_t last = run_.stop_after > 0 ? std::min(run_.steps, run_.stop_after) : run_.steps;
  if (patience > 0 && trainer_.ranks() > 1)
    throw FormatError("--patience under mpirun is not supported (rank 0 alone evaluates)");
  if (keep_best == "val_loss" && (run_.eval_batches == 0 || !trainer_.has_val()))
    throw FormatError("--keep-best val_loss needs validation data (--val-frac > 0 and --eval-batches > 0)");
  // Validation loss and task accuracy into `row` and one progress line; the --keep-best record.
  auto evaluate = [&](int64_t step, nlohmann::json& row) {
    std::string line = tool_ + ": step " + std::to_string(step);
    char buf[64];
    const bool val = run_.eval_batches > 0 && trainer_.has_val();
    if (val) {
      last_val_loss = trainer_.val_loss(run_.eval_batches);
      row["val_loss"] = last_val_loss;
      std::snprintf(buf, sizeof buf, "  val loss %.4f", last_val_loss);
      line += buf;
    }
    if (accuracy) {
      last_accuracy = accuracy();
      row["accuracy"] = last_accuracy;
      std::snprintf(buf, sizeof buf, "  accuracy %.4f", last_accuracy);
      line += buf;
    }
    if (step == 0) line += " (before training)";
    if (step > 0 && !keep_best.empty()) {
      const double v = keep_best == "accuracy" ? last_accuracy : last_val_loss;
      const bool better = best_step < 0 || (keep_best == "accuracy" ? v > best_value : v < best_value);
      if (better) {
        best_step = step, best_value = v, bad_evals = 0;
        if (save_best) save_best();
        line += "  (best)";
      } else {
        ++bad_evals;
        std::snprintf(buf, sizeof buf, "  (best %.4f at step %lld)", best_value, static_cast<long long>(best_step));
        line += buf;
      }
      row["best_step"] = best_step;
    }
    if (val || accuracy) progress->note(line);
  };
  if (lead && start == 0 && ((run_.eval_batches > 0 && trainer_.has_val()) || accuracy)) {
    nlohmann::json row{{"step", 0}};
    evaluate(0, row);
    metrics.write(row);
  }
  for (int64_t step = start + 1; step <= last; ++step) {
    const StepStats s = trainer_.step(interrupted() != 0);
    if (s.nonfinite && !s.skipped) {  // the same on every rank: the loss and the norm are global
      if (progress) progress->finish();
      if (lead)
        std::fprintf(stderr, "%s: non-finite %s at step %lld; stopped without taking that update%s\n", tool_.c_str(),
                     s.nonfinite, static_cast<long long>(step),
                     run_.checkpoint.empty() ? "" : ("; the last checkpoint " + run_.checkpoint + " is kept").c_str());
      exit_code = 3;
      break;
    }
    skipped += s.skipped;
    nlohmann::json row{{"step", s.step},           {"loss", s.loss}, {"lr", s.lr},
                       {"grad_norm", s.grad_norm}, {"ms", s.ms},     {"tok_s", s.tok_s}};
    if (s.skipped) row["skipped"] = s.nonfinite;
    if (trainer_.ranks() > 1) {
      row["ranks"] = trainer_.ranks();
      row["comm_ms"] = s.comm_ms;
    }
    if (step > start + 1 || run_.steps - start == 1) {  // the first step warms caches up
      ms_sum += s.ms;
      ++ms_n;
    }
    last_loss = s.loss;
    steps_done = step;
    if (s.stop) signal = interrupted() ? interrupted() : SIGINT;  // another rank's signal
    const bool periodic = run_.checkpoint_every > 0 && step % run_.checkpoint_every == 0;
    const bool save_now = !run_.checkpoint.empty() && (periodic || step == last || s.stop);
    if (!lead) {  // the other ranks go straight on to the next step's all-reduce
      if (s.stop) break;
      continue;
    }
    const bool eval_now = !s.stop && ((run_.eval_every > 0 && step % run_.eval_every == 0) || step == run_.steps);
    if (eval_now) evaluate(step, row);
    if (extra) extra(row);
    metrics.write(row);
    progress->update(step, s.loss, s.tok_s);
    if (sample && !s.stop && run_.sample_every > 0 && step % run_.sample_every == 0) progress->note(sample(step));
    stopped_early = eval_now && patience > 0 && bad_evals >= patience && step < last;
    if (save_now || (stopped_early && !run_.checkpoint.empty())) save();
    if (stopped_early) {
      progress->note(tool_ + ": stopped early at step " + std::to_string(step) + ": " + std::to_string(bad_evals) +
                     " evaluations without a better " + keep_best + " (--patience " + std::to_string(patience) + ")");
      break;
    }
    if (s.stop) break;
  }
  if (progress) progress->finish();
  if (lead && skipped > 0)
    std::fprintf(stderr, "%s: skipped %lld updates with a non-finite loss or gradient\n", tool_.c_str(),
                 static_cast<long long>(skipped));
  mean_ms = ms_n ? ms_sum / static_cast<double>(ms_n) : 0.0;
}

}  // namespace cg::models
