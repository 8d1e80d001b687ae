// tools/convert.cpp — file conversions. A checkpoint in any supported format (llama2.c .bin, HF
// .safetensors or folder, GGUF: dequantized to float32) to a Hugging Face model folder
// (config.json + model.safetensors, F32) that transformers' from_pretrained loads; and an
// adapter (PEFT folder or .safetensors file) to the other layout (--adapter-out) or to a plain
// LoRA with the chain folded into A (--export-lora), which any LoRA runtime serves.
#include <cstdio>

#include "models/io/adapter_file.h"
#include "models/io/checkpoint.h"
#include "models/io/hf_llama.h"
#include "models/io/peft_folder.h"
#include "tools/common/cli.h"
#include "tools/common/train_flags.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Convert a Llama checkpoint to a Hugging Face folder, or an adapter to a PEFT folder / plain LoRA.\n"
      "  convert --model M --save-hf DIR\n"
      "  convert --adapter-in A [--adapter-out OUT] [--export-lora OUT]",
      "convert"};
  std::string model_path, out, adapter_in, adapter_out, export_lora;
  auto* model_opt =
      app.add_option("--model", model_path, "checkpoint: llama2.c .bin, HF .safetensors or folder, or .gguf");
  auto* save_opt = app.add_option("--save-hf", out, "folder to write (config.json + model.safetensors)");
  model_opt->needs(save_opt);
  save_opt->needs(model_opt);
  auto* ain = app.add_option("--adapter-in", adapter_in,
                             "adapter to convert: a PEFT folder or .safetensors file (LoRA, MoSLoRA, LinChain)");
  auto* aout = app.add_option("--adapter-out", adapter_out,
                              "write it unchanged here: a PEFT folder, or one file when the path ends in .safetensors");
  auto* eout = app.add_option("--export-lora", export_lora,
                              "write it as a plain LoRA, the MoSLoRA/LinChain chain folded into A (A' = A·W1⋯Wn, the "
                              "same update; refused with chain biases): a PEFT folder, or one .safetensors file");
  aout->needs(ain);
  eout->needs(ain);
  ain->excludes(model_opt);
  return cg::tools::run_tool(app, argc, argv, [&] {
    namespace m = cg::models;
    if (!adapter_in.empty()) {
      if (adapter_out.empty() && export_lora.empty())
        throw cg::FormatError("--adapter-in needs --adapter-out or --export-lora");
      const std::vector<std::string> peft_files{m::kPeftWeightsName, m::kPeftConfigName};
      auto output = [&](const std::string& p, const char* flag) {
        return cg::tools::Output{p, flag, m::is_adapter_folder_path(p) ? peft_files : std::vector<std::string>{}};
      };
      std::vector<std::pair<std::string, const char*>> inputs{{adapter_in, "--adapter-in"}};
      for (const char* f : {m::kPeftWeightsName, m::kPeftConfigName})
        inputs.emplace_back((std::filesystem::path(adapter_in) / f).string(), "--adapter-in");
      cg::tools::check_outputs(inputs, {output(adapter_out, "--adapter-out"), output(export_lora, "--export-lora")});
      const m::AdapterFile f = m::read_adapter_file(adapter_in);
      const m::AdapterFile lora = export_lora.empty() ? m::AdapterFile{} : m::export_plain_lora(f);  // may refuse
      const cg::nn::AdapterConfig& c = f.config;
      const std::string what = cg::nn::adapter_kind_name(c.kind) + (c.chain_bias ? " (chain biases)" : "") +
                               " r=" + std::to_string(c.rank) + " n=" + std::to_string(c.num_mixers()) + ", " +
                               std::to_string(f.modules.size()) + " modules";
      if (!adapter_out.empty()) {
        m::write_adapter(adapter_out, f);
        std::printf("wrote %s (%s)\n", adapter_out.c_str(), what.c_str());
      }
      if (!export_lora.empty()) {
        m::write_adapter(export_lora, lora);
        std::printf("wrote %s (plain LoRA r=%d from %s)\n", export_lora.c_str(), c.rank, what.c_str());
      }
      return 0;
    }
    if (model_path.empty()) throw cg::FormatError("give --model M --save-hf DIR, or --adapter-in A --export-lora OUT");
    const m::Checkpoint ckpt = m::read_checkpoint(model_path);
    m::write_hf_folder(out, ckpt);
    std::printf("wrote %s (%s)\n", out.c_str(), ckpt.config.str().c_str());
    return 0;
  });
}
