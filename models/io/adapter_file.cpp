// models/io/adapter_file.cpp — adapters on disk: the in-memory AdapterFile, PEFT names and
// orientation of its tensors (shared by both layouts), the single-file layout (metadata in the
// safetensors header), the choice of layout by path, attaching to a model, and export as a
// plain LoRA. The folder layout is models/io/peft_folder.cpp.
#include "models/io/adapter_file.h"

#include <cmath>
#include <filesystem>
#include <set>

#include "engine/tape.h"
#include "models/io/peft_folder.h"
#include "ops/ops.h"

namespace cg::models {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The PEFT (file) name of a store parameter of `module`.
std::string peft_a(const std::string& m) { return kPeftPrefix + m + ".lora_A.weight"; }
std::string peft_b(const std::string& m) { return kPeftPrefix + m + ".lora_B.weight"; }
std::string peft_mixer(const std::string& m, nn::AdapterKind kind, int j) {
  return kPeftPrefix + nn::adapter_mixer_name(m, kind, j);
}
std::string peft_bias(const std::string& m, int j) { return kPeftPrefix + nn::adapter_mixer_bias_name(m, j); }
std::string peft_lora_bias(const std::string& m) { return kPeftPrefix + nn::adapter_lora_bias_name(m); }

Tensor transposed_host(const Tensor& t) {
  NoGrad ng;
  return ops::transpose(t.to(Device::CPU), 0, 1);
}

const std::string& meta_at(const SafeTensors& st, const std::string& key, const std::string& path) {
  const auto it = st.metadata.find(key);
  if (it == st.metadata.end()) throw FormatError(path + ": adapter file lacks metadata '" + key + "'");
  return it->second;
}

long long parse_int(const std::string& s, const std::string& key, const std::string& path) {
  size_t pos = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != s.size()) throw FormatError(path + ": metadata '" + key + "' = '" + s + "' is not an integer");
  return v;
}

double parse_double(const std::string& s, const std::string& key, const std::string& path) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos == 0 || pos != s.size() || !std::isfinite(v))
    throw FormatError(path + ": metadata '" + key + "' = '" + s + "' is not a number");
  return v;
}

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A name a pickle is stored under (torch.save): never opened, since unpickling runs code.
bool is_pickle_name(const std::string& path) {
  return ends_with(path, ".bin") || ends_with(path, ".pt") || ends_with(path, ".pth") || ends_with(path, ".pkl");
}

// The single-file layout: the config from the header metadata, then the tensors.
AdapterFile read_single_file(const std::string& path, const SafeTensors& st) {
  nn::AdapterConfig cfg;
  const std::string type = meta_at(st, "peft_type", path);
  if (type == "LORA") cfg.kind = nn::AdapterKind::LoRA;
  else if (type == "MOSLORA") cfg.kind = nn::AdapterKind::MoSLoRA;
  else if (type == "LINCHAIN") cfg.kind = nn::AdapterKind::LinChain;
  else throw FormatError(path + ": peft_type '" + type + "' is not LORA, MOSLORA or LINCHAIN");
  const long long r = parse_int(meta_at(st, "r", path), "r", path);
  if (r < 1 || r > (1 << 20)) throw FormatError(path + ": r = " + std::to_string(r) + " is out of range");
  cfg.rank = static_cast<int>(r);
  cfg.alpha = parse_double(meta_at(st, "lora_alpha", path), "lora_alpha", path);
  if (std::fabs(cfg.alpha) > 1e6)
    throw FormatError(path + ": lora_alpha " + fmt_double(cfg.alpha) + " is out of range [-1e6, 1e6]");
  // chain_length may be absent: LoRA has no mixer, MoSLoRA one (lora_AB); LinChain's is the
  // number of lora_mixer.{j} tensors of a module.
  long long n = 0;
  if (st.metadata.count("chain_length")) n = parse_int(meta_at(st, "chain_length", path), "chain_length", path);
  else if (cfg.kind == nn::AdapterKind::MoSLoRA) n = 1;
  else if (cfg.kind == nn::AdapterKind::LinChain) n = peft_chain_length(st);
  const long long expect_n = cfg.kind == nn::AdapterKind::LoRA ? 0 : cfg.kind == nn::AdapterKind::MoSLoRA ? 1 : -1;
  if ((expect_n >= 0 && n != expect_n) || n < 0 || n > 64)
    throw FormatError(path + ": chain_length " + std::to_string(n) + " does not fit peft_type " + type);
  if (cfg.kind == nn::AdapterKind::LinChain) {
    if (n < 1) throw FormatError(path + ": LINCHAIN needs chain_length ≥ 1");
    cfg.chain = static_cast<int>(n);
  }
  try {
    cfg.targets = nn::parse_targets(meta_at(st, "target_modules", path));
  } catch (const FormatError& e) {
    throw FormatError(path + ": target_modules: " + e.what());
  }
  if (const auto it = st.metadata.find("init"); it != st.metadata.end()) {
    try {
      cfg.init = nn::parse_mixer_init(it->second);
    } catch (const FormatError&) {  // informational only
    }
  }
  if (const auto it = st.metadata.find("lora_dropout"); it != st.metadata.end()) {  // absent: 0
    cfg.dropout = parse_double(it->second, "lora_dropout", path);
    if (!(cfg.dropout >= 0 && cfg.dropout < 1))
      throw FormatError(path + ": lora_dropout " + it->second + " is not in [0, 1)");
  }
  // Chain biases: the metadata says so, or (files without the key) the tensors have them.
  if (const auto it = st.metadata.find("chain_bias"); it != st.metadata.end()) {
    if (it->second != "0" && it->second != "1")
      throw FormatError(path + ": metadata 'chain_bias' = '" + it->second + "' is not 0 or 1");
    cfg.chain_bias = it->second == "1";
  } else {
    cfg.chain_bias = peft_has_chain_biases(st);
  }
  return adapter_from_peft_tensors(st, cfg, path);
}

}  // namespace

std::string peft_type_name(nn::AdapterKind kind) {
  switch (kind) {
    case nn::AdapterKind::LoRA: return "LORA";
    case nn::AdapterKind::MoSLoRA: return "MOSLORA";
    case nn::AdapterKind::LinChain: return "LINCHAIN";
  }
  return "?";
}

int peft_chain_length(const SafeTensors& st) {
  const std::string pre = kPeftPrefix, suf = ".lora_A.weight";
  for (const std::string& name : st.names)
    if (name.rfind(pre, 0) == 0 && name.size() > suf.size() + pre.size() && ends_with(name, suf)) {
      const std::string m = name.substr(pre.size(), name.size() - suf.size() - pre.size());
      int n = 0;
      while (n < 64 && st.tensors.count(peft_mixer(m, nn::AdapterKind::LinChain, n))) ++n;
      return n;
    }
  return 0;
}

bool peft_has_chain_biases(const SafeTensors& st) {
  for (const std::string& name : st.names)
    if (ends_with(name, ".bias")) return true;
  return false;
}

AdapterFile adapter_file_of(const nn::AdapterSet& set) {
  AdapterFile f;
  f.config = set.config;
  for (const auto& a : set.adapters) f.modules.push_back(a.module);
  for (const auto& [name, p] : set.store->params()) f.tensors[name] = p.to(Device::CPU).to(DType::F32).clone();
  return f;
}

bool is_adapter_folder_path(const std::string& path) { return !ends_with(path, ".safetensors"); }

std::vector<std::pair<std::string, Tensor>> peft_tensors(const AdapterFile& f) {
  const nn::AdapterConfig& cfg = f.config;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& m : f.modules) {
    out.emplace_back(peft_a(m), transposed_host(f.tensors.at(nn::adapter_a_name(m))));  // [r, in] = Aᵀ
    if (cfg.chain_bias && cfg.kind == nn::AdapterKind::LoRA)  // LoRA's b on A's output, [r] as is
      out.emplace_back(peft_lora_bias(m), f.tensors.at(nn::adapter_lora_bias_name(m)));
    for (int j = 0; j < cfg.num_mixers(); ++j) {  // Mⱼ = Wⱼ₊₁ᵀ, bias bⱼ₊₁ as is
      out.emplace_back(peft_mixer(m, cfg.kind, j),
                       transposed_host(f.tensors.at(nn::adapter_mixer_name(m, cfg.kind, j))));
      if (cfg.chain_bias) out.emplace_back(peft_bias(m, j), f.tensors.at(nn::adapter_mixer_bias_name(m, j)));
    }
    out.emplace_back(peft_b(m), f.tensors.at(nn::adapter_b_name(m)));  // [out, r] = B
  }
  return out;
}

void write_adapter(const std::string& path, const AdapterFile& f, const AdapterWriteInfo& info) {
  if (is_adapter_folder_path(path)) {
    write_peft_folder(path, f, info);
    return;
  }
  const nn::AdapterConfig& cfg = f.config;
  const std::map<std::string, std::string> meta{
      {"format", "pt"},
      {"peft_type", peft_type_name(cfg.kind)},
      {"r", std::to_string(cfg.rank)},
      {"lora_alpha", fmt_double(cfg.alpha)},
      {"target_modules", nn::target_modules_csv(cfg.targets)},
      {"chain_length", std::to_string(cfg.num_mixers())},
      {"init", nn::mixer_init_name(cfg.init)},
      {"chain_bias", cfg.chain_bias ? "1" : "0"},
      {"lora_dropout", fmt_double(cfg.dropout)},
  };
  write_safetensors(path, peft_tensors(f), meta);
}

void save_adapter(const std::string& path, const nn::AdapterSet& set, const AdapterWriteInfo& info) {
  write_adapter(path, adapter_file_of(set), info);
}

AdapterFile read_adapter_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return read_peft_folder(path);
  const std::string name = fs::path(path).filename().string();
  if (name == kPeftConfigName) return read_peft_folder(fs::path(path).parent_path().string());
  if (is_pickle_name(path)) throw FormatError(pickle_refusal(path));
  const SafeTensors st = read_safetensors(path);
  // PEFT's adapter_model.safetensors carries no adapter metadata: its config is beside it.
  if (!st.metadata.count("peft_type") && fs::is_regular_file(fs::path(path).parent_path() / kPeftConfigName, ec))
    return read_peft_folder(fs::path(path).parent_path().string());
  return read_single_file(path, st);
}

AdapterFile adapter_from_peft_tensors(const SafeTensors& st, const nn::AdapterConfig& cfg_in, const std::string& path) {
  AdapterFile f;
  f.config = cfg_in;
  const nn::AdapterConfig& cfg = f.config;
  try {
    cfg.validate();
  } catch (const FormatError& e) {
    throw FormatError(path + ": " + e.what());
  }
  const std::string type = peft_type_name(cfg.kind);
  const int64_t r = cfg.rank;
  const int nm = cfg.num_mixers();

  // Modules in file order, from their lora_A tensors.
  const std::string pre = kPeftPrefix, suf = ".lora_A.weight";
  for (const std::string& name : st.names) {
    if (name.rfind(pre, 0) != 0) throw FormatError(path + ": tensor '" + name + "' does not start with '" + pre + "'");
    if (name.size() > pre.size() + suf.size() && ends_with(name, suf))
      f.modules.push_back(name.substr(pre.size(), name.size() - pre.size() - suf.size()));
  }
  if (f.modules.empty()) throw FormatError(path + ": no lora_A tensors");
  std::set<std::string> used;
  auto take = [&](const std::string& name, int rank) -> const Tensor& {
    const auto it = st.tensors.find(name);
    if (it == st.tensors.end()) throw FormatError(path + ": missing tensor '" + name + "'");
    const Tensor& t = it->second;
    if (t.rank() != rank)
      throw FormatError(path + ": tensor '" + name + "' is " + t.desc() + ", not " + std::to_string(rank) + "-d");
    if (t.dtype() != DType::F32 && t.dtype() != DType::F64)
      throw FormatError(path + ": tensor '" + name + "' is " + t.desc() + ", not floating point");
    const Tensor d = t.to(DType::F64);
    for (int64_t i = 0; i < d.numel(); ++i)
      if (!std::isfinite(d.data<double>()[i]))
        throw FormatError(path + ": tensor '" + name + "' holds a non-finite value at element " + std::to_string(i));
    used.insert(name);
    return t;
  };
  for (const std::string& m : f.modules) {
    const Tensor& a = take(peft_a(m), 2);
    const Tensor& b = take(peft_b(m), 2);
    if (a.dim(0) != r || b.dim(1) != r)
      throw FormatError(path + ": module '" + m + "': lora_A " + a.desc() + " and lora_B " + b.desc() +
                        " do not have rank r = " + std::to_string(r));
    // Module names must end in a target module of the config.
    bool targeted = false;
    for (const auto& t : cfg.targets) targeted |= ends_with(m, "." + nn::target_module_name(t));
    if (!targeted) throw FormatError(path + ": module '" + m + "' is not in target_modules");
    f.tensors[nn::adapter_a_name(m)] = transposed_host(a.to(DType::F32));
    if (cfg.chain_bias && cfg.kind == nn::AdapterKind::LoRA) {  // LoRA's b on A's output
      const std::string bname = peft_lora_bias(m);
      const Tensor& bias = take(bname, 1);
      if (bias.numel() != r)
        throw FormatError(path + ": tensor '" + bname + "' is " + bias.desc() + ", expected [" + std::to_string(r) +
                          "]");
      f.tensors[nn::adapter_lora_bias_name(m)] = bias.to(DType::F32).clone();
    }
    for (int j = 0; j < nm; ++j) {
      const std::string name = peft_mixer(m, cfg.kind, j);
      const Tensor& w = take(name, 2);
      if (w.dim(0) != r || w.dim(1) != r)
        throw FormatError(path + ": tensor '" + name + "' is " + w.desc() + ", expected [" + std::to_string(r) + ", " +
                          std::to_string(r) + "]");
      f.tensors[nn::adapter_mixer_name(m, cfg.kind, j)] = transposed_host(w.to(DType::F32));
      if (cfg.chain_bias) {
        const std::string bname = peft_bias(m, j);
        const Tensor& bias = take(bname, 1);
        if (bias.numel() != r)
          throw FormatError(path + ": tensor '" + bname + "' is " + bias.desc() + ", expected [" + std::to_string(r) +
                            "]");
        f.tensors[nn::adapter_mixer_bias_name(m, j)] = bias.to(DType::F32).clone();
      }
    }
    f.tensors[nn::adapter_b_name(m)] = b.to(DType::F32).clone();
  }
  for (const std::string& name : st.names)
    if (!used.count(name))
      throw FormatError(path + ": unexpected tensor '" + name + "' for a " + type + " adapter with chain_length " +
                        std::to_string(nm) + (cfg.chain_bias ? " and chain biases" : ""));
  return f;
}

nn::AdapterSet attach_adapter_file(const AdapterFile& f,
                                   const std::vector<std::pair<std::string, nn::Linear*>>& linears, Device device,
                                   const std::string& what) {
  // Check the model side first so a mismatch leaves the model untouched.
  std::set<std::string> in_file(f.modules.begin(), f.modules.end());
  std::set<std::string> matched;
  for (const auto& [m, lin] : linears) {
    for (const auto& t : f.config.targets) {
      if (!ends_with(m, "." + nn::target_module_name(t))) continue;
      if (!in_file.count(m))
        throw FormatError(what + ": the model's module '" + m + "' is targeted but has no tensors in the adapter");
      const Tensor& a = f.tensors.at(nn::adapter_a_name(m));
      const Tensor& b = f.tensors.at(nn::adapter_b_name(m));
      if (a.dim(0) != lin->in_features() || b.dim(0) != lin->out_features())
        throw FormatError(what + ": module '" + m + "' has lora_A [" + std::to_string(a.dim(1)) + ", " +
                          std::to_string(a.dim(0)) + "], lora_B " + b.desc() + " but the model's weight is " +
                          lin->weight.desc());
      if (lin->adapter) throw FormatError(what + ": module '" + m + "' already has an adapter");
      matched.insert(m);
    }
  }
  for (const std::string& m : f.modules)
    if (!matched.count(m)) throw FormatError(what + ": module '" + m + "' is not in the model");
  nn::AdapterSet set = nn::attach_adapters(linears, f.config, 0, device);
  for (const auto& [name, p] : set.store->params()) {
    Tensor dst = p;
    dst.copy_from(f.tensors.at(name).to(p.dtype()));
  }
  return set;
}

nn::AdapterSet load_adapter(const std::string& path, const std::vector<std::pair<std::string, nn::Linear*>>& linears,
                            Device device) {
  return attach_adapter_file(read_adapter_file(path), linears, device, path);
}

AdapterFile export_plain_lora(const AdapterFile& f) {
  const nn::AdapterConfig& c = f.config;
  if (c.chain_bias)
    throw FormatError(
        "--export-lora: this " + nn::adapter_kind_name(c.kind) +
        " adapter has chain biases, so its update s·B·(P·A·x + β) adds an input-independent output bias s·B·β that a "
        "plain LoRA (s·B·A·x) cannot carry; use the merged model instead (base weights and biases with the adapter "
        "folded in, saved as an HF folder)");
  AdapterFile out;
  out.config = c;
  out.config.kind = nn::AdapterKind::LoRA;
  out.config.init = nn::MixerInit::Kaiming;
  out.modules = f.modules;
  NoGrad ng;
  for (const std::string& m : f.modules) {
    Tensor a = f.tensors.at(nn::adapter_a_name(m)).to(DType::F64);  // [in, r]
    for (int j = 0; j < c.num_mixers(); ++j)                        // A' = A·W₁⋯Wₙ
      a = ops::matmul(a, f.tensors.at(nn::adapter_mixer_name(m, c.kind, j)).to(DType::F64));
    out.tensors[nn::adapter_a_name(m)] = a.to(DType::F32);
    out.tensors[nn::adapter_b_name(m)] = f.tensors.at(nn::adapter_b_name(m)).clone();
  }
  return out;
}

}  // namespace cg::models
