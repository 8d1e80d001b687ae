// tools/finetune.cpp — fine-tune a frozen base model with a LoRA, MoSLoRA or LinChain
// adapter: only the adapter store trains (no gradients, optimizer state or weight-gradient
// GEMMs for the base). Saves the adapter (a PEFT folder, or one .safetensors file),
// optionally as a plain LoRA (--export-lora) and a merged model, and a JSON summary for
// comparison tables. --base-dtype bf16 stores the frozen base's matrices once in bf16
// (LlamaModel::store_base_bf16). Interrupted (Ctrl-C, SIGTERM), it saves its
// checkpoint and outputs and exits 128 + signal with one line.
// --flow records the adapters' gradient flow on the way (models/study/flow_recorder.h).
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "engine/backend.h"
#include "models/io/adapter_file.h"
#include "models/train/arith_eval.h"
#include "models/train/evaluation.h"
#include "models/train/task_generate.h"
#include "models/io/checkpoint.h"
#include "models/llama/generation.h"
#include "models/io/hf_llama.h"
#include "models/io/peft_folder.h"
#include "models/llama/llama.h"
#include "models/study/flow_recorder.h"
#include "models/text/tokenizer.h"
#include "models/text/tokenizer_json.h"
#include "nn/adapters.h"
#include "nn/dist/dist.h"
#include "models/io/file_io.h"
#include "tools/common/cli.h"
#include "models/train/interrupt.h"
#include "tools/common/precision.h"
#include "tools/common/train_flags.h"

using namespace cg;

int main(int argc, char** argv) {
  CLI::App app{"Fine-tune a frozen base model with a LoRA, MoSLoRA or LinChain adapter.", "finetune"};
  std::string model_path, adapter_kind = "linchain", targets = "q,k,v,up,down", init = "kaiming", adapter_in, out,
                          export_lora, merge_out, summary_path;
  int rank = 16, chain = 3;
  bool chain_bias = false;
  double alpha = 32, dropout = 0;
  int64_t eval_arith = 0;
  tools::DataFlags data;
  tools::OptimFlags optf;
  tools::RunFlags run;
  tools::PrecisionFlag precision;
  tools::FlowFlags flow;
  tools::EvalFlags evalf;
  app.add_option("--model", model_path, "base model: llama2.c .bin, HF .safetensors or folder, or .gguf")->required();
  app.add_option("--adapter", adapter_kind, "lora, moslora or linchain")->capture_default_str();
  app.add_option("--rank", rank, "adapter rank r (≤ the smaller side of each adapted weight)")
      ->capture_default_str()
      ->check(tools::int_range(1, 4096));
  app.add_option("--chain", chain, "LinChain length n (r×r factors)")
      ->capture_default_str()
      ->check(tools::int_range(1, 64));
  app.add_option("--alpha", alpha, "scale s = alpha / r")->capture_default_str()->check(tools::real_range(-1e6, 1e6));
  app.add_option("--targets", targets, "modules to adapt: q,k,v,o,gate,up,down")->capture_default_str();
  app.add_option("--init", init, "mixer / chain-factor init: kaiming, identity or orthogonal")->capture_default_str();
  app.add_flag("--chain-bias", chain_bias,
               "linchain: a bias on every chain factor, as the authors' code (nn.Linear(r, r)); default: the paper's "
               "linear chain. lora: one bias on A's output, s·B·(A·x + b) (the control; saved only as .safetensors)");
  app.add_option("--dropout", dropout,
                 "adapter dropout p on the adapter's input during training (PEFT's lora_dropout; the base path sees x "
                 "unchanged; masks from --seed and the data position; with --adapter-in: default the file's)")
      ->capture_default_str()
      ->check(tools::real_range(0, 0.99));
  app.add_option(
      "--adapter-in", adapter_in,
      "start from this adapter (a PEFT folder or .safetensors file; it fixes kind, rank, chain, alpha, targets)");
  data.add(app, /*allow_text=*/true);
  optf.add(app);
  run.add(app);
  precision.add(app);
  flow.add(app, "--flow", "--flow-every");
  evalf.add(app);
  app.add_option("--out", out,
                 "save the trained adapter here: a PEFT folder (adapter_config.json + adapter_model.safetensors), or "
                 "one file when the path ends in .safetensors");
  app.add_option("--export-lora", export_lora,
                 "also save it as a plain LoRA, the MoSLoRA/LinChain chain folded into A (same update; not with "
                 "chain biases): a PEFT folder, or one .safetensors file");
  app.add_option(
      "--merge-out", merge_out,
      "save the base with the adapter merged in (HF Llama safetensors; an adapter with chain biases adds the biases, "
      "attention_bias / mlp_bias in its config); build/bin/convert --save-hf makes an HF folder of it");
  std::string base_dtype = "f32";
  app.add_option("--base-dtype", base_dtype,
                 "how the frozen base's weight matrices are stored: f32, or bf16 (attention, MLP and embedding/head "
                 "stored once in bfloat16, half their memory; needs --precision bf16, whose GEMMs round f32 weights "
                 "to these same bits; the one difference is the embedding lookup, which then reads rounded rows; "
                 "norms, adapters and optimizer state stay f32; CPU only; not with --merge-out)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--summary", summary_path, "write a JSON summary of the run here");
  std::string config_path;
  app.add_option("--config", config_path,
                 "read flags from this JSON object ({\"lr\": 3e-4, \"chain-bias\": true, ...}; keys are these flags "
                 "without --; flags on the command line win; recipes/ has the papers' settings)");
  app.add_option("--eval-arith", eval_arith, "with --arith: exact-match accuracy on N held-out problems at the end")
      ->capture_default_str()
      ->check(tools::int_range(0, 1000000));
  return nn::finish(tools::run_tool(app, argc, argv, [&] {
    // Every flag is checked before anything is read.
    if (eval_arith > 0 && data.arith.empty()) throw FormatError("--eval-arith needs --arith");
    data.validate(eval_arith > 0);
    run.validate();
    evalf.validate(out);
    const bool base_bf16 = base_dtype == "bf16";
    if (base_bf16 && precision.value != "bf16")
      throw FormatError("--base-dtype bf16 needs --precision bf16 (a bf16-stored weight cannot give an f32 product)");
    if (base_bf16 && !merge_out.empty())
      throw FormatError("--merge-out needs --base-dtype f32 (the adapter merges into f32 weights)");
    if (base_bf16 && run.device() != Device::CPU)
      throw FormatError("--base-dtype bf16 is CPU-only (the CUDA backend has no bf16-stored operands)");
    const std::string best_out = evalf.keep_best.empty() ? "" : tools::best_path(out);
    nn::Communicator& comm = nn::world();  // under mpirun: data parallel, rank 0 reports
    run.apply();
    precision.apply(run.device() == Device::CPU);
    if (comm.lead()) {
      auto inputs = data.inputs();
      inputs.insert(inputs.end(), {{model_path, "--model"}, {adapter_in, "--adapter-in"}, {evalf.task, "--eval-task"}});
      if (!adapter_in.empty() && std::filesystem::is_directory(adapter_in))  // a PEFT folder: the files in it
        for (const char* f : {models::kPeftWeightsName, models::kPeftConfigName})
          inputs.emplace_back((std::filesystem::path(adapter_in) / f).string(), "--adapter-in");
      if (!models::same_file(run.resume, run.checkpoint)) inputs.emplace_back(run.resume, "--resume");
      const std::vector<std::string> peft_files{models::kPeftWeightsName, models::kPeftConfigName};
      auto adapter_out = [&](const std::string& p, const char* flag) {
        return tools::Output{p, flag, models::is_adapter_folder_path(p) ? peft_files : std::vector<std::string>{}};
      };
      tools::check_outputs(inputs, {adapter_out(out, "--out"),
                                    adapter_out(export_lora, "--export-lora"),
                                    {merge_out, "--merge-out"},
                                    {summary_path, "--summary"},
                                    {run.metrics, "--metrics"},
                                    {run.checkpoint, "--checkpoint"},
                                    {flow.path, "--flow"},
                                    {best_out, "--keep-best (OUT.best)"}});
    }
    flow.validate();
    // The task is read before the model, so a damaged file costs no loading time.
    const std::vector<models::TaskItem> eval_items = evalf.task.empty()
                                                         ? std::vector<models::TaskItem>{}
                                                         : models::read_task(evalf.task, evalf.mode == "likelihood");
    // The adapter flags are checked before the (possibly large) base model is read.
    nn::AdapterConfig flags_cfg;
    flags_cfg.kind = nn::parse_adapter_kind(adapter_kind);
    flags_cfg.rank = rank;
    flags_cfg.chain = chain;
    flags_cfg.alpha = alpha;
    flags_cfg.targets = nn::parse_targets(targets);
    flags_cfg.init = nn::parse_mixer_init(init);
    flags_cfg.chain_bias = chain_bias;
    flags_cfg.dropout = dropout;
    flags_cfg.validate();
    // An adapter to start from is read (and validated) before the model too.
    std::optional<models::AdapterFile> start;
    if (!adapter_in.empty()) start = models::read_adapter_file(adapter_in);
    if (!export_lora.empty() && (start ? start->config.chain_bias : chain_bias))
      models::export_plain_lora(start ? *start : models::AdapterFile{flags_cfg, {}, {}});  // throws: says why
    if (const nn::AdapterConfig& c = start ? start->config : flags_cfg; c.kind == nn::AdapterKind::LoRA && c.chain_bias)
      for (const std::string& p : {out, best_out})  // refused before training, not after it
        if (!p.empty() && models::is_adapter_folder_path(p))
          throw FormatError("--out " + p + ": " + models::kLoraBiasNotPeft);
    models::Checkpoint ck = models::read_checkpoint(model_path);
    auto model = models::LlamaModel::from_checkpoint(ck, run.device());
    ck = models::Checkpoint{};  // the model holds its own copy of the weights
    // Without --tokenizer, the tokenizer the model carries (GGUF vocabulary, HF tokenizer.json).
    std::unique_ptr<models::Tokenizer> tok = app.count("--tokenizer") ? nullptr
                                                                      : models::tokenizer_from_model(model_path);
    if (tok && tok->vocab_size() != model->config().vocab_size)
      throw FormatError(model_path + ": its tokenizer has " + std::to_string(tok->vocab_size()) +
                        " tokens, the model " + std::to_string(model->config().vocab_size));
    if (!tok) tok = models::load_tokenizer(data.tokenizer, static_cast<int>(model->config().vocab_size));
    // The data before any line is printed: a bad records file is one line.
    const std::unique_ptr<models::Dataset> ds = data.load(*tok, model->config().seq_len, run.seed);
    model->params().set_trainable(false);  // the base stays frozen
    nn::AdapterSet adapters;
    if (start) {
      adapters = models::attach_adapter_file(*start, model->linears(), run.device(), adapter_in);
      if (app.count("--dropout")) adapters.config.dropout = dropout;
    } else {
      for (const auto& [name, lin] : model->linears())  // rank ≤ min(in, out) of every adapted weight
        for (const auto& t : flags_cfg.targets) {
          const std::string suffix = "." + nn::target_module_name(t);
          const int64_t side = std::min(lin->in_features(), lin->out_features());
          if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
              rank > side)
            throw FormatError("--rank " + std::to_string(rank) + " is larger than " + name + "'s smaller side " +
                              std::to_string(side) + " (" + std::to_string(lin->out_features()) + "×" +
                              std::to_string(lin->in_features()) + ")");
        }
      adapters = nn::attach_adapters(model->linears(), flags_cfg, run.seed, run.device());
    }
    if (base_bf16) model->store_base_bf16();       // after the adapters: their shapes read the f32 weights
    std::optional<models::FlowRecorder> recorder;  // rank 0 records; off: no observer at all
    if (comm.lead() && !flow.path.empty()) {       // before any output: a filter that matches nothing is a usage error
      const int64_t last = run.stop_after > 0 ? std::min(run.steps, run.stop_after) : run.steps;
      models::FlowOptions fo;
      fo.path = flow.path;
      fo.every = flow.every;
      fo.modules = flow.modules;
      recorder.emplace(adapters, fo, last - 1);
    }
    const nn::AdapterConfig& ac = adapters.config;
    if (comm.lead()) {
      std::fprintf(stderr, "finetune: base %s (%lld parameters, frozen%s)\n", model->config().str().c_str(),
                   static_cast<long long>(model->params().numel()),
                   base_bf16 ? ", weight matrices stored in bf16" : "");
      std::fprintf(stderr, "finetune: %s%s r=%d n=%d alpha=%g%s on %zu modules: %lld trainable parameters\n",
                   nn::adapter_kind_name(ac.kind).c_str(), ac.chain_bias ? " (chain biases)" : "", ac.rank,
                   ac.num_mixers(), ac.alpha, ac.dropout > 0 ? (" dropout=" + std::to_string(ac.dropout)).c_str() : "",
                   adapters.adapters.size(), static_cast<long long>(adapters.trainable_params()));
      std::fprintf(stderr, "finetune: data %s\n", ds->describe().c_str());
    }
    models::TrainOptions to;
    to.batch = data.batch;
    to.accum = optf.accum;
    to.data_seed = run.seed;
    to.comm = &comm;
    to.skip_nonfinite = run.skip_nonfinite;
    if (recorder) to.observer = &*recorder;
    to.adapters = &adapters;
    const nn::OptimConfig oc = optf.config(run.steps);
    models::Trainer trainer(*model, *adapters.store, oc, *ds, to);
    if (comm.lead() && comm.size() > 1)
      std::fprintf(stderr, "finetune: data parallel over %d processes (%s), %lld sequences per rank per micro-batch\n",
                   comm.size(), comm.name().c_str(), static_cast<long long>(data.batch / comm.size()));
    models::TrainLoop loop(trainer, tools::loop_options(run), "finetune");
    if (!run.checkpoint.empty() || !run.resume.empty()) {  // what run a checkpoint belongs to
      const Tensor base = model->params().flat().to(Device::CPU);
      loop.describe["base"] = model->config().str() + " weights_fnv1a=" +
                              std::to_string(models::fnv1a64(base.raw(), static_cast<size_t>(base.nbytes())));
      if (base_bf16) {  // the matrices' bf16 bits (flat() then holds the norms only)
        const Tensor b16 = model->params().flat_bf16().to(Device::CPU);
        loop.describe["base"] +=
            " bf16_weights_fnv1a=" + std::to_string(models::fnv1a64(b16.raw(), static_cast<size_t>(b16.nbytes())));
      }
      loop.describe["adapter"] =
          nn::adapter_kind_name(ac.kind) + " r=" + std::to_string(ac.rank) + " n=" + std::to_string(ac.num_mixers()) +
          " alpha=" + std::to_string(ac.alpha) + " targets=" + nn::target_modules_csv(ac.targets) +
          " init=" + nn::mixer_init_name(ac.init) + " chain_bias=" + (ac.chain_bias ? "on" : "off") +
          " dropout=" + std::to_string(ac.dropout) + " adapter_in=" + (adapter_in.empty() ? "none" : "given");
      loop.describe["optimizer"] = tools::describe(oc);
      loop.describe["precision"] = precision.value;  // GEMM precision: a resume under another is not bit-identical
      loop.describe["data"] = data.describe() + " batch=" + std::to_string(data.batch) +
                              " accum=" + std::to_string(optf.accum) + " seed=" + std::to_string(run.seed);
    }
    if (comm.lead()) loop.sample = tools::sampler(*model, *tok, run);
    if (!eval_items.empty())
      loop.accuracy = [&] {
        if (evalf.mode == "likelihood") return models::score_task(*model, *tok, eval_items, evalf.limit).accuracy();
        models::GenerateEvalOptions go;
        go.limit = evalf.limit;
        return models::score_task_generate(*model, *tok, eval_items, go).accuracy();
      };
    loop.keep_best = evalf.keep_best;
    loop.patience = evalf.patience;
    if (!best_out.empty()) loop.save_best = [&] { models::save_adapter(best_out, adapters); };
    Backend& be = backend_for(model->device());
    be.stats().reset_peak();
    loop.run();
    const double peak_mb = static_cast<double>(be.stats().peak_bytes) / (1024.0 * 1024.0);
    if (loop.exit_code) return loop.exit_code;  // a non-finite loss/gradient: its line is printed
    const int stop_code = loop.signal ? 128 + loop.signal : 0;
    if (recorder && comm.lead()) {
      recorder->close();
      std::fprintf(stderr, "finetune: wrote gradient flow %s (%lld rows, %zu modules)\n", flow.path.c_str(),
                   static_cast<long long>(recorder->rows_written()), recorder->modules());
    }
    if (!comm.lead()) return stop_code;  // rank 0 evaluates and writes the files
    double accuracy = -1;
    if (eval_arith > 0 && !loop.signal) {
      const auto op = data.arith == "add" ? models::ArithOp::Add : models::ArithOp::Sub;
      accuracy = models::arith_accuracy(*model, *tok, op, eval_arith, data.arith_max, run.seed);
      std::fprintf(stderr, "finetune: exact-match accuracy on %lld held-out problems: %.1f%%\n",
                   static_cast<long long>(eval_arith), 100 * accuracy);
    }
    std::string wrote;  // for the one line of an interrupted run
    const models::AdapterWriteInfo info{model_path};
    if (!out.empty()) {
      models::save_adapter(out, adapters, info);
      if (!loop.signal) std::fprintf(stderr, "finetune: wrote adapter %s\n", out.c_str());
      wrote += "adapter " + out;
    }
    if (!export_lora.empty()) {
      models::write_adapter(export_lora, models::export_plain_lora(models::adapter_file_of(adapters)), info);
      if (!loop.signal) std::fprintf(stderr, "finetune: wrote plain LoRA %s\n", export_lora.c_str());
      wrote += std::string(wrote.empty() ? "" : ", ") + "plain LoRA " + export_lora;
    }
    if (!merge_out.empty()) {
      adapters.merge_all();
      models::write_hf_llama(merge_out, model->to_checkpoint());
      adapters.unmerge_all();
      if (!loop.signal) std::fprintf(stderr, "finetune: wrote merged model %s\n", merge_out.c_str());
      wrote += std::string(wrote.empty() ? "" : ", ") + "merged model " + merge_out;
    }
    nlohmann::json summary{{"adapter", nn::adapter_kind_name(ac.kind)},
                           {"rank", ac.rank},
                           {"chain", ac.num_mixers()},
                           {"chain_bias", ac.chain_bias},
                           {"dropout", ac.dropout},
                           {"trainable_params", adapters.trainable_params()},
                           {"steps", loop.steps_done},
                           {"final_loss", loop.last_loss},
                           {"final_val_loss", loop.last_val_loss},
                           {"ms_per_step", loop.mean_ms},
                           {"precision", precision.value},
                           {"base_dtype", base_dtype},
                           {"peak_tensor_mb", peak_mb}};
    if (accuracy >= 0) summary["accuracy"] = accuracy;
    if (loop.last_accuracy >= 0) summary["task_accuracy"] = loop.last_accuracy;
    if (!evalf.keep_best.empty()) {
      summary["best_metric"] = evalf.keep_best;
      summary["best_step"] = loop.best_step;
      if (loop.best_step >= 0) summary["best_value"] = loop.best_value;
      summary["best_out"] = best_out;
    }
    if (evalf.patience > 0) summary["stopped_early"] = loop.stopped_early;
    if (loop.skipped) summary["skipped_updates"] = loop.skipped;
    if (loop.signal) summary["interrupted"] = models::signal_name(loop.signal);
    if (!summary_path.empty()) {
      const std::string text = summary.dump(2) + "\n";
      models::write_file_atomic(summary_path, std::vector<uint8_t>(text.begin(), text.end()));
    }
    if (loop.signal) {
      std::fprintf(stderr, "%s\n", loop.stop_line(wrote).c_str());
      return stop_code;
    }
    std::printf("%s\n", summary.dump().c_str());
    if (std::fflush(stdout) != 0) throw FormatError("cannot write the summary to stdout");
    return 0;
  }));
}
