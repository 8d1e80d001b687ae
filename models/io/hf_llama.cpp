// models/io/hf_llama.cpp — HF Llama safetensors reader/writer.
#include "models/io/hf_llama.h"

#include <filesystem>
#include <map>
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
    return LlamaConfig::from_hf_json(parse_json(std::string(bytes.begin(), bytes.end()), side.string()), side.string());
  }
  throw FormatError(path +
                    ": no \"config\" in the safetensors metadata and no config.json beside it; "
                    "n_heads cannot be inferred from tensor shapes");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

namespace {

nlohmann::json read_json_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_json(std::string(bytes.begin(), bytes.end()), path);
}

// The checkpoint for config `config` from a name → tensor map (names: every tensor, in file order).
Checkpoint checkpoint_from(const LlamaConfig& config, const std::map<std::string, Tensor>& tensors,
                           const std::vector<std::string>& names, const std::string& what) {
  Checkpoint ck;
  ck.config = config;
  std::set<std::string> used;
  for (const TensorSpec& spec : hf_llama_tensor_specs(ck.config)) {
    auto it = tensors.find(spec.name);
    if (it == tensors.end()) {
      if (spec.name == "lm_head.weight" && ck.config.tied_embeddings) {
        ck.tensors.emplace_back(spec.name, ck.get("model.embed_tokens.weight").clone());
        continue;
      }
      throw FormatError(what + ": missing tensor '" + spec.name + "' (f32" + spec.shape.str() + ") for " +
                        ck.config.str());
    }
    const Tensor& t = it->second;
    if (t.dtype() == DType::I32)
      throw FormatError(what + ": tensor '" + spec.name + "' is " + t.desc() + ", expected a float tensor");
    if (t.shape() != spec.shape)
      throw FormatError(what + ": tensor '" + spec.name + "' has shape " + t.shape().str() + ", expected " +
                        spec.shape.str() + " for " + ck.config.str());
    ck.tensors.emplace_back(spec.name, t.to(DType::F32));
    used.insert(spec.name);
  }
  for (const std::string& name : names)
    if (!used.count(name) && !ends_with(name, "rotary_emb.inv_freq"))
      throw FormatError(what + ": unexpected tensor '" + name + "' for a Llama with " + ck.config.str());
  check_checkpoint(ck, what);
  return ck;
}

}  // namespace

Checkpoint read_hf_llama(const std::string& path) {
  const SafeTensors st = read_safetensors(path);
  return checkpoint_from(config_for(st, path), st.tensors, st.names, path);
}

Checkpoint read_hf_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_regular_file(d / "config.json", ec))
    throw FormatError(dir + ": not a Hugging Face model folder (no config.json)");
  const LlamaConfig config =
      LlamaConfig::from_hf_json(read_json_file((d / "config.json").string()), (d / "config.json").string());
  std::vector<std::string> shards;
  if (fs::is_regular_file(d / "model.safetensors", ec)) {
    shards.push_back((d / "model.safetensors").string());
  } else if (fs::is_regular_file(d / "model.safetensors.index.json", ec)) {
    const std::string ipath = (d / "model.safetensors.index.json").string();
    const nlohmann::json idx = read_json_file(ipath);
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw FormatError(ipath + ": no \"weight_map\" object");
    std::set<std::string> files;
    for (const auto& [name, file] : idx["weight_map"].items()) {
      if (!file.is_string()) throw FormatError(ipath + ": weight_map[\"" + name + "\"] is not a file name");
      const std::string f = file.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
        throw FormatError(ipath + ": shard name '" + f + "' must be a plain file name in the folder");
      files.insert(f);
    }
    for (const std::string& f : files) shards.push_back((d / f).string());
  } else {
    throw FormatError(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  std::map<std::string, Tensor> tensors;
  std::vector<std::string> names;
  for (const std::string& shard : shards) {
    SafeTensors st = read_safetensors(shard);
    for (const std::string& n : st.names) {
      if (tensors.count(n)) throw FormatError(shard + ": tensor '" + n + "' also appears in another shard");
      tensors.emplace(n, st.tensors.at(n));
      names.push_back(n);
    }
  }
  return checkpoint_from(config, tensors, names, dir);
}

void write_hf_folder(const std::string& dir, const Checkpoint& ckpt) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw FormatError(dir + ": cannot create the folder: " + ec.message());
  write_hf_llama((std::filesystem::path(dir) / "model.safetensors").string(), ckpt);
  const std::string cfg = ckpt.config.to_hf_json().dump(2) + "\n";
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(),
                    std::vector<uint8_t>(cfg.begin(), cfg.end()));
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
