// models/io/checkpoint.cpp — HF Llama tensor naming, checkpoint checks, format dispatch.
#include "models/io/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "engine/error.h"
#include "models/io/gguf.h"
#include "models/io/hf_llama.h"
#include "models/io/llama2c.h"

namespace cg::models {

const Tensor& Checkpoint::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw FormatError("checkpoint has no tensor '" + name + "'");
}

std::vector<TensorSpec> hf_llama_tensor_specs(const LlamaConfig& c) {
  const int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  std::vector<TensorSpec> s;
  s.push_back({"model.embed_tokens.weight", {v, d}});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    s.push_back({p + "input_layernorm.weight", {d}});
    // A projection's weight [out, in], then its bias [out] when the config has one.
    auto proj = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
      s.push_back({p + name + ".weight", {out, in}});
      if (bias) s.push_back({p + name + ".bias", {out}});
    };
    proj("self_attn.q_proj", d, d, c.attention_bias);
    proj("self_attn.k_proj", kv, d, c.attention_bias);
    proj("self_attn.v_proj", kv, d, c.attention_bias);
    proj("self_attn.o_proj", d, d, c.attention_bias);
    s.push_back({p + "post_attention_layernorm.weight", {d}});
    proj("mlp.gate_proj", h, d, c.mlp_bias);
    proj("mlp.up_proj", h, d, c.mlp_bias);
    proj("mlp.down_proj", d, h, c.mlp_bias);
  }
  s.push_back({"model.norm.weight", {d}});
  s.push_back({"lm_head.weight", {v, d}});
  return s;
}

void check_checkpoint(const Checkpoint& ckpt, const std::string& what) {
  ckpt.config.validate(what);
  std::map<std::string, Shape> want;
  for (const TensorSpec& s : hf_llama_tensor_specs(ckpt.config)) want.emplace(s.name, s.shape);
  std::map<std::string, int> seen;
  for (const auto& [name, t] : ckpt.tensors) {
    auto it = want.find(name);
    if (it == want.end())
      throw FormatError(what + ": unexpected tensor '" + name + "' for a Llama with " + ckpt.config.str());
    if (++seen[name] > 1) throw FormatError(what + ": tensor '" + name + "' appears twice");
    if (!t.defined() || t.shape() != it->second || t.dtype() != DType::F32)
      throw FormatError(what + ": tensor '" + name + "' is " + t.desc() + ", expected f32" + it->second.str() +
                        " for " + ckpt.config.str());
  }
  for (const auto& [name, shape] : want)
    if (!seen.count(name)) throw FormatError(what + ": missing tensor '" + name + "' (f32" + shape.str() + ")");
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ha = a.to(Device::CPU), hb = b.to(Device::CPU);
  return std::memcmp(ha.raw(), hb.raw(), ha.nbytes()) == 0;
}

Checkpoint read_checkpoint(const std::string& path) {
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return read_hf_folder(path);
  if (ends_with(".bin")) return read_llama2c(path);
  if (ends_with(".safetensors")) return read_hf_llama(path);
  if (ends_with(".gguf")) return read_gguf_checkpoint(path);
  throw FormatError(path +
                    ": unknown checkpoint format (expected a llama2.c .bin, a .safetensors file, a .gguf "
                    "file or a Hugging Face model folder)");
}

}  // namespace cg::models
