// models/io/hf_llama.h — Hugging Face Llama checkpoints in one safetensors file: tensor
// names/shapes as transformers' LlamaForCausalLM has them, config as HF config JSON.
// The config comes from the header metadata key "config" (what write_hf_llama stores),
// else from a config.json next to the file (the layout HF model folders use); shapes
// alone cannot give n_heads, so without either the read fails with a clear error.
// Tied models are written without lm_head.weight (as transformers saves them) and read
// back with lm_head a copy of the embedding.
#pragma once
#include <string>

#include "models/io/checkpoint.h"

namespace cg::models {

// Reads an HF Llama .safetensors (F32/F16/BF16/F64 tensors, converted to F32). A
// missing, extra (other than rotary_emb.inv_freq buffers) or mis-shaped tensor, or a bad
// config → FormatError naming it.
Checkpoint read_hf_llama(const std::string& path);

// Reads a Hugging Face model folder: config.json plus model.safetensors, or the shards that
// model.safetensors.index.json's weight_map names (plain file names inside the folder only).
Checkpoint read_hf_folder(const std::string& dir);

// Writes ckpt as an HF folder: config.json and model.safetensors (F32), creating `dir`.
void write_hf_folder(const std::string& dir, const Checkpoint& ckpt);

// Writes ckpt (checked with check_checkpoint) as F32 safetensors with metadata
// {"config": HF config JSON, "format": "pt"}, atomically.
void write_hf_llama(const std::string& path, const Checkpoint& ckpt);

}  // namespace cg::models
