// tools/generate.cpp — sample text from a Llama checkpoint (llama2.c .bin, HF .safetensors or
// folder, GGUF). Plain mode works as llama2.c's run.c does: BOS + prompt, one token per position
// through the KV cache, stop at --steps positions or at BOS. --chat renders the model's chat
// template for one user turn (with its default system message, or --system) and prints only
// the assistant's reply, stopping at end-of-turn/EOS or after --steps new tokens.
// --adapter-in runs an adapter (PEFT folder or .safetensors file) unmerged.
// The text goes to stdout as it is produced; speeds go to stderr.
#include <cstdio>
#include <optional>

#include "engine/backend.h"
#include "models/io/adapter_file.h"
#include "models/io/checkpoint.h"
#include "models/llama/generation.h"
#include "models/text/chat_template.h"
#include "tools/common/cli.h"
#include "tools/common/precision.h"

int main(int argc, char** argv) {
  CLI::App app{"Generate text from a Llama checkpoint (greedy with --temperature 0).", "generate"};
  std::string model_path, tok_path, adapter_in, device = "cpu", chat, system, chat_template;
  cg::models::GenerateOptions opt;
  int threads = 0;
  cg::tools::PrecisionFlag precision;
  app.add_option("--model", model_path, "checkpoint: llama2.c .bin, HF .safetensors or folder, or .gguf")->required();
  app.add_option("--tokenizer", tok_path,
                 "tokenizer (tok*.bin, tokenizer.json, .gguf, HF folder, 'byte'); default: the model's own");
  app.add_option("--adapter-in", adapter_in,
                 "run with this adapter, unmerged (a PEFT folder or .safetensors file: LoRA, MoSLoRA, LinChain)");
  auto* prompt_opt = app.add_option("--prompt", opt.prompt, "text to start from (encoded after BOS)");
  auto* chat_opt = app.add_option("--chat", chat, "one user message: reply as the model's chat template says");
  chat_opt->excludes(prompt_opt);
  app.add_option("--system", system, "system message for --chat (default: the template's own, if any)")->needs(chat_opt);
  app.add_option("--chat-template", chat_template,
                 "override the template family: chatml, llama2, llama3, zephyr, gemma")
      ->needs(chat_opt)
      ->check(CLI::IsMember({"chatml", "llama2", "llama3", "zephyr", "gemma"}));
  app.add_option("--steps", opt.steps,
                 "plain: positions in total, BOS included; --chat: most new tokens (0 or > context: the context length)")
      ->capture_default_str();
  app.add_option("--temperature", opt.temperature, "softmax temperature; 0 = greedy argmax")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", opt.top_p, "nucleus sampling mass (≤ 0 or ≥ 1: no truncation)")->capture_default_str();
  app.add_option("--seed", opt.seed, "sampling seed")->capture_default_str();
  app.add_option("--device", device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", threads, "CPU threads (0: the library default)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  precision.add(app);
  return cg::tools::run_tool(app, argc, argv, [&] {
    if (threads > 0) cg::set_num_threads(threads);
    precision.apply(device == "cpu");
    const cg::Device dev = device == "cuda" ? cg::Device::CUDA : cg::Device::CPU;
    // The adapter is read and checked before the (possibly large) model.
    std::optional<cg::models::AdapterFile> adapter;
    if (!adapter_in.empty()) adapter = cg::models::read_adapter_file(adapter_in);
    const cg::models::Checkpoint ckpt = cg::models::read_checkpoint(model_path);
    auto model = cg::models::LlamaModel::from_checkpoint(ckpt, dev);
    cg::nn::AdapterSet adapters;  // attached to the model's Linear modules, run unmerged
    if (adapter) adapters = cg::models::attach_adapter_file(*adapter, model->linears(), dev, adapter_in);
    auto tok = cg::models::tokenizer_for(tok_path, model_path, static_cast<int>(model->config().vocab_size));
    auto emit = [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    if (!chat.empty()) {
      namespace m = cg::models;
      const m::ChatFormat f = chat_template.empty() ? m::detect_chat_format(tok->chat_template())
                                                    : m::chat_format_by_name(chat_template);
      std::vector<m::ChatMessage> msgs;
      if (!system.empty()) msgs.push_back({"system", system});
      msgs.push_back({"user", chat});
      const std::string text = m::render_chat(f, tok->chat_template(), msgs, true);
      std::vector<int> stop;
      if (tok->eos_id() >= 0) stop.push_back(tok->eos_id());
      for (const std::string& s : m::chat_stop_tokens(f))
        if (tok->token_id(s) >= 0) stop.push_back(tok->token_id(s));
      const std::vector<int> ids = tok->encode(text, false, false);  // the template writes any BOS itself
      const auto st =
          m::continue_tokens(*model, *tok, ids, opt.steps, stop, opt.temperature, opt.top_p, opt.seed, emit);
      std::printf("\n");
      std::fflush(stdout);
      std::fprintf(stderr, "prompt %lld tokens at %.1f tok/s; %zu new tokens at %.1f tok/s%s\n",
                   static_cast<long long>(st.prompt_tokens), st.prompt_tokens_per_second(), st.new_tokens.size(),
                   st.decode_tokens_per_second(), st.stopped ? " (end of turn)" : "");
      return 0;
    }
    const auto st = cg::models::generate(*model, *tok, opt, emit);
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "achieved tok/s: %f\n", st.tokens_per_second());
    return 0;
  });
}
