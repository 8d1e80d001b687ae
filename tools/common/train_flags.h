// tools/common/train_flags.h — what train, finetune and gradflow share: their data,
// optimizer, run and gradient-flow flags, a sampler for --sample-every, the output checks,
// and the run flags as the training loop's options (models/train/train_loop.h runs it).
// Every flag is checked by validate() before anything is loaded (one line, exit 2).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/dtype.h"
#include "models/io/train_state.h"
#include "models/text/data.h"
#include "models/text/tokenizer.h"
#include "models/llama/llama.h"
#include "models/train/train_loop.h"
#include "models/train/trainer.h"
#include "nn/optim.h"

namespace cg::tools {

// Where training text comes from: --data FILE (plain text; or, named *.json / *.jsonl,
// instruction records: models/text/instruct_data.h), --text FILE (finetune: the whole file as
// one sequence, BOS first, as evaluate encodes it) or --arith add|sub (the embedded
// arithmetic language, generated in memory).
struct DataFlags {
  std::string data, text, arith, tokenizer = "byte";
  int64_t arith_lines = 20000;
  int arith_max = 19;
  int64_t seq = 128, batch = 8;
  double val_frac = 0.05;
  // Instruction records: cutoff (tokens per sample), loss on the response only, packing,
  // a validation file instead of the --val-frac split, the chat template family.
  static constexpr int64_t kDefaultCutoff = 256;  // LLM-Adapters' cutoff_len
  int64_t cutoff = 0;                             // 0: kDefaultCutoff, or the model's context + 1 when that is shorter
  bool mask_prompt = false, pack = false;
  std::string val_data, chat_template;
  bool records() const;  // --data names a .json / .jsonl file
  void add(CLI::App& app, bool allow_text);
  // Values in range, --arith settings that can be generated (held_out_eval: an eval set
  // of held-out problems is wanted too).
  void validate(bool held_out_eval = false) const;
  // Reads/generates the text, encodes it, builds the dataset. --text: the whole file is one
  // window (seq = its tokens − 1), refused when longer than max_seq. Records: rendered
  // with the tokenizer (its chat template for chat records), rows of cutoff − 1 positions;
  // without --val-data a fixed share of them (--val-frac, chosen by a seed-independent
  // permutation) is held out.
  std::unique_ptr<models::Dataset> load(const models::Tokenizer& tok, int64_t max_seq, uint64_t seed);
  std::string describe() const;  // after load(): the source, its token hash, seq, val_frac
  std::vector<std::pair<std::string, const char*>> inputs() const;  // files read, for check_outputs

 private:
  std::unique_ptr<models::Dataset> load_records(const models::Tokenizer& tok, int64_t max_seq);
  std::string loaded_;
};

struct OptimFlags {
  std::string optimizer = "adamw", schedule = "cosine";
  double lr = 3e-4, weight_decay = 0.0, clip = 1.0, momentum = 0.0, min_lr_frac = 0.0;
  int64_t warmup = 0;
  int64_t accum = 1;
  void add(CLI::App& app);
  nn::OptimConfig config(int64_t total_steps) const;
};
// The optimizer and schedule of a config, as a checkpoint records them.
std::string describe(const nn::OptimConfig& c);

struct RunFlags {
  int64_t steps = 200;
  uint64_t seed = 0;
  int64_t eval_every = 50, eval_batches = 8, sample_every = 0, sample_tokens = 64, log_every = 10;
  std::string metrics, checkpoint, resume, device_name = "cpu";
  static constexpr int64_t kDefaultCheckpointEvery = 100;
  int64_t checkpoint_every = kDefaultCheckpointEvery;
  int64_t stop_after = 0;  // 0: run to --steps
  bool skip_nonfinite = false;
  int threads = 0;
  void add(CLI::App& app);
  void validate() const;
  void apply() const;  // threads
  Device device() const;
};

// finetune's evaluation during training: task accuracy at each evaluation (--eval-task, with
// --eval-every's cadence), keeping the best parameters (--keep-best) and stopping early
// (--patience evaluations without improvement of the --keep-best metric).
struct EvalFlags {
  std::string task, mode = "likelihood", keep_best;
  int64_t limit = 100, patience = 0;
  void add(CLI::App& app);
  void validate(const std::string& out) const;  // --keep-best needs --out, accuracy needs --eval-task, ...
};
// OUT with ".best" before its extension: "a/x.safetensors" → "a/x.best.safetensors".
std::string best_path(const std::string& out);

// finetune --flow / gradflow --metrics on a model: the gradient-flow recorder's options
// (models/study/flow_recorder.h). `flag` names the file flag in --help and messages.
struct FlowFlags {
  std::string path, modules;
  int every = 10;
  void add(CLI::App& app, const std::string& flag, const std::string& every_flag);
  void validate() const;  // --flow-modules must be a regex (checked before a model is read)
};

// Fails with FormatError unless `path` (when set) can be created (not a directory, its
// folder exists and is writable); checked before a run starts so a bad --out does not
// waste the run. atomic: the file will be replaced by rename, so an existing device or fifo
// is refused; otherwise (a stream such as --metrics) it may be one.
void check_writable(const std::string& path, const char* flag, bool atomic = true);
// The same for an output folder (a PEFT adapter folder): an existing folder must be
// writable, a new one must be creatable; the files it will hold must not be other than
// regular files.
void check_writable_folder(const std::string& path, const char* flag, const std::vector<std::string>& files);
// An output of a tool: a file, or (folder_files non-empty) a folder and the files written in it.
struct Output {
  Output(std::string p, const char* f, std::vector<std::string> files = {})
      : path(std::move(p)), flag(f), folder_files(std::move(files)) {}
  std::string path;
  const char* flag;
  std::vector<std::string> folder_files;
};
// check_writable (check_writable_folder) for each output, and no output (or file in an
// output folder) the same file as an input or as another output (models::same_file). Inputs
// are (path, flag); empty paths are skipped; --metrics is checked as a stream, the rest as
// atomic outputs.
void check_outputs(const std::vector<std::pair<std::string, const char*>>& inputs, const std::vector<Output>& outputs);

// --sample-every's line: "sample @STEP: TEXT", --sample-tokens tokens at temperature 0.8
// from BOS, seeded by --seed + STEP (the model as it is, adapters included).
std::function<std::string(int64_t)> sampler(models::LlamaModel& model, const models::Tokenizer& tok,
                                            const RunFlags& run);

// What the training loop (models/train/train_loop.h) takes from the run flags.
models::LoopOptions loop_options(const RunFlags& run);

}  // namespace cg::tools
