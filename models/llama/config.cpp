// models/llama/config.cpp — LlamaConfig validation and HF config JSON conversion.
#include "models/llama/config.h"

#include <cmath>

#include "engine/error.h"

namespace cg::models {

int64_t LlamaConfig::param_count() const {
  const int64_t per_layer = 2 * dim + 2 * dim * dim + 2 * kv_dim() * dim + 3 * dim * hidden_dim +
                            (attention_bias ? 2 * dim + 2 * kv_dim() : 0) + (mlp_bias ? 2 * hidden_dim + dim : 0);
  return vocab_size * dim * (tied_embeddings ? 1 : 2) + n_layers * per_layer + dim;
}

std::string LlamaConfig::str() const {
  return "dim=" + std::to_string(dim) + " hidden_dim=" + std::to_string(hidden_dim) +
         " n_layers=" + std::to_string(n_layers) + " n_heads=" + std::to_string(n_heads) +
         " n_kv_heads=" + std::to_string(n_kv_heads) + " vocab_size=" + std::to_string(vocab_size) +
         " seq_len=" + std::to_string(seq_len) + (attention_bias ? " attention_bias" : "") +
         (mlp_bias ? " mlp_bias" : "");
}

void LlamaConfig::validate(const std::string& what) const {
  auto check_range = [&](const char* name, int64_t v, int64_t hi) {
    if (v < 1 || v > hi)
      throw FormatError(what + ": " + name + "=" + std::to_string(v) + " is out of range [1, " + std::to_string(hi) +
                        "] (" + str() + ")");
  };
  check_range("dim", dim, kMaxDim);
  check_range("hidden_dim", hidden_dim, kMaxHiddenDim);
  check_range("n_layers", n_layers, kMaxLayers);
  check_range("n_heads", n_heads, kMaxHeads);
  check_range("n_kv_heads", n_kv_heads, kMaxHeads);
  check_range("vocab_size", vocab_size, kMaxVocab);
  check_range("seq_len", seq_len, kMaxSeqLen);
  if (dim % n_heads != 0)
    throw FormatError(what + ": dim=" + std::to_string(dim) +
                      " is not divisible by n_heads=" + std::to_string(n_heads));
  if (n_heads % n_kv_heads != 0)
    throw FormatError(what + ": n_heads=" + std::to_string(n_heads) +
                      " is not divisible by n_kv_heads=" + std::to_string(n_kv_heads));
  if (head_dim() % 2 != 0)
    throw FormatError(what + ": head_dim=" + std::to_string(head_dim()) + " (dim/n_heads) is odd; RoPE needs it even");
  if (!(norm_eps > 0) || !std::isfinite(norm_eps))
    throw FormatError(what + ": norm_eps=" + std::to_string(norm_eps) + " must be positive and finite");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta))
    throw FormatError(what + ": rope_theta=" + std::to_string(rope_theta) + " must be positive and finite");
}

nlohmann::json LlamaConfig::to_hf_json() const {
  return nlohmann::json{
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", dim},
      {"intermediate_size", hidden_dim},
      {"num_hidden_layers", n_layers},
      {"num_attention_heads", n_heads},
      {"num_key_value_heads", n_kv_heads},
      {"vocab_size", vocab_size},
      {"max_position_embeddings", seq_len},
      {"rms_norm_eps", norm_eps},
      {"rope_theta", rope_theta},
      {"tie_word_embeddings", tied_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", attention_bias},
      {"mlp_bias", mlp_bias},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", "float32"},
  };
}

namespace {

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end()) throw FormatError(what + ": HF config lacks \"" + std::string(key) + "\"");
  if (!it->is_number_integer())
    throw FormatError(what + ": HF config \"" + std::string(key) + "\" is not an integer: " + it->dump());
  return it->get<int64_t>();
}

double get_double(const nlohmann::json& j, const char* key, double fallback, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number())
    throw FormatError(what + ": HF config \"" + std::string(key) + "\" is not a number: " + it->dump());
  return it->get<double>();
}

}  // namespace

LlamaConfig LlamaConfig::from_hf_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw FormatError(what + ": HF config is not a JSON object");
  if (auto it = j.find("model_type"); it != j.end() && *it != "llama")
    throw FormatError(what + ": HF config model_type " + it->dump() + " is not \"llama\"");
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null())
    throw FormatError(what + ": HF config rope_scaling " + it->dump() + " is not supported");
  if (auto it = j.find("hidden_act"); it != j.end() && *it != "silu")
    throw FormatError(what + ": HF config hidden_act " + it->dump() + " is not supported (silu only)");
  LlamaConfig c;
  c.dim = get_int(j, "hidden_size", what);
  c.hidden_dim = get_int(j, "intermediate_size", what);
  c.n_layers = get_int(j, "num_hidden_layers", what);
  c.n_heads = get_int(j, "num_attention_heads", what);
  c.n_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                     ? get_int(j, "num_key_value_heads", what)
                     : c.n_heads;
  c.vocab_size = get_int(j, "vocab_size", what);
  c.seq_len = get_int(j, "max_position_embeddings", what);
  c.norm_eps = get_double(j, "rms_norm_eps", 1e-6, what);
  c.rope_theta = get_double(j, "rope_theta", 10000.0, what);
  if (auto it = j.find("tie_word_embeddings"); it != j.end()) {
    if (!it->is_boolean())
      throw FormatError(what + ": HF config \"tie_word_embeddings\" is not a boolean: " + it->dump());
    c.tied_embeddings = it->get<bool>();
  }
  for (auto [key, flag] :
       {std::pair<const char*, bool*>{"attention_bias", &c.attention_bias}, {"mlp_bias", &c.mlp_bias}})
    if (auto it = j.find(key); it != j.end() && !it->is_null()) {
      if (!it->is_boolean()) throw FormatError(what + ": HF config \"" + key + "\" is not a boolean: " + it->dump());
      *flag = it->get<bool>();
    }
  c.validate(what);
  if (auto it = j.find("head_dim");
      it != j.end() && !it->is_null() && (!it->is_number_integer() || it->get<int64_t>() != c.head_dim()))
    throw FormatError(what + ": HF config head_dim " + it->dump() +
                      " differs from hidden_size/num_attention_heads = " + std::to_string(c.head_dim()));
  return c;
}

}  // namespace cg::models
