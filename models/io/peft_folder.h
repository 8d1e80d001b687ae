// models/io/peft_folder.h — PEFT's own adapter folder: adapter_config.json +
// adapter_model.safetensors, as PEFT's save_pretrained writes it and PeftModel.from_pretrained
// reads it, and as the MoSLoRA and LinChain authors' PEFT forks write theirs.
//
// adapter_config.json (PEFT's LoraConfig fields; written with sorted keys, as PEFT does):
//   peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, lora_dropout, bias "none",
//   target_modules (a list of HF module names, e.g. ["q_proj", "down_proj"]),
//   base_model_name_or_path, fan_in_fan_out false, inference_mode true, modules_to_save null;
//   MoSLoRA (github wutaiqiang/MoSLoRA, its fork's tuners/lora.py): "lora_use_mixer": true,
//     one mixer per module, lora_AB = nn.Linear(r, r, bias=False);
//   LinChain (github wangfrombupt/linchain, its fork's tuners/lora.py): "lora_use_mixer": true
//     and "mixer_num": n, the chain lora_mixer = ModuleList of n nn.Linear(r, r), applied in
//     index order after lora_A. nn.Linear's default bias=True means the authors' chain always
//     has biases (lora_mixer.{j}.bias); a bias-free chain is written without those tensors.
// adapter_model.safetensors: the tensors of models/io/adapter_file.h under PEFT's names
// (base_model.model.<HF module>.lora_A.weight [r, in], ….lora_B.weight [out, r], …), metadata
// {"format": "pt"}.
//
// Reading accepts any LoraConfig whose meaning we reproduce exactly and refuses, naming the
// field, those we do not: use_dora, fan_in_fan_out, bias other than "none", lora_bias,
// modules_to_save, rank_pattern / alpha_pattern, layers_to_transform, layer_replication,
// target_parameters, trainable_token_indices, alora_invocation_tokens. use_rslora (s = alpha/√r)
// is converted to our s = alpha/r by alpha ← alpha·√r. target_modules may be a list, a
// single name, "all-linear", or a regex (then the modules present in the tensors are the
// targets). The kind comes from lora_use_mixer and the tensors (lora_AB: MoSLoRA,
// lora_mixer.{j}: LinChain with mixer_num, or the count of mixers when it is absent).
#pragma once
#include <string>

#include "models/io/adapter_file.h"

namespace cg::models {

constexpr const char* kPeftConfigName = "adapter_config.json";
constexpr const char* kPeftWeightsName = "adapter_model.safetensors";
constexpr const char* kPeftPickleName = "adapter_model.bin";
// Why a LoRA with a bias on A's output (--adapter lora --chain-bias) has no PEFT folder.
constexpr const char* kLoraBiasNotPeft =
    "a LoRA with a bias on A's output (--chain-bias: Δy = s·B·(A·x + b)) has no PEFT form: PEFT's LoRA has no bias on "
    "lora_A, and its lora_bias is a free bias on lora_B's output (a folder with an extra lora_A.bias would be loaded "
    "by PEFT without it); save it as one .safetensors file, or merge it (--merge-out)";

// Creates `dir` when absent and writes adapter_model.safetensors, then adapter_config.json,
// each atomically (temp + rename). A LoRA with chain biases is refused (FormatError, kLoraBiasNotPeft).
void write_peft_folder(const std::string& dir, const AdapterFile& f, const AdapterWriteInfo& info = {});

// Reads and validates a PEFT adapter folder (FormatError naming the file and the key).
AdapterFile read_peft_folder(const std::string& dir);

// The one-line refusal of a pickle adapter (`path` a .bin file or the folder holding one):
// unpickling runs code, and how to convert it to safetensors where it is trusted.
std::string pickle_refusal(const std::string& path);

}  // namespace cg::models
