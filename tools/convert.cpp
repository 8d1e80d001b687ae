// tools/convert.cpp — read a checkpoint in any supported format (llama2.c .bin, HF .safetensors
// or folder, GGUF: dequantized to float32) and write it as a Hugging Face model folder
// (config.json + model.safetensors, F32) that transformers' from_pretrained loads.
#include <cstdio>

#include "models/io/checkpoint.h"
#include "models/io/hf_llama.h"
#include "tools/common/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Convert a Llama checkpoint to a Hugging Face folder.", "convert"};
  std::string model_path, out;
  app.add_option("--model", model_path, "checkpoint: llama2.c .bin, HF .safetensors or folder, or .gguf")->required();
  app.add_option("--save-hf", out, "folder to write (config.json + model.safetensors)")->required();
  return cg::tools::run_tool(app, argc, argv, [&] {
    const cg::models::Checkpoint ckpt = cg::models::read_checkpoint(model_path);
    cg::models::write_hf_folder(out, ckpt);
    std::printf("wrote %s (%s)\n", out.c_str(), ckpt.config.str().c_str());
    return 0;
  });
}
