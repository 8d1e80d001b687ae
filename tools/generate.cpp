// tools/generate.cpp — sample text from a Llama checkpoint (llama2.c .bin or HF
// .safetensors) with a llama2.c tokenizer, the way llama2.c's run.c does: BOS + prompt,
// one token per position through the KV cache, stop at --steps positions or at BOS.
// The text goes to stdout as it is produced; "achieved tok/s: X" goes to stderr.
#include <cstdio>

#include "engine/backend.h"
#include "models/io/checkpoint.h"
#include "models/llama/generation.h"
#include "tools/common/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Generate text from a Llama checkpoint (greedy with --temperature 0).", "generate"};
  std::string model_path, tok_path, device = "cpu";
  cg::models::GenerateOptions opt;
  int threads = 0;
  app.add_option("--model", model_path, "checkpoint: llama2.c .bin or HF Llama .safetensors")->required();
  app.add_option("--tokenizer", tok_path, "llama2.c tokenizer (tok*.bin)")->required();
  app.add_option("--prompt", opt.prompt, "text to start from (encoded after BOS)");
  app.add_option("--steps", opt.steps, "positions in total, BOS included (0 or > context: the context length)")
      ->capture_default_str();
  app.add_option("--temperature", opt.temperature, "softmax temperature; 0 = greedy argmax")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", opt.top_p, "nucleus sampling mass (≤ 0 or ≥ 1: no truncation)")->capture_default_str();
  app.add_option("--seed", opt.seed, "sampling seed")->capture_default_str();
  app.add_option("--device", device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", threads, "CPU threads (0: the library default)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  return cg::tools::run_tool(app, argc, argv, [&] {
    if (threads > 0) cg::set_num_threads(threads);
    const cg::Device dev = device == "cuda" ? cg::Device::CUDA : cg::Device::CPU;
    const cg::models::Checkpoint ckpt = cg::models::read_checkpoint(model_path);
    auto model = cg::models::LlamaModel::from_checkpoint(ckpt, dev);
    auto tok = cg::models::load_tokenizer(tok_path, static_cast<int>(model->config().vocab_size));
    const auto st = cg::models::generate(*model, *tok, opt, [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "achieved tok/s: %f\n", st.tokens_per_second());
    return 0;
  });
}
