// tools/train.cpp — pretrain a Llama-style model from scratch on a text file (or the
// embedded arithmetic language), with a held-out validation split, periodic validation
// loss and samples, JSONL metrics, atomic training checkpoints and bit-exact resume.
// Interrupted (Ctrl-C, SIGTERM), it saves its checkpoint and --out and exits 128 + signal.
#include <cstdio>

#include "engine/backend.h"
#include "models/io/hf_llama.h"
#include "models/llama/generation.h"
#include "models/text/tokenizer.h"
#include "models/train/trainer.h"
#include "nn/dist/dist.h"
#include "models/io/file_io.h"
#include "tools/common/cli.h"
#include "tools/common/precision.h"
#include "tools/common/train_flags.h"

using namespace cg;

int main(int argc, char** argv) {
  CLI::App app{"Pretrain a Llama-style model from scratch.", "train"};
  tools::DataFlags data;
  tools::OptimFlags optf;
  tools::RunFlags run;
  tools::PrecisionFlag precision;
  models::LlamaConfig cfg;
  cfg.dim = 64;
  cfg.n_layers = 4;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 0;  // 0: = heads
  cfg.hidden_dim = 0;  // 0: from dim
  cfg.seq_len = 128;
  std::string out;
  data.add(app, /*allow_text=*/false);
  app.add_option("--dim", cfg.dim, "model width")->capture_default_str()->check(tools::int_range(1, 65536));
  app.add_option("--layers", cfg.n_layers, "transformer blocks")
      ->capture_default_str()
      ->check(tools::int_range(1, 1024));
  app.add_option("--heads", cfg.n_heads, "attention heads")->capture_default_str()->check(tools::int_range(1, 1024));
  app.add_option("--kv-heads", cfg.n_kv_heads, "key/value heads (0: same as --heads)")
      ->capture_default_str()
      ->check(tools::int_range(0, 1024));
  app.add_option("--hidden", cfg.hidden_dim, "SwiGLU width (0: 8·dim/3 rounded up to 8)")
      ->capture_default_str()
      ->check(tools::int_range(0, 1 << 20));
  optf.lr = 1e-3;
  optf.warmup = 20;
  optf.min_lr_frac = 0.1;
  optf.add(app);
  run.add(app);
  precision.add(app);
  app.add_option("--out", out, "write the final model here (HF Llama safetensors)");
  return nn::finish(tools::run_tool(app, argc, argv, [&] {
    data.validate();
    run.validate();
    nn::Communicator& comm = nn::world();  // under mpirun: data parallel, rank 0 reports
    run.apply();
    precision.apply(run.device() == Device::CPU);
    if (comm.lead()) {
      auto inputs = data.inputs();
      if (!models::same_file(run.resume, run.checkpoint)) inputs.emplace_back(run.resume, "--resume");
      tools::check_outputs(inputs, {{out, "--out"}, {run.metrics, "--metrics"}, {run.checkpoint, "--checkpoint"}});
    }
    auto tok = models::load_tokenizer(data.tokenizer, 0);
    cfg.vocab_size = tok->vocab_size();
    cfg.seq_len = data.seq;
    if (cfg.n_kv_heads == 0) cfg.n_kv_heads = cfg.n_heads;
    if (cfg.hidden_dim == 0) cfg.hidden_dim = (8 * cfg.dim / 3 + 7) / 8 * 8;
    cfg.tied_embeddings = false;
    cfg.validate("flags");
    if (data.records())
      cfg.seq_len = (data.cutoff > 0 ? data.cutoff : tools::DataFlags::kDefaultCutoff) - 1;  // rows of records
    const std::unique_ptr<models::Dataset> ds = data.load(*tok, cfg.seq_len, run.seed);
    models::LlamaModel model(cfg, run.seed, run.device());
    model.params().set_trainable(true);
    if (comm.lead())
      std::fprintf(stderr, "train: %s\ntrain: %lld trainable parameters (the whole model); data %s\n",
                   cfg.str().c_str(), static_cast<long long>(model.params().numel()), ds->describe().c_str());
    models::TrainOptions to;
    to.batch = data.batch;
    to.accum = optf.accum;
    to.data_seed = run.seed;
    to.comm = &comm;
    to.skip_nonfinite = run.skip_nonfinite;
    const nn::OptimConfig oc = optf.config(run.steps);
    models::Trainer trainer(model, model.params(), oc, *ds, to);
    if (comm.lead() && comm.size() > 1)
      std::fprintf(stderr, "train: data parallel over %d processes (%s), %lld sequences per rank per micro-batch\n",
                   comm.size(), comm.name().c_str(), static_cast<long long>(data.batch / comm.size()));
    models::TrainLoop loop(trainer, tools::loop_options(run), "train");
    loop.describe["model"] = cfg.str() + " seed=" + std::to_string(run.seed);
    loop.describe["optimizer"] = tools::describe(oc);
    loop.describe["precision"] = precision.value;  // GEMM precision: a resume under another is not bit-identical
    loop.describe["data"] =
        data.describe() + " batch=" + std::to_string(data.batch) + " accum=" + std::to_string(optf.accum);
    loop.sample = [&](int64_t step) {
      models::GenerateOptions go;
      go.steps = run.sample_tokens;
      go.temperature = 0.8;
      go.seed = run.seed + static_cast<uint64_t>(step);
      std::string text;
      models::generate(model, *tok, go, [&](const std::string& piece) { text += piece; });
      return "sample @" + std::to_string(step) + ": " + text;
    };
    loop.run();
    if (loop.exit_code) return loop.exit_code;  // a non-finite loss/gradient: its line is printed
    if (!out.empty() && comm.lead()) {
      models::write_hf_llama(out, model.to_checkpoint());
      if (!loop.signal) std::fprintf(stderr, "train: wrote %s\n", out.c_str());
    }
    if (loop.signal) {
      if (comm.lead()) std::fprintf(stderr, "%s\n", loop.stop_line(out.empty() ? "" : "model " + out).c_str());
      return 128 + loop.signal;
    }
    return 0;
  }));
}
