// models/io/peft_folder.cpp — PEFT adapter folders: adapter_config.json (LoraConfig, with
// the MoSLoRA / LinChain forks' lora_use_mixer and mixer_num) + adapter_model.safetensors.
#include "models/io/peft_folder.h"

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "models/io/file_io.h"
#include "models/io/safetensors.h"

namespace cg::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const json* field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

bool is_true(const json* v) { return v && v->is_boolean() && v->get<bool>(); }
bool is_empty(const json* v) { return !v || v->is_null() || ((v->is_array() || v->is_object()) && v->empty()); }

// The targets of target_modules: a list of names (a dotted name counts by its last part), a
// single name, "all-linear", or a regex, for which the modules holding tensors decide.
std::vector<std::string> targets_of(const json& tm, const SafeTensors& st, const std::string& what) {
  std::string csv;
  try {
    if (tm.is_array()) {
      for (const json& t : tm) {
        if (!t.is_string()) throw FormatError("entries must be strings");
        std::string name = t.get<std::string>();
        if (const size_t dot = name.rfind('.'); dot != std::string::npos) name = name.substr(dot + 1);
        csv += (csv.empty() ? "" : ",") + name;
      }
      return nn::parse_targets(csv);
    }
    if (!tm.is_string()) throw FormatError("is neither a list nor a string");
    const std::string s = tm.get<std::string>();
    if (s == "all-linear") return nn::parse_targets("q,k,v,o,gate,up,down");
    try {
      return nn::parse_targets(s);
    } catch (const FormatError&) {  // a regex (PEFT full-matches it on module names)
    }
    const std::string suf = ".lora_A.weight";
    for (const std::string& n : st.names)
      if (n.size() > suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0) {
        const std::string m = n.substr(0, n.size() - suf.size());
        csv += (csv.empty() ? "" : ",") + m.substr(m.rfind('.') + 1);
      }
    return nn::parse_targets(csv);
  } catch (const FormatError& e) {
    throw FormatError(what + ": target_modules: " + e.what());
  }
}

}  // namespace

std::string pickle_refusal(const std::string& path) {
  const fs::path p(path);
  const std::string bin = fs::is_directory(p) ? (p / kPeftPickleName).string() : path;
  const std::string out = (fs::path(bin).parent_path() / kPeftWeightsName).string();
  return bin +
         ": a pickle (torch.save) file, not read: loading it would execute any code it holds; convert it once "
         "where you trust it: python -c \"import torch, safetensors.torch as s; s.save_file({k: v.contiguous() "
         "for k, v in torch.load('" +
         bin + "').items()}, '" + out +
         "', {'format': 'pt'})\" (or PEFT's save_pretrained(dir, safe_serialization=True))";
}

void write_peft_folder(const std::string& dir, const AdapterFile& f, const AdapterWriteInfo& info) {
  const nn::AdapterConfig& c = f.config;
  if (c.kind == nn::AdapterKind::LoRA && c.chain_bias) throw FormatError(dir + ": " + kLoraBiasNotPeft);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw FormatError(dir +
                      ": exists and is not a folder (a PEFT adapter is a folder; a path ending in .safetensors "
                      "writes one file)");
  fs::create_directories(dir, ec);
  if (ec) throw FormatError(dir + ": cannot create the folder: " + ec.message());
  json targets = json::array();
  for (const auto& t : c.targets) targets.push_back(nn::target_module_name(t));
  json cfg{{"peft_type", "LORA"},
           {"task_type", "CAUSAL_LM"},
           {"r", c.rank},
           {"lora_dropout", f.config.dropout},
           {"bias", "none"},
           {"target_modules", targets},
           {"base_model_name_or_path", info.base_model.empty() ? json(nullptr) : json(info.base_model)},
           {"fan_in_fan_out", false},
           {"inference_mode", true},
           {"modules_to_save", nullptr}};
  // lora_alpha as an integer when it is one (PEFT's type), else as a float.
  if (c.alpha == std::floor(c.alpha) && std::fabs(c.alpha) < 1e15) cfg["lora_alpha"] = static_cast<long long>(c.alpha);
  else cfg["lora_alpha"] = c.alpha;
  if (c.kind != nn::AdapterKind::LoRA) cfg["lora_use_mixer"] = true;  // both forks' switch
  if (c.kind == nn::AdapterKind::LinChain) cfg["mixer_num"] = c.chain;
  write_safetensors((fs::path(dir) / kPeftWeightsName).string(), peft_tensors(f), {{"format", "pt"}});
  const std::string text = cfg.dump(2) + "\n";
  write_file_atomic((fs::path(dir) / kPeftConfigName).string(), std::vector<uint8_t>(text.begin(), text.end()));
}

AdapterFile read_peft_folder(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir.empty() ? "." : dir);
  const std::string weights = (d / kPeftWeightsName).string(), cfg_path = (d / kPeftConfigName).string();
  if (!fs::exists(weights, ec)) {
    if (fs::exists(d / kPeftPickleName, ec)) throw FormatError(pickle_refusal((d / kPeftPickleName).string()));
    throw FormatError(d.string() + ": no " + kPeftWeightsName + " (not a PEFT adapter folder)");
  }
  if (!fs::exists(cfg_path, ec))
    throw FormatError(d.string() + ": no " + kPeftConfigName + " beside " + kPeftWeightsName);
  const std::vector<uint8_t> bytes = read_file_bytes(cfg_path, 1u << 20);
  const json j = parse_json_limited(std::string(bytes.begin(), bytes.end()), cfg_path, /*unique_keys=*/true);
  if (!j.is_object()) throw FormatError(cfg_path + ": not a JSON object");
  const SafeTensors st = read_safetensors(weights);

  auto refuse = [&](const std::string& why) { throw FormatError(cfg_path + ": " + why); };
  const json* type = field(j, "peft_type");
  if (!type || !type->is_string()) refuse("lacks peft_type");
  if (type->get<std::string>() != "LORA")
    refuse("peft_type '" + type->get<std::string>() + "' is not LORA (LoRA, MoSLoRA and LinChain are LORA adapters)");
  nn::AdapterConfig cfg;
  const json* r = field(j, "r");
  if (!r || !r->is_number_integer() || r->get<long long>() < 1 || r->get<long long>() > (1 << 20))
    refuse("r must be an integer in [1, 1048576]");
  cfg.rank = static_cast<int>(r->get<long long>());
  const json* alpha = field(j, "lora_alpha");
  if (!alpha || !alpha->is_number() || !std::isfinite(alpha->get<double>()) || std::fabs(alpha->get<double>()) > 1e6)
    refuse("lora_alpha must be a number in [-1e6, 1e6]");
  cfg.alpha = alpha->get<double>();
  if (const json* rs = field(j, "use_rslora"); rs && !rs->is_null()) {
    if (!rs->is_boolean()) refuse("use_rslora is not a boolean");
    if (rs->get<bool>()) cfg.alpha *= std::sqrt(static_cast<double>(cfg.rank));  // alpha/√r = (alpha·√r)/r
  }
  if (const json* d = field(j, "lora_dropout"); d && !d->is_null()) {  // the training dropout p (absent: 0)
    if (!d->is_number() || !(d->get<double>() >= 0 && d->get<double>() < 1))
      refuse("lora_dropout must be a number in [0, 1)");
    cfg.dropout = d->get<double>();
  }
  // What would change the update in ways we do not reproduce.
  if (is_true(field(j, "use_dora"))) refuse("use_dora: DoRA adapters are not supported");
  if (is_true(field(j, "fan_in_fan_out")))
    refuse("fan_in_fan_out: only nn.Linear-layout (Llama) adapters are supported");
  if (is_true(field(j, "lora_bias"))) refuse("lora_bias: a bias on lora_B is not supported");
  if (const json* b = field(j, "bias"); b && !(b->is_string() && b->get<std::string>() == "none"))
    refuse("bias must be \"none\" (trained base biases are not supported)");
  for (const char* key :
       {"modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform", "layer_replication",
        "target_parameters", "trainable_token_indices", "alora_invocation_tokens"})
    if (!is_empty(field(j, key)))
      refuse(std::string(key) +
             " is set: only the same r and alpha on whole Linear modules of every layer are supported");
  if (is_true(field(j, "use_bdlora"))) refuse("use_bdlora is not supported");
  const json* tm = field(j, "target_modules");
  if (!tm) refuse("lacks target_modules");
  cfg.targets = targets_of(*tm, st, cfg_path);

  const json* use_mixer = field(j, "lora_use_mixer");
  if (use_mixer && !use_mixer->is_null() && !use_mixer->is_boolean()) refuse("lora_use_mixer is not a boolean");
  const json* mixer_num = field(j, "mixer_num");
  if (is_true(use_mixer)) {
    bool ab = false;
    for (const std::string& n : st.names) ab |= n.find(".lora_AB.") != std::string::npos;
    if (ab) {  // MoSLoRA's fork: one bias-free mixer, lora_AB
      if (mixer_num && !(mixer_num->is_number_integer() && mixer_num->get<long long>() == 1))
        refuse("lora_AB tensors (MoSLoRA) but mixer_num is not 1");
      cfg.kind = nn::AdapterKind::MoSLoRA;
    } else {  // LinChain's fork: lora_mixer.{j}, j < mixer_num
      cfg.kind = nn::AdapterKind::LinChain;
      if (mixer_num) {
        if (!mixer_num->is_number_integer() || mixer_num->get<long long>() < 1 || mixer_num->get<long long>() > 64)
          refuse("mixer_num must be an integer in [1, 64]");
        cfg.chain = static_cast<int>(mixer_num->get<long long>());
      } else {
        cfg.chain = peft_chain_length(st);
        if (cfg.chain < 1) refuse("lora_use_mixer is true but there are no lora_AB or lora_mixer.{j} tensors");
      }
      cfg.chain_bias = peft_has_chain_biases(st);
    }
  } else {
    cfg.kind = nn::AdapterKind::LoRA;
  }
  return adapter_from_peft_tensors(st, cfg, weights);
}

}  // namespace cg::models
