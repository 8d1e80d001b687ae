// models/io/checkpoint.h — Checkpoint: a LlamaConfig plus named weight tensors using the
// Hugging Face Llama names and shapes (the one naming every reader/writer in models/
// converts to), the list of those names for a config, and a loader that picks the
// format from the file name. The files themselves are read in llama2c.h / hf_llama.h.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "models/llama/config.h"

namespace cg::models {

struct Checkpoint {
  LlamaConfig config;
  // HF names in canonical order (see hf_llama_tensor_specs); F32 host tensors.
  std::vector<std::pair<std::string, Tensor>> tensors;

  // The tensor called `name`; FormatError naming it when absent.
  const Tensor& get(const std::string& name) const;
};

struct TensorSpec {
  std::string name;
  Shape shape;
};

// Every tensor an HF LlamaForCausalLM with `c` has, in order: model.embed_tokens.weight [V,dim];
// per layer i: model.layers.{i}.input_layernorm.weight [dim], self_attn.{q,k,v,o}_proj.weight
// ([dim,dim], [kv_dim,dim], [kv_dim,dim], [dim,dim]), post_attention_layernorm.weight [dim],
// mlp.{gate,up,down}_proj.weight ([hidden,dim], [hidden,dim], [dim,hidden]); model.norm.weight
// [dim]; lm_head.weight [V,dim] (listed even when tied). Linear weights are [out, in]. With
// c.attention_bias each of q,k,v,o_proj.weight is followed by its …_proj.bias [out], with
// c.mlp_bias each of gate,up,down_proj.weight.
std::vector<TensorSpec> hf_llama_tensor_specs(const LlamaConfig& c);

// Validates ckpt.config and checks that the tensors are exactly hf_llama_tensor_specs
// (any order): a missing, extra, duplicated, mis-shaped or non-F32 tensor → FormatError
// naming it. `what` names the source in messages.
void check_checkpoint(const Checkpoint& ckpt, const std::string& what);

// Same shape, dtype and bytes (NaNs compare by their bits); any devices.
bool bitwise_equal(const Tensor& a, const Tensor& b);

// Loads `path` by its kind: a folder → Hugging Face model folder (read_hf_folder), ".bin" →
// llama2.c (read_llama2c), ".safetensors" → HF Llama safetensors (read_hf_llama), ".gguf" →
// GGUF (read_gguf_checkpoint); anything else → FormatError.
Checkpoint read_checkpoint(const std::string& path);

}  // namespace cg::models
