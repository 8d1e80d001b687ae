// tools/common/train_flags.cpp — shared training flags, output checks, the loop's options.
#include "tools/common/train_flags.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <regex>

#include "engine/backend.h"
#include "engine/error.h"
#include "models/llama/generation.h"
#include "models/text/arith.h"
#include "models/text/instruct_data.h"
#include "engine/rng.h"
#include "models/io/train_state.h"
#include "models/io/file_io.h"
#include "tools/common/cli.h"

namespace cg::tools {
namespace {
std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
}  // namespace

void DataFlags::add(CLI::App& app, bool allow_text) {
  auto* d = app.add_option("--data", data,
                           "training data: a plain text file, or instruction records in a .json list / .jsonl file "
                           "({instruction, input, output} rendered with the LLM-Adapters Alpaca prompt, or {messages: "
                           "[{role, content}]} with the model's chat template; EOS / end-of-turn learned)");
  auto* a = app.add_option("--arith", arith, "train on the embedded arithmetic language instead: add or sub")
                ->check(CLI::IsMember({"add", "sub"}));
  d->excludes(a);
  if (allow_text) {
    auto* t = app.add_option("--text", text, "train on this whole file as one sequence (BOS first, like evaluate)");
    t->excludes(d)->excludes(a);
  }
  app.add_option("--arith-lines", arith_lines, "lines of arithmetic to generate")->capture_default_str();
  app.add_option("--arith-max", arith_max, "largest arithmetic operand")->capture_default_str();
  app.add_option(
         "--tokenizer", tokenizer,
         "tokenizer: a llama2.c tok*.bin, tokenizer.json, .gguf, HF folder or 'byte' (finetune: default the model's own when it carries one)")
      ->capture_default_str();
  app.add_option("--seq", seq,
                 "sequence length (with --text: the file's length; records: rows of --cutoff − 1 instead)")
      ->capture_default_str()
      ->check(int_range(1, 1 << 20));
  app.add_option("--batch", batch, "sequences per micro-batch (over all ranks under mpirun)")
      ->capture_default_str()
      ->check(int_range(1, 1 << 20));
  app.add_option("--val-frac", val_frac, "fraction of the text (or of the records) held out for validation, in [0, 1)")
      ->capture_default_str()
      ->check(real_range(0, 0.999999));
  app.add_option("--cutoff", cutoff,
                 "records: tokens per sample at most, EOS included (LLM-Adapters' cutoff_len); rows "
                 "hold cutoff − 1 positions and must fit the model's context (default: 256, or the "
                 "context + 1 when shorter)")
      ->check(int_range(2, 1 << 20));
  app.add_flag("--mask-prompt", mask_prompt,
               "records: loss on the response tokens only (default: on every token, as the papers' scripts do)");
  app.add_flag("--pack", pack,
               "records: pack several samples per row (attention blocked between them, positions restarting); "
               "default: one per row, padded to the batch's longest");
  app.add_option("--val-data", val_data, "records: validation records from this file instead of the --val-frac split");
  app.add_option("--chat-template", chat_template,
                 "records: chat template family for {messages} records when the tokenizer carries none: chatml, "
                 "llama2, llama3, zephyr, gemma")
      ->check(CLI::IsMember({"chatml", "llama2", "llama3", "zephyr", "gemma"}));
}

bool DataFlags::records() const {
  auto ends = [&](const std::string& suf) {
    return data.size() >= suf.size() && data.compare(data.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends(".json") || ends(".jsonl");
}

void DataFlags::validate(bool held_out_eval) const {
  if (!records()) {
    const char* f = mask_prompt              ? "--mask-prompt"
                    : pack                   ? "--pack"
                    : !val_data.empty()      ? "--val-data"
                    : !chat_template.empty() ? "--chat-template"
                                             : nullptr;
    if (f) throw FormatError(std::string(f) + " is for instruction records: give --data FILE.json or FILE.jsonl");
  }
  if (!arith.empty())
    models::check_arith_settings(arith == "add" ? models::ArithOp::Add : models::ArithOp::Sub, arith_max,
                                 held_out_eval);
  if (arith_lines < 1 || arith_lines > (int64_t{1} << 32))
    throw FormatError("--arith-lines must be in [1, 4294967296], got " + std::to_string(arith_lines));
}

std::vector<std::pair<std::string, const char*>> DataFlags::inputs() const {
  return {{data, "--data"},
          {text, "--text"},
          {val_data, "--val-data"},
          {tokenizer == "byte" ? std::string() : tokenizer, "--tokenizer"}};
}

std::string DataFlags::describe() const { return loaded_; }

std::unique_ptr<models::Dataset> DataFlags::load(const models::Tokenizer& tok, int64_t max_seq, uint64_t seed) {
  if (records()) return load_records(tok, max_seq);
  if (text.empty() && seq > max_seq)
    throw FormatError("--seq " + std::to_string(seq) + " exceeds the model's context of " + std::to_string(max_seq));
  std::vector<int32_t> ids;
  auto append = [&](const std::vector<int>& v) { ids.insert(ids.end(), v.begin(), v.end()); };
  auto hash_of = [&] { return models::fnv1a64(ids.data(), ids.size() * sizeof(int32_t)); };
  if (!text.empty()) {
    append(tok.encode(models::read_text_file(text), true, false));
    if (ids.size() < 2) throw FormatError("--text " + text + ": fewer than two tokens");
    const int64_t n = static_cast<int64_t>(ids.size()) - 1;
    if (n > max_seq)
      throw FormatError("--text " + text + ": " + std::to_string(n + 1) + " tokens do not fit the model's context of " +
                        std::to_string(max_seq) + " (use --data to train on windows of it)");
    seq = n;  // one window: the whole file
    loaded_ = "text tokens=" + std::to_string(ids.size()) + " hash=" + std::to_string(hash_of());
    return std::make_unique<models::TokenDataset>(ids, 0.0, seq);
  }
  std::string corpus;
  if (!arith.empty())
    corpus = models::arith_corpus(arith == "add" ? models::ArithOp::Add : models::ArithOp::Sub, arith_lines, arith_max,
                                  seed);
  else if (!data.empty()) corpus = models::read_text_file(data);
  else
    throw FormatError("no training data: give --data FILE" + std::string(arith.empty() ? " or --arith add|sub" : ""));
  append(tok.encode(corpus, false, false));
  loaded_ = std::string(arith.empty() ? "data" : "arith " + arith) + " tokens=" + std::to_string(ids.size()) +
            " hash=" + std::to_string(hash_of()) + " seq=" + std::to_string(seq) + " val_frac=" + fmt(val_frac);
  return std::make_unique<models::TokenDataset>(ids, val_frac, seq);
}

std::unique_ptr<models::Dataset> DataFlags::load_records(const models::Tokenizer& tok, int64_t max_seq) {
  if (cutoff == 0) cutoff = std::min(kDefaultCutoff, max_seq + 1);
  if (cutoff - 1 > max_seq)
    throw FormatError("--cutoff " + std::to_string(cutoff) + ": samples of up to " + std::to_string(cutoff) +
                      " tokens need " + std::to_string(cutoff - 1) + " positions, more than the model's context of " +
                      std::to_string(max_seq));
  models::RenderOptions ro;
  ro.cutoff = cutoff;
  ro.mask_prompt = mask_prompt;
  ro.chat_template = tok.chat_template();
  if (!chat_template.empty()) {
    ro.chat = models::chat_format_by_name(chat_template);
    ro.have_chat = true;
  } else if (!ro.chat_template.empty()) {
    try {  // an unrecognised template only matters when a chat record comes
      ro.chat = models::detect_chat_format(ro.chat_template);
      ro.have_chat = true;
    } catch (const FormatError&) {
    }
  }
  std::vector<models::InstructRecord> all = models::read_instruct_records(data), val_records;
  std::vector<models::InstructRecord> train_records;
  if (!val_data.empty()) {
    val_records = models::read_instruct_records(val_data);
    train_records = std::move(all);
  } else {  // a fixed random share, the same for every --seed (the rest keeps the file's order)
    const size_t n = all.size(), n_val = static_cast<size_t>(static_cast<double>(n) * val_frac);
    std::vector<size_t> perm(n);
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    Rng rng(42);
    for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
    std::vector<uint8_t> is_val(n, 0);
    for (size_t i = 0; i < n_val; ++i) is_val[perm[i]] = 1;
    for (size_t i = 0; i < n; ++i) (is_val[i] ? val_records : train_records).push_back(std::move(all[i]));
  }
  uint64_t hash = models::kFnvOffset;
  auto render = [&](const std::vector<models::InstructRecord>& rs, const std::string& what) {
    std::vector<models::Sample> out;
    for (size_t i = 0; i < rs.size(); ++i) {
      try {
        out.push_back(models::render_sample(rs[i], tok, ro));
      } catch (const FormatError& e) {
        throw FormatError(what + ": record " + std::to_string(i) + ": " + e.what());
      }
      const models::Sample& s = out.back();
      hash = models::fnv1a64(s.ids.data(), s.ids.size() * sizeof(int32_t), hash);
      hash = models::fnv1a64(s.scored.data(), s.scored.size(), hash);
    }
    return out;
  };
  const std::vector<models::Sample> train = render(train_records, data);
  const std::vector<models::Sample> val = render(val_records, val_data.empty() ? data : val_data);
  auto ds = std::make_unique<models::InstructDataset>(train, val, cutoff - 1, pack);
  loaded_ = "records train=" + std::to_string(train.size()) + " val=" + std::to_string(val.size()) +
            " hash=" + std::to_string(hash) + " cutoff=" + std::to_string(cutoff) +
            " mask_prompt=" + (mask_prompt ? "on" : "off") + " pack=" + (pack ? "on" : "off") +
            (val_data.empty() ? " val_frac=" + fmt(val_frac) : std::string(" val_data=given"));
  return ds;
}

void OptimFlags::add(CLI::App& app) {
  app.add_option("--optimizer", optimizer, "adamw or sgd")
      ->capture_default_str()
      ->check(CLI::IsMember({"adamw", "sgd"}));
  app.add_option("--schedule", schedule,
                 "learning rate after warmup: cosine or linear decay to --min-lr-frac·lr over --steps, or constant "
                 "(constant, --warmup 0, --clip 0, --weight-decay 0: plain SGD/AdamW)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "linear", "constant"}));
  app.add_option("--lr", lr, "peak learning rate")->capture_default_str()->check(real_range(0, 1e3));
  app.add_option("--warmup", warmup, "linear warmup steps (0: none)")
      ->capture_default_str()
      ->check(int_range(0, int64_t{1} << 53));
  app.add_option("--min-lr-frac", min_lr_frac, "decay floor as a fraction of --lr, in [0, 1]")
      ->capture_default_str()
      ->check(real_range(0, 1));
  app.add_option("--weight-decay", weight_decay, "decoupled weight decay (AdamW) / L2 (SGD)")
      ->capture_default_str()
      ->check(real_range(0, 1e3));
  app.add_option("--clip", clip, "global gradient-norm clip (0: off)")
      ->capture_default_str()
      ->check(real_range(0, 1e30));
  app.add_option("--momentum", momentum, "SGD momentum, in [0, 1)")
      ->capture_default_str()
      ->check(real_range(0, 0.999999));
  app.add_option("--accum", accum, "micro-batches per optimizer step")
      ->capture_default_str()
      ->check(int_range(1, 1 << 20));
}

nn::OptimConfig OptimFlags::config(int64_t total_steps) const {
  nn::OptimConfig c;
  c.name = optimizer;
  c.lr = lr;
  c.weight_decay = weight_decay;
  c.clip = clip;
  c.momentum = momentum;
  c.schedule = schedule;
  c.warmup = warmup;
  // A floor of 1 or a constant schedule does not depend on --steps (so such a run can be
  // resumed with another --steps).
  c.total_steps = min_lr_frac < 1.0 && schedule != "constant" ? total_steps : 0;
  c.min_lr_frac = min_lr_frac;
  return c;
}

std::string describe(const nn::OptimConfig& c) {
  std::string s = c.name + " lr=" + fmt(c.lr) + " weight_decay=" + fmt(c.weight_decay) + " clip=" + fmt(c.clip);
  if (c.name == "adamw") s += " betas=" + fmt(c.beta1) + "," + fmt(c.beta2) + " eps=" + fmt(c.eps);
  else s += " momentum=" + fmt(c.momentum);
  s +=
      " schedule=" + (c.total_steps > 0 ? c.schedule : std::string("constant")) + " warmup=" + std::to_string(c.warmup);
  if (c.total_steps > 0) s += " total_steps=" + std::to_string(c.total_steps) + " min_lr_frac=" + fmt(c.min_lr_frac);
  return s;
}

void RunFlags::add(CLI::App& app) {
  app.add_option("--steps", steps, "optimizer steps")->capture_default_str()->check(int_range(1, int64_t{1} << 53));
  app.add_option("--seed", seed, "seed for initialisation and data order")->capture_default_str();
  app.add_option("--eval-every", eval_every,
                 "validation loss (and finetune's --eval-task accuracy) every N steps (0: only at the end)")
      ->capture_default_str();
  app.add_option("--eval-batches", eval_batches, "validation batches per evaluation")->capture_default_str();
  app.add_option("--sample-every", sample_every, "print a generated sample every N steps (0: never)")
      ->capture_default_str();
  app.add_option("--sample-tokens", sample_tokens, "length of those samples")->capture_default_str();
  app.add_option("--log-every", log_every, "plain progress line every N steps when not on a terminal")
      ->capture_default_str();
  app.add_option("--metrics", metrics, "write one JSON object per step to this file (JSONL)");
  app.add_option("--checkpoint", checkpoint, "training checkpoint file (written atomically)");
  app.add_option("--checkpoint-every", checkpoint_every,
                 "with --checkpoint: save every N steps (0: only at the end, at --stop-after and when interrupted)")
      ->capture_default_str()
      ->check(int_range(0, int64_t{1} << 53));
  app.add_option("--resume", resume, "continue from this training checkpoint");
  app.add_option("--stop-after", stop_after,
                 "stop after this step (the schedule still spans --steps; the checkpoint is saved), e.g. to continue "
                 "later with --resume")
      ->capture_default_str()
      ->check(int_range(0, int64_t{1} << 53));
  app.add_flag("--skip-nonfinite", skip_nonfinite,
               "skip (and count) an update whose loss or gradient is NaN/inf instead of stopping with exit 3");
  app.add_option("--threads", threads, "CPU threads (0: OpenMP's default)")
      ->capture_default_str()
      ->check(int_range(0, 4096));
  for (const char* f : {"--eval-every", "--eval-batches", "--sample-every", "--log-every"})
    app.get_option(f)->check(int_range(0, int64_t{1} << 53));
  app.get_option("--sample-tokens")->check(int_range(0, 1 << 20));
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
}

void RunFlags::validate() const {
  if (!resume.empty() && stop_after > 0 && stop_after > steps)
    throw FormatError("--stop-after " + std::to_string(stop_after) + " is beyond --steps " + std::to_string(steps));
  if (!checkpoint.empty() && models::same_file(checkpoint, metrics))
    throw FormatError("--metrics " + metrics + " is the same file as --checkpoint");
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

void EvalFlags::add(CLI::App& app) {
  app.add_option("--eval-task", task,
                 "at each evaluation, also score this LLM-Adapters task (as evaluate --task does) and log its accuracy");
  app.add_option("--eval-limit", limit, "--eval-task: the first K items")
      ->capture_default_str()
      ->check(int_range(1, 1000000));
  app.add_option("--eval-mode", mode, "--eval-task scoring: likelihood or generate (greedy, 32 new tokens)")
      ->capture_default_str()
      ->check(CLI::IsMember({"likelihood", "generate"}));
  app.add_option("--keep-best", keep_best,
                 "val_loss or accuracy: also write the adapter of the best evaluation to OUT with .best before "
                 "its extension")
      ->check(CLI::IsMember({"val_loss", "accuracy"}));
  app.add_option("--patience", patience,
                 "stop after N evaluations in a row without improving the --keep-best metric (0: never)")
      ->capture_default_str()
      ->check(int_range(0, int64_t{1} << 53));
}

void EvalFlags::validate(const std::string& out) const {
  if (task.empty() && (limit != 100 || mode != "likelihood"))
    throw FormatError("--eval-limit and --eval-mode need --eval-task");
  if (keep_best == "accuracy" && task.empty()) throw FormatError("--keep-best accuracy needs --eval-task");
  if (!keep_best.empty() && out.empty()) throw FormatError("--keep-best needs --out (the best goes beside it)");
  if (patience > 0 && keep_best.empty()) throw FormatError("--patience needs --keep-best (the metric it watches)");
  if (!task.empty() && !std::filesystem::is_regular_file(task))
    throw FormatError("--eval-task " + task + ": no such file");
}

std::string best_path(const std::string& out) {
  const std::filesystem::path p(out);
  const std::string ext = p.extension().string();
  return (p.parent_path() / (p.stem().string() + ".best" + ext)).string();
}

void FlowFlags::add(CLI::App& app, const std::string& flag, const std::string& every_flag) {
  app.add_option(flag, path,
                 "record the adapters' gradient flow during the run: one JSON row per module every " + every_flag +
                     " steps (docs/05-gradient-flow.md lists the fields)");
  app.add_option(every_flag, every, "gradient-flow row every N steps (and the last)")
      ->capture_default_str()
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

std::function<std::string(int64_t)> sampler(models::LlamaModel& model, const models::Tokenizer& tok,
                                            const RunFlags& run) {
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

void check_writable(const std::string& path, const char* flag, bool atomic) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string at = std::string(flag) + " " + path;
  if (fs::is_directory(path, ec)) throw FormatError(at + ": is a directory (give a file name)");
  if (atomic && fs::exists(path, ec) && !fs::is_regular_file(path, ec))
    throw FormatError(at + ": is not a regular file (a device or fifo cannot be replaced atomically)");
  if (!atomic && fs::exists(path, ec)) {  // a stream (metrics) may go to a device such as /dev/null
    if (::access(path.c_str(), W_OK) != 0) throw FormatError(at + ": cannot write there: " + std::strerror(errno));
    return;
  }
  const fs::path dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) throw FormatError(at + ": cannot write there (no folder " + dir.string() + ")");
  // A probe created exclusively (never through an existing file or symlink), then removed.
  std::string probe = (dir / (".cg_probe.XXXXXX")).string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) throw FormatError(at + ": cannot write there: " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

void check_writable_folder(const std::string& path, const char* flag, const std::vector<std::string>& files) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string at = std::string(flag) + " " + path;
  if (!fs::exists(path, ec)) {  // created by the writer: its parent must take it
    check_writable(path, flag);
    return;
  }
  if (!fs::is_directory(path, ec))
    throw FormatError(at + ": exists and is not a folder (a path ending in .safetensors writes one file)");
  for (const std::string& f : files) check_writable((fs::path(path) / f).string(), flag);
}

void check_outputs(const std::vector<std::pair<std::string, const char*>>& inputs, const std::vector<Output>& outputs) {
  namespace fs = std::filesystem;
  // What each output writes: the file, or the folder and the files in it.
  auto written = [](const Output& o) {
    std::vector<std::string> w{o.path};
    for (const std::string& f : o.folder_files) w.push_back((fs::path(o.path) / f).string());
    return w;
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Output& o = outputs[i];
    if (o.path.empty()) continue;
    if (o.folder_files.empty()) check_writable(o.path, o.flag, std::string(o.flag) != "--metrics");
    else check_writable_folder(o.path, o.flag, o.folder_files);
    for (const std::string& w : written(o)) {
      for (const auto& [in, in_flag] : inputs)
        if (models::same_file(w, in))
          throw FormatError(std::string(o.flag) + " " + o.path + " is the same file as " + in_flag +
                            " (refusing to overwrite an input)");
      for (size_t j = 0; j < i; ++j)
        for (const std::string& v : written(outputs[j]))
          if (!outputs[j].path.empty() && models::same_file(w, v))
            throw FormatError(std::string(o.flag) + " " + o.path + " is the same file as " + outputs[j].flag);
    }
  }
}

models::LoopOptions loop_options(const RunFlags& run) {
  models::LoopOptions o;
  o.steps = run.steps;
  o.stop_after = run.stop_after;
  o.eval_every = run.eval_every;
  o.eval_batches = run.eval_batches;
  o.sample_every = run.sample_every;
  o.log_every = run.log_every;
  o.checkpoint_every = run.checkpoint_every;
  o.metrics = run.metrics;
  o.checkpoint = run.checkpoint;
  o.resume = run.resume;
  return o;
}

}  // namespace cg::tools
