// models/io/adapter_file.h — adapter files: LoRA / MoSLoRA / LinChain adapters as safetensors
// with PEFT names, readable by PEFT-style code. An adapter file fully describes its adapter
// (kind, rank, alpha, targets, chain length), so loading one needs no other flags.
// The adapters themselves live in nn/adapters.h; this file only maps them to and from disk.
//
// Tensors, for every adapted module M (HF name, e.g. model.layers.0.self_attn.q_proj):
//   base_model.model.M.lora_A.weight          [r, in]   = Aᵀ
//   base_model.model.M.lora_B.weight          [out, r]  = B
//   MoSLoRA:  base_model.model.M.lora_AB.weight        [r, r] = W₁ᵀ
//   LinChain: base_model.model.M.lora_mixer.{j}.weight [r, r] = W_{j+1}ᵀ, j = 0..n−1
//             (0-based; factor j is applied j-th after A)
//             with chain biases also base_model.model.M.lora_mixer.{j}.bias [r] = b_{j+1}
// Why the transposes: our code uses the paper's row convention,
//   Δy = s · x · A · W₁ ⋯ Wₙ · Bᵀ   (x a row vector, A [in,r], Wⱼ [r,r], B [out,r]),
// PEFT the column convention of nn.Linear (W [out,in], y = W x):
//   Δy = s · B · Mₙ₋₁ ⋯ M₀ · A_peft · x,  i.e. ΔW_peft = s · B · Mₙ₋₁ ⋯ M₀ · A_peft.
// Transposing ours, Δyᵀ = s · B · Wₙᵀ ⋯ W₁ᵀ · Aᵀ · xᵀ, so A_peft = Aᵀ, and the mixer met
// first after A, M₀, is W₁ᵀ; in general M_j = W_{j+1}ᵀ. MoSLoRA's lora_AB (an nn.Linear(r, r)
// between lora_A and lora_B) is that same single M₀ = W₁ᵀ. B needs no transpose.
// tests/test_adapter_file.cpp checks ΔW_peft computed from a file's tensors against
// ChainAdapter::delta_weight().
//
// Header metadata (all strings): peft_type LORA|MOSLORA|LINCHAIN, r, lora_alpha,
// target_modules (comma-separated HF module names, e.g. q_proj,k_proj,v_proj,up_proj,down_proj),
// chain_length (0 for LoRA, 1 for MoSLoRA, n for LinChain), chain_bias 0|1 (absent: the
// file has .bias tensors or not), lora_dropout (the training dropout p; absent: 0), format "pt".
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/adapters.h"

namespace cg::models {

constexpr const char* kPeftPrefix = "base_model.model.";

// Writes the adapters of `set` atomically (temp + rename) in the layout above.
void save_adapter(const std::string& path, const nn::AdapterSet& set);

// A parsed and validated adapter file: the config and, per module (in file order), its
// tensors converted to our layout under the adapter store's names
// (nn::adapter_a_name(M) → A [in, r], nn::adapter_mixer_name(M, kind, j) → Wⱼ₊₁, …).
struct AdapterFile {
  nn::AdapterConfig config;
  std::vector<std::string> modules;
  std::map<std::string, Tensor> tensors;  // host, F32
};
// Throws FormatError naming the file and the offending tensor or key on anything missing,
// extra, mis-shaped or inconsistent with the metadata.
AdapterFile read_adapter_file(const std::string& path);

// Reads `path` and attaches its adapters to `linears` (see nn::attach_adapters) with the
// file's values. The modules selected by the file's target_modules must be exactly the
// modules in the file, with matching shapes; otherwise FormatError.
nn::AdapterSet load_adapter(const std::string& path, const std::vector<std::pair<std::string, nn::Linear*>>& linears,
                            Device device = Device::CPU);

std::string peft_type_name(nn::AdapterKind kind);  // "LORA", "MOSLORA", "LINCHAIN"

}  // namespace cg::models
