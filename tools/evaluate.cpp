// tools/evaluate.cpp — score a Llama checkpoint: next-token loss and perplexity on a text
// file (context-sized, non-overlapping windows; see models/train/evaluation.h), or accuracy on
// an LLM-Adapters multiple-choice task file; with --adapter-in, through an adapter (PEFT folder
// or .safetensors file) run unmerged.
#include <cstdio>
#include <optional>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "models/io/adapter_file.h"
#include "models/io/checkpoint.h"
#include "models/train/evaluation.h"
#include "models/io/file_io.h"
#include "tools/common/cli.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Evaluate a Llama checkpoint.\n"
      "  --text FILE: the file's bytes are encoded (BOS first when the tokenizer adds one) and scored in non-overlapping\n"
      "    windows of seq_len inputs; every token but the first is predicted once, the first token of\n"
      "    each window is context only. Prints the mean cross-entropy (nats/token) and perplexity.\n"
      "  --task FILE.json: LLM-Adapters list of {instruction, input, output, answer}; the choices are\n"
      "    the instruction's \"Answer format:\" line split on '/'. Each choice is scored by the sum of\n"
      "    the log-probabilities of its tokens after the Alpaca-style prompt \"Below is an instruction\n"
      "    that describes a task. Write a response that appropriately completes the request.\\n\\n\n"
      "    ### Instruction:\\n{instruction}\\n\\n### Response:\\nthe correct answer is \" (contexts longer than\n"
      "    seq_len are cut from the left); the prediction is the highest-scoring choice.",
      "evaluate"};
  std::string model_path, tok_path, text_path, task_path, adapter_in, device = "cpu";
  int64_t limit = 0;
  int threads = 0;
  bool json = false;
  app.add_option("--model", model_path, "checkpoint: llama2.c .bin, HF .safetensors or folder, or .gguf")->required();
  app.add_option("--tokenizer", tok_path,
                 "tokenizer (tok*.bin, tokenizer.json, .gguf, HF folder, 'byte'); default: the model's own");
  app.add_option("--adapter-in", adapter_in,
                 "run with this adapter, unmerged (a PEFT folder or .safetensors file: LoRA, MoSLoRA, LinChain)");
  auto* text_opt = app.add_option("--text", text_path, "text file to score");
  auto* task_opt = app.add_option("--task", task_path, "LLM-Adapters multiple-choice task (.json)");
  text_opt->excludes(task_opt);
  app.add_option("--limit", limit, "score only the first N task items (0: all)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", json, "print one JSON object");
  app.add_option("--device", device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", threads, "CPU threads (0: the library default)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  return cg::tools::run_tool(app, argc, argv, [&] {
    if (text_path.empty() && task_path.empty()) throw cg::FormatError("give --text FILE or --task FILE.json");
    if (threads > 0) cg::set_num_threads(threads);
    const cg::Device dev = device == "cuda" ? cg::Device::CUDA : cg::Device::CPU;
    // The adapter is read and checked before the (possibly large) model.
    std::optional<cg::models::AdapterFile> adapter;
    if (!adapter_in.empty()) adapter = cg::models::read_adapter_file(adapter_in);
    const cg::models::Checkpoint ckpt = cg::models::read_checkpoint(model_path);
    auto model = cg::models::LlamaModel::from_checkpoint(ckpt, dev);
    cg::nn::AdapterSet adapters;  // attached to the model's Linear modules, run unmerged
    if (adapter) adapters = cg::models::attach_adapter_file(*adapter, model->linears(), dev, adapter_in);
    auto tok = cg::models::tokenizer_for(tok_path, model_path, static_cast<int>(model->config().vocab_size));
    if (!text_path.empty()) {
      const std::vector<uint8_t> bytes = cg::models::read_file_bytes(text_path);
      const auto s = cg::models::score_text(*model, *tok, std::string(bytes.begin(), bytes.end()));
      if (json)
        std::printf("%s\n", nlohmann::json{{"loss", s.loss}, {"ppl", s.ppl()}, {"tokens", s.tokens}, {"text", text_path}}.dump().c_str());
      else
        std::printf("loss %.6f nats/token, ppl %.4f, tokens %lld\n", s.loss, s.ppl(), static_cast<long long>(s.tokens));
      return 0;
    }
    const auto items = cg::models::read_task(task_path);
    const auto s = cg::models::score_task(*model, *tok, items, limit);
    if (json)
      std::printf("%s\n", nlohmann::json{{"accuracy", s.accuracy()}, {"correct", s.correct}, {"items", s.items},
                                         {"chance", s.chance}, {"majority", s.majority},
                                         {"majority_answer", s.majority_answer}, {"task", task_path}}.dump().c_str());
    else
      std::printf("accuracy %.4f (%lld/%lld); chance %.4f, majority %.4f (always \"%s\")\n", s.accuracy(),
                  static_cast<long long>(s.correct), static_cast<long long>(s.items), s.chance, s.majority,
                  s.majority_answer.c_str());
    return 0;
  });
}
