// models/io/adapter_file.cpp — PEFT-named adapter safetensors: save, read + validate, load.
#include "models/io/adapter_file.h"

#include <cmath>
#include <set>

#include "engine/tape.h"
#include "models/io/safetensors.h"
#include "ops/ops.h"

namespace cg::models {
namespace {

// The PEFT (file) name of a store parameter of `module`.
std::string peft_a(const std::string& m) { return kPeftPrefix + m + ".lora_A.weight"; }
std::string peft_b(const std::string& m) { return kPeftPrefix + m + ".lora_B.weight"; }
std::string peft_mixer(const std::string& m, nn::AdapterKind kind, int j) {
  return kPeftPrefix + nn::adapter_mixer_name(m, kind, j);
}

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

}  // namespace

std::string peft_type_name(nn::AdapterKind kind) {
  switch (kind) {
    case nn::AdapterKind::LoRA: return "LORA";
    case nn::AdapterKind::MoSLoRA: return "MOSLORA";
    case nn::AdapterKind::LinChain: return "LINCHAIN";
  }
  return "?";
}

void save_adapter(const std::string& path, const nn::AdapterSet& set) {
  const nn::AdapterConfig& cfg = set.config;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& a : set.adapters) {
    const nn::ChainAdapter& ad = *a.adapter;
    out.emplace_back(peft_a(a.module), transposed_host(ad.a()));  // [r, in] = Aᵀ
    for (size_t j = 0; j < ad.mixers().size(); ++j) {  // Mⱼ = Wⱼ₊₁ᵀ, bias bⱼ₊₁ as is
      out.emplace_back(peft_mixer(a.module, cfg.kind, static_cast<int>(j)), transposed_host(ad.mixers()[j]));
      if (!ad.biases().empty())
        out.emplace_back(kPeftPrefix + nn::adapter_mixer_bias_name(a.module, static_cast<int>(j)),
                         ad.biases()[j].to(Device::CPU));
    }
    out.emplace_back(peft_b(a.module), ad.b().to(Device::CPU));  // [out, r] = B
  }
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
  write_safetensors(path, out, meta);
}

AdapterFile read_adapter_file(const std::string& path) {
  const SafeTensors st = read_safetensors(path);
  AdapterFile f;
  nn::AdapterConfig& cfg = f.config;
  const std::string type = meta_at(st, "peft_type", path);
  if (type == "LORA")
    cfg.kind = nn::AdapterKind::LoRA;
  else if (type == "MOSLORA")
    cfg.kind = nn::AdapterKind::MoSLoRA;
  else if (type == "LINCHAIN")
    cfg.kind = nn::AdapterKind::LinChain;
  else
    throw FormatError(path + ": peft_type '" + type + "' is not LORA, MOSLORA or LINCHAIN");
  const long long r = parse_int(meta_at(st, "r", path), "r", path);
  if (r < 1 || r > (1 << 20)) throw FormatError(path + ": r = " + std::to_string(r) + " is out of range");
  cfg.rank = static_cast<int>(r);
  cfg.alpha = parse_double(meta_at(st, "lora_alpha", path), "lora_alpha", path);
  if (std::fabs(cfg.alpha) > 1e6) throw FormatError(path + ": lora_alpha " + fmt_double(cfg.alpha) + " is out of range [-1e6, 1e6]");
  // chain_length may be absent: LoRA has no mixer, MoSLoRA one (lora_AB); LinChain's is the
  // number of lora_mixer.{j} tensors of a module.
  long long n = 0;
  if (st.metadata.count("chain_length")) {
    n = parse_int(meta_at(st, "chain_length", path), "chain_length", path);
  } else if (cfg.kind == nn::AdapterKind::MoSLoRA) {
    n = 1;
  } else if (cfg.kind == nn::AdapterKind::LinChain) {
    const std::string suf = ".lora_A.weight";
    for (const std::string& name : st.names)
      if (name.rfind(kPeftPrefix, 0) == 0 && name.size() > suf.size() + std::string(kPeftPrefix).size() &&
          name.compare(name.size() - suf.size(), suf.size(), suf) == 0) {
        const std::string m = name.substr(std::string(kPeftPrefix).size(),
                                          name.size() - suf.size() - std::string(kPeftPrefix).size());
        while (n < 64 && st.tensors.count(peft_mixer(m, cfg.kind, static_cast<int>(n)))) ++n;
        break;
      }
  }
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
  const int nm = cfg.num_mixers();
  // Chain biases: the metadata says so, or (files without the key) the first module has them.
  if (const auto it = st.metadata.find("chain_bias"); it != st.metadata.end()) {
    if (it->second != "0" && it->second != "1")
      throw FormatError(path + ": metadata 'chain_bias' = '" + it->second + "' is not 0 or 1");
    cfg.chain_bias = it->second == "1";
  } else {
    for (const std::string& name : st.names)
      cfg.chain_bias |= name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  }
  if (cfg.chain_bias && cfg.kind != nn::AdapterKind::LinChain)
    throw FormatError(path + ": chain biases need peft_type LINCHAIN, got " + type);

  // Modules in file order, from their lora_A tensors.
  std::set<std::string> seen;
  const std::string pre = kPeftPrefix, suf = ".lora_A.weight";
  for (const std::string& name : st.names) {
    if (name.rfind(pre, 0) != 0)
      throw FormatError(path + ": tensor '" + name + "' does not start with '" + pre + "'");
    if (name.size() > pre.size() + suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0) {
      const std::string m = name.substr(pre.size(), name.size() - pre.size() - suf.size());
      f.modules.push_back(m);
      seen.insert(m);
    }
  }
  if (f.modules.empty()) throw FormatError(path + ": no lora_A tensors");
  std::set<std::string> used;
  auto take = [&](const std::string& name) -> const Tensor& {
    const auto it = st.tensors.find(name);
    if (it == st.tensors.end()) throw FormatError(path + ": missing tensor '" + name + "'");
    if (it->second.rank() != 2) throw FormatError(path + ": tensor '" + name + "' is " + it->second.desc() + ", not 2-d");
    if (it->second.dtype() == DType::F32 || it->second.dtype() == DType::F64) {
      const Tensor f = it->second.to(DType::F64);
      for (int64_t i = 0; i < f.numel(); ++i)
        if (!std::isfinite(f.data<double>()[i]))
          throw FormatError(path + ": tensor '" + name + "' holds a non-finite value at element " + std::to_string(i));
    }
    used.insert(name);
    return it->second;
  };
  for (const std::string& m : f.modules) {
    const Tensor& a = take(peft_a(m));
    const Tensor& b = take(peft_b(m));
    if (a.dim(0) != r || b.dim(1) != r)
      throw FormatError(path + ": module '" + m + "': lora_A " + a.desc() + " and lora_B " + b.desc() +
                        " do not have rank r = " + std::to_string(r));
    // Module names must end in a target module of the metadata.
    bool targeted = false;
    for (const auto& t : cfg.targets) {
      const std::string s = "." + nn::target_module_name(t);
      targeted |= m.size() >= s.size() && m.compare(m.size() - s.size(), s.size(), s) == 0;
    }
    if (!targeted) throw FormatError(path + ": module '" + m + "' is not in target_modules");
    f.tensors[nn::adapter_a_name(m)] = transposed_host(a.to(DType::F32));
    for (int j = 0; j < nm; ++j) {
      const std::string name = peft_mixer(m, cfg.kind, j);
      const Tensor& w = take(name);
      if (w.dim(0) != r || w.dim(1) != r)
        throw FormatError(path + ": tensor '" + name + "' is " + w.desc() + ", expected [" + std::to_string(r) + ", " +
                          std::to_string(r) + "]");
      f.tensors[nn::adapter_mixer_name(m, cfg.kind, j)] = transposed_host(w.to(DType::F32));
      if (cfg.chain_bias) {
        const std::string bname = kPeftPrefix + nn::adapter_mixer_bias_name(m, j);
        const auto it = st.tensors.find(bname);
        if (it == st.tensors.end()) throw FormatError(path + ": missing tensor '" + bname + "'");
        if (it->second.numel() != r || it->second.rank() != 1)
          throw FormatError(path + ": tensor '" + bname + "' is " + it->second.desc() + ", expected [" +
                            std::to_string(r) + "]");
        used.insert(bname);
        f.tensors[nn::adapter_mixer_bias_name(m, j)] = it->second.to(DType::F32).clone();
      }
    }
    f.tensors[nn::adapter_b_name(m)] = b.to(DType::F32).clone();
  }
  for (const std::string& name : st.names)
    if (!used.count(name))
      throw FormatError(path + ": unexpected tensor '" + name + "' for a " + type + " adapter with chain_length " +
                        std::to_string(n));
  return f;
}

nn::AdapterSet load_adapter(const std::string& path, const std::vector<std::pair<std::string, nn::Linear*>>& linears,
                            Device device) {
  const AdapterFile f = read_adapter_file(path);
  // Check the model side first so a mismatch leaves the model untouched.
  std::set<std::string> in_file(f.modules.begin(), f.modules.end());
  std::set<std::string> matched;
  for (const auto& [m, lin] : linears) {
    for (const auto& t : f.config.targets) {
      const std::string s = "." + nn::target_module_name(t);
      if (m.size() >= s.size() && m.compare(m.size() - s.size(), s.size(), s) == 0) {
        if (!in_file.count(m))
          throw FormatError(path + ": the model's module '" + m + "' is targeted but has no tensors in the file");
        const Tensor& a = f.tensors.at(nn::adapter_a_name(m));
        const Tensor& b = f.tensors.at(nn::adapter_b_name(m));
        if (a.dim(0) != lin->in_features() || b.dim(0) != lin->out_features())
          throw FormatError(path + ": module '" + m + "' has lora_A " + a.desc() + "ᵀ, lora_B " + b.desc() +
                            " but the model's weight is " + lin->weight.desc());
        matched.insert(m);
      }
    }
  }
  for (const std::string& m : f.modules)
    if (!matched.count(m)) throw FormatError(path + ": module '" + m + "' is not in the model");
  nn::AdapterSet set = nn::attach_adapters(linears, f.config, 0, device);
  for (const auto& [name, p] : set.store->params()) {
    Tensor dst = p;
    dst.copy_from(f.tensors.at(name).to(p.dtype()));
  }
  return set;
}

}  // namespace cg::models
