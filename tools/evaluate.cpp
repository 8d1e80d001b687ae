// tools/evaluate.cpp — score a Llama checkpoint: next-token loss and perplexity on a text
// file (context-sized, non-overlapping windows; see models/train/evaluation.h), or accuracy on
// an LLM-Adapters task file, by the likelihood of each choice or, as the papers do, by
// generating a reply and extracting the answer (models/train/task_generate.h); with
// --adapter-in, through an adapter (PEFT folder or .safetensors file) run unmerged.
#include <chrono>
#include <cstdio>
#include <optional>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "models/io/adapter_file.h"
#include "models/io/checkpoint.h"
#include "models/train/evaluation.h"
#include "models/train/task_generate.h"
#include "models/io/file_io.h"
#include "tools/common/cli.h"
#include "tools/common/precision.h"
#include "tools/common/train_flags.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Evaluate a Llama checkpoint.\n"
      "  --text FILE: the file's bytes are encoded (BOS first when the tokenizer adds one) and scored in non-overlapping\n"
      "    windows of seq_len inputs; every token but the first is predicted once, the first token of\n"
      "    each window is context only. Prints the mean cross-entropy (nats/token) and perplexity.\n"
      "  --task FILE: LLM-Adapters list of {instruction, input, output, answer} (.json), or HellaSwag's\n"
      "    6-line text records; the choices are the instruction's \"Answer format:\" line split on '/'.\n"
      "    The prompt is the Alpaca-style \"Below is an instruction that describes a task. Write a\n"
      "    response that appropriately completes the request.\\n\\n### Instruction:\\n{instruction}\\n\\n\n"
      "    ### Response:\\n\" (BOS first only when the tokenizer adds one; long prompts are cut from the left).\n"
      "    --mode likelihood (default): each choice is scored by the sum of the log-probabilities of its\n"
      "    tokens after the prompt + \"the correct answer is \"; the prediction is the highest-scoring one.\n"
      "    --mode generate: the model replies greedily (--max-new tokens, stopping at EOS / end of turn)\n"
      "    and the answer is the first of LLM-Adapters' patterns in the reply (true|false, solution1|2,\n"
      "    answer1..5, ending1..4, option1|2; items without choices: the last number, or A..E for letters).\n"
      "  Accuracy is printed with the chance and majority baselines and the items per second.",
      "evaluate"};
  std::string model_path, tok_path, text_path, task_path, adapter_in, device = "cpu", mode = "likelihood", items_out;
  int64_t limit = 0;
  cg::models::GenerateEvalOptions gen;
  int threads = 0;
  cg::tools::PrecisionFlag precision;
  bool json = false;
  app.add_option("--model", model_path, "checkpoint: llama2.c .bin, HF .safetensors or folder, or .gguf")->required();
  app.add_option("--tokenizer", tok_path,
                 "tokenizer (tok*.bin, tokenizer.json, .gguf, HF folder, 'byte'); default: the model's own");
  app.add_option("--adapter-in", adapter_in,
                 "run with this adapter, unmerged (a PEFT folder or .safetensors file: LoRA, MoSLoRA, LinChain)");
  auto* text_opt = app.add_option("--text", text_path, "text file to score");
  auto* task_opt = app.add_option("--task", task_path, "LLM-Adapters task (.json) or HellaSwag text");
  text_opt->excludes(task_opt);
  app.add_option("--limit", limit, "score only the first N task items (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--mode", mode, "task scoring: likelihood (of each choice) or generate (reply, then extract)")
      ->capture_default_str()
      ->check(CLI::IsMember({"likelihood", "generate"}))
      ->needs(task_opt);
  app.add_option("--max-new", gen.max_new, "generate: most new tokens per reply")
      ->capture_default_str()
      ->check(cg::tools::int_range(1, 1 << 20));
  app.add_option("--batch", gen.batch, "generate: most items per forward (only prompts of one token length share one)")
      ->capture_default_str()
      ->check(cg::tools::int_range(1, 4096));
  app.add_option("--items-out", items_out,
                 "write one JSON line per task item (prompt, reply, extracted and gold answer)")
      ->needs(task_opt);
  app.add_flag("--json", json, "print one JSON object");
  app.add_option("--device", device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", threads, "CPU threads (0: the library default)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  precision.add(app);
  return cg::tools::run_tool(app, argc, argv, [&] {
    if (text_path.empty() && task_path.empty()) throw cg::FormatError("give --text FILE or --task FILE.json");
    if (mode != "generate" && (app.count("--max-new") || app.count("--batch")))
      throw cg::FormatError("--max-new and --batch need --mode generate");
    cg::tools::check_outputs({{model_path, "--model"}, {tok_path, "--tokenizer"}, {task_path, "--task"}},
                             {{items_out, "--items-out"}});
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
    if (!text_path.empty()) {
      const std::vector<uint8_t> bytes = cg::models::read_file_bytes(text_path);
      const auto s = cg::models::score_text(*model, *tok, std::string(bytes.begin(), bytes.end()));
      if (json)
        std::printf("%s\n",
                    nlohmann::json{{"loss", s.loss}, {"ppl", s.ppl()}, {"tokens", s.tokens}, {"text", text_path}}
                        .dump()
                        .c_str());
      else
        std::printf("loss %.6f nats/token, ppl %.4f, tokens %lld\n", s.loss, s.ppl(), static_cast<long long>(s.tokens));
      return 0;
    }
    const bool generate = mode == "generate";
    const auto items = cg::models::read_task(task_path, /*need_choices=*/!generate);
    std::string lines;  // --items-out, one JSON object per item
    const auto t0 = std::chrono::steady_clock::now();
    cg::models::TaskScore s;
    if (generate) {
      gen.limit = limit;
      s = cg::models::score_task_generate(*model, *tok, items, gen, [&](const cg::models::GeneratedItem& g) {
        if (items_out.empty()) return;
        lines += nlohmann::json{{"index", g.index},
                                {"prompt", g.prompt},
                                {"generation", g.reply},
                                {"extracted", g.extracted},
                                {"answer", items[g.index].answer},
                                {"correct", g.correct},
                                {"stopped", g.stopped},
                                {"prompt_tokens", g.prompt_tokens},
                                {"new_tokens", g.new_tokens},
                                {"cut_tokens", g.cut_tokens}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                 "\n";
      });
    } else {
      s = cg::models::score_task(*model, *tok, items, limit, [&](size_t i, const cg::models::ChoiceScores& cs) {
        if (items_out.empty()) return;
        const auto& it = items[i];
        const std::string& pred = it.choices[static_cast<size_t>(cs.predicted)];
        lines += nlohmann::json{{"index", i},
                                {"prompt", cg::models::task_prompt(it)},
                                {"choices", it.choices},
                                {"logprob", cs.logprob},
                                {"extracted", pred},
                                {"answer", it.answer},
                                {"correct", pred == it.answer}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                 "\n";
      });
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double per_s = seconds > 0 ? static_cast<double>(s.items) / seconds : 0.0;
    if (!items_out.empty()) cg::models::write_file_atomic(items_out, std::vector<uint8_t>(lines.begin(), lines.end()));
    if (json)
      std::printf("%s\n", nlohmann::json{{"accuracy", s.accuracy()},
                                         {"correct", s.correct},
                                         {"items", s.items},
                                         {"chance", s.chance},
                                         {"majority", s.majority},
                                         {"majority_answer", s.majority_answer},
                                         {"task", task_path},
                                         {"mode", mode},
                                         {"seconds", seconds},
                                         {"items_per_second", per_s}}
                              .dump()
                              .c_str());
    else
      std::printf("accuracy %.4f (%lld/%lld); chance %.4f, majority %.4f (always \"%s\"); %s, %.2f items/s\n",
                  s.accuracy(), static_cast<long long>(s.correct), static_cast<long long>(s.items), s.chance,
                  s.majority, s.majority_answer.c_str(), mode.c_str(), per_s);
    return 0;
  });
}
