// models/io/hf_llama.cpp — HF Llama safetensors reader/writer.
#include "models/io/hf_llama.h"

#include <filesystem>
#include <set>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/io/safetensors.h"

namespace cg::models {

namespace {

constexpr uint64_t kMaxConfigBytes = 16u << 20;  // a config.json is a few KB

nlohmann::json parse_json(const std::string& text, const std::string& what) {
  if (text.size() > kMaxConfigBytes)
    throw FormatError(what + ": " + std::to_string(text.size()) + " bytes is too large for a model config");
  return parse_json_limited(text, what, /*unique_keys=*/true);
}

LlamaConfig config_for(const SafeTensors& st, const std::string& path) {
  if (auto it = st.metadata.find("config"); it != st.metadata.end())
    return LlamaConfig::from_hf_json(parse_json(it->second, path + " (metadata \"config\")"), path);
  const std::filesystem::path side = std::filesystem::path(path).parent_path() / "config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(side, ec)) {
    const std::vector<uint8_t> bytes = read_file_bytes(side.string(), kMaxConfigBytes);
    return LlamaConfig::from_hf_json(parse_json(std::string(bytes.begin(), bytes.end()), side.string()),
                                     side.string());
  }
  throw FormatError(path + ": no \"config\" in the safetensors metadata and no config.json beside it; "
                    "n_heads cannot be inferred from tensor shapes");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Checkpoint read_hf_llama(const std::string& path) {
  const SafeTensors st = read_safetensors(path);
  Checkpoint ck;
  ck.config = config_for(st, path);
  std::set<std::string> used;
  for (const TensorSpec& spec : hf_llama_tensor_specs(ck.config)) {
    auto it = st.tensors.find(spec.name);
    if (it == st.tensors.end()) {
      if (spec.name == "lm_head.weight" && ck.config.tied_embeddings) {
        ck.tensors.emplace_back(spec.name, ck.get("model.embed_tokens.weight").clone());
        continue;
      }
      throw FormatError(path + ": missing tensor '" + spec.name + "' (f32" + spec.shape.str() + ") for " +
                        ck.config.str());
    }
    Tensor t = it->second;
    if (t.dtype() == DType::I32)
      throw FormatError(path + ": tensor '" + spec.name + "' is " + t.desc() + ", expected a float tensor");
    if (t.shape() != spec.shape)
      throw FormatError(path + ": tensor '" + spec.name + "' has shape " + t.shape().str() + ", expected " +
                        spec.shape.str() + " for " + ck.config.str());
    ck.tensors.emplace_back(spec.name, t.to(DType::F32));
    used.insert(spec.name);
  }
  for (const std::string& name : st.names)
    if (!used.count(name) && !ends_with(name, "rotary_emb.inv_freq"))
      throw FormatError(path + ": unexpected tensor '" + name + "' for a Llama with " + ck.config.str());
  check_checkpoint(ck, path);
  return ck;
}

void write_hf_llama(const std::string& path, const Checkpoint& ckpt) {
  check_checkpoint(ckpt, "write_hf_llama " + path);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const TensorSpec& spec : hf_llama_tensor_specs(ckpt.config)) {
    if (spec.name == "lm_head.weight" && ckpt.config.tied_embeddings) {
      if (!bitwise_equal(ckpt.get(spec.name), ckpt.get("model.embed_tokens.weight")))
        throw FormatError("write_hf_llama " + path +
                          ": config says tied embeddings but lm_head.weight differs from model.embed_tokens.weight");
      continue;
    }
    out.emplace_back(spec.name, ckpt.get(spec.name));
  }
  write_safetensors(path, out, {{"config", ckpt.config.to_hf_json().dump()}, {"format", "pt"}});
}

}  // namespace cg::models
