// models/io/adapter_file.h — adapter files: LoRA / MoSLoRA / LinChain adapters on disk in
// two layouts that share PEFT's tensor names and orientation:
//   * one .safetensors file whose header metadata describes the adapter (this file), and
//   * PEFT's own folder, adapter_config.json + adapter_model.safetensors
//     (models/io/peft_folder.h), as PEFT and the MoSLoRA / LinChain authors' PEFT forks write it.
// A file or folder fully describes its adapter (kind, rank, alpha, targets, chain length),
// so loading one needs no other flags. The adapters themselves live in nn/adapters.h; this
// file only maps them to and from disk. read_adapter_file / write_adapter pick the layout
// from the path; AdapterFile is the in-memory form both layouts convert through.
//
// Tensors, for every adapted module M (HF name, e.g. model.layers.0.self_attn.q_proj):
//   base_model.model.M.lora_A.weight          [r, in]   = Aᵀ
//   base_model.model.M.lora_B.weight          [out, r]  = B
//   MoSLoRA:  base_model.model.M.lora_AB.weight        [r, r] = W₁ᵀ
//   LinChain: base_model.model.M.lora_mixer.{j}.weight [r, r] = W_{j+1}ᵀ, j = 0..n−1
//             (0-based; factor j is applied j-th after A)
//             with chain biases also base_model.model.M.lora_mixer.{j}.bias [r] = b_{j+1}
//   LoRA with chain biases (the control Δy = s·(x·A + b)·Bᵀ): base_model.model.M.lora_A.bias [r] = b;
//             only in the single-file layout: PEFT's LoRA has no bias on lora_A's output (its
//             lora_bias is a free bias on lora_B's output), so write_peft_folder refuses it
// Why the transposes: our code uses the paper's row convention,
//   Δy = s · x · A · W₁ ⋯ Wₙ · Bᵀ   (x a row vector, A [in,r], Wⱼ [r,r], B [out,r]),
// PEFT the column convention of nn.Linear (W [out,in], y = W x):
//   Δy = s · B · Mₙ₋₁ ⋯ M₀ · A_peft · x,  i.e. ΔW_peft = s · B · Mₙ₋₁ ⋯ M₀ · A_peft.
// Transposing ours, Δyᵀ = s · B · Wₙᵀ ⋯ W₁ᵀ · Aᵀ · xᵀ, so A_peft = Aᵀ, and the mixer met
// first after A, M₀, is W₁ᵀ; in general M_j = W_{j+1}ᵀ. MoSLoRA's lora_AB (an nn.Linear(r, r)
// between lora_A and lora_B) is that same single M₀ = W₁ᵀ. B needs no transpose. A chain
// factor with a bias is nn.Linear(r, r) with its bias: h ← M_j·h + b_{j+1}. In both layouts
// s = lora_alpha / r (PEFT's default; a folder with use_rslora is converted on reading).
// tests/test_adapter_file.cpp checks ΔW_peft computed from a file's tensors against
// ChainAdapter::delta_weight().
//
// Single-file header metadata (all strings): peft_type LORA|MOSLORA|LINCHAIN, r, lora_alpha,
// target_modules (comma-separated HF module names, e.g. q_proj,k_proj,v_proj,up_proj,down_proj),
// chain_length (0 for LoRA, 1 for MoSLoRA, n for LinChain; may be absent: the tensors say
// it), chain_bias 0|1 (absent: the file has .bias tensors or not), lora_dropout (the training
// dropout p; absent: 0), format "pt".
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/io/safetensors.h"
#include "nn/adapters.h"

namespace cg::models {

constexpr const char* kPeftPrefix = "base_model.model.";

// An adapter in memory, independent of the layout it came from or goes to: the config and,
// per module (in file order), its tensors in our layout under the adapter store's names
// (nn::adapter_a_name(M) → A [in, r], nn::adapter_mixer_name(M, kind, j) → Wⱼ₊₁, …).
struct AdapterFile {
  nn::AdapterConfig config;
  std::vector<std::string> modules;
  std::map<std::string, Tensor> tensors;  // host, F32
};

// What a PEFT folder records beyond the adapter itself (adapter_config.json).
struct AdapterWriteInfo {
  std::string base_model;  // base_model_name_or_path: the --model the adapter was trained on
};

// The adapters of `set` (host copies of the store's tensors).
AdapterFile adapter_file_of(const nn::AdapterSet& set);

// True when `path` names a PEFT folder output: it does not end in ".safetensors".
bool is_adapter_folder_path(const std::string& path);

// Writes `f` atomically: a path ending in .safetensors as one file in the layout above,
// any other path as a PEFT folder (created when absent; models/io/peft_folder.h).
void write_adapter(const std::string& path, const AdapterFile& f, const AdapterWriteInfo& info = {});
// write_adapter(path, adapter_file_of(set), info).
void save_adapter(const std::string& path, const nn::AdapterSet& set, const AdapterWriteInfo& info = {});

// Reads and validates an adapter in either layout: a folder, or its adapter_config.json or
// adapter_model.safetensors (PEFT's layout), or a .safetensors file with our metadata. A
// pickle (.bin, .pt, .pth, or a folder holding only adapter_model.bin) is refused without
// being opened. Throws FormatError naming the file and the offending tensor or key on
// anything missing, extra, mis-shaped or inconsistent with the config.
AdapterFile read_adapter_file(const std::string& path);

// Attaches the adapters of `f` to `linears` (see nn::attach_adapters) with the file's
// values. The modules selected by its target_modules must be exactly the modules in the
// file, with matching shapes; otherwise FormatError (naming `what`), the model untouched.
nn::AdapterSet attach_adapter_file(const AdapterFile& f,
                                   const std::vector<std::pair<std::string, nn::Linear*>>& linears, Device device,
                                   const std::string& what);
// read_adapter_file + attach_adapter_file.
nn::AdapterSet load_adapter(const std::string& path, const std::vector<std::pair<std::string, nn::Linear*>>& linears,
                            Device device = Device::CPU);

// The plain LoRA with the same update as a bias-free MoSLoRA / LinChain adapter: the chain
// folded into A, A' = A·W₁⋯Wₙ [in, r] (PEFT's orientation: lora_A' = Mₙ₋₁⋯M₀·lora_A), rank,
// alpha and targets unchanged, products in float64. A LoRA is returned as it is. A chain with
// biases is refused (FormatError): its update has an input-independent output bias s·B·β
// that a LoRA cannot carry.
AdapterFile export_plain_lora(const AdapterFile& f);

// The file's and the tensors' PEFT names and orientation (lora_A = Aᵀ, mixers transposed),
// in the order they are written: per module A, its mixers (each followed by its bias), B.
std::vector<std::pair<std::string, Tensor>> peft_tensors(const AdapterFile& f);
// The inverse: validates the PEFT-named tensors `st` against `cfg` (kind, rank, chain,
// chain_bias, targets already set) and converts them to our layout. `path` names the
// source in errors.
AdapterFile adapter_from_peft_tensors(const SafeTensors& st, const nn::AdapterConfig& cfg, const std::string& path);
// From the tensors alone: the number of lora_mixer.{j}.weight of the first module (0: none),
// and whether any tensor is a bias.
int peft_chain_length(const SafeTensors& st);
bool peft_has_chain_biases(const SafeTensors& st);

std::string peft_type_name(nn::AdapterKind kind);  // "LORA", "MOSLORA", "LINCHAIN"

}  // namespace cg::models
