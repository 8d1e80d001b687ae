// models/llama/config.h — LlamaConfig: the sizes of a Llama-style decoder, their validation
// (so a corrupt header cannot ask for gigabytes), and conversion to/from a Hugging Face
// `config.json`-style object. No tensors and no file I/O live here.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace cg::models {

// Upper bounds accepted by validate(); generous for any model this project runs (an
// 8B Llama fits) but small enough that sizes multiplied together stay far from overflow.
constexpr int64_t kMaxDim = 1 << 16;
constexpr int64_t kMaxHiddenDim = 1 << 18;
constexpr int64_t kMaxLayers = 1 << 10;
constexpr int64_t kMaxHeads = 1 << 10;
constexpr int64_t kMaxVocab = 1 << 21;
constexpr int64_t kMaxSeqLen = 1 << 20;

struct LlamaConfig {
  int64_t dim = 0;         // model width (HF hidden_size)
  int64_t hidden_dim = 0;  // SwiGLU inner width (HF intermediate_size)
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // grouped-query attention: n_heads % n_kv_heads == 0
  int64_t vocab_size = 0;
  int64_t seq_len = 0;  // context length (HF max_position_embeddings)
  double norm_eps = 1e-5;
  double rope_theta = 10000;
  bool tied_embeddings = false;  // lm_head shares the token embedding
  // Bias vectors on the projections, as HF's LlamaConfig has them: attention_bias puts one
  // on each of q, k, v, o; mlp_bias on each of gate, up, down (a merged affine adapter
  // needs them, nn/linear.h).
  bool attention_bias = false;
  bool mlp_bias = false;

  int64_t head_dim() const { return dim / n_heads; }
  int64_t kv_dim() const { return head_dim() * n_kv_heads; }
  // Number of weights (biases included), counting lm_head once more unless tied. Call
  // after validate().
  int64_t param_count() const;
  // "dim=64 hidden_dim=172 ..." for messages (" attention_bias mlp_bias" appended when set).
  std::string str() const;

  // Throws FormatError naming `what` (a file name or "config") on any size that is not
  // positive, not divisible as attention needs, odd head_dim, or beyond the bounds above.
  void validate(const std::string& what = "config") const;

  // HF LlamaConfig keys (hidden_size, intermediate_size, ..., "architectures",
  // "model_type": "llama").
  nlohmann::json to_hf_json() const;
  // Reads the keys above; num_key_value_heads defaults to num_attention_heads,
  // rms_norm_eps to 1e-6, rope_theta to 10000, tie_word_embeddings, attention_bias and
  // mlp_bias to false (HF's defaults). Missing/mistyped keys, rope_scaling, a hidden_act
  // other than silu or another model_type → FormatError.
  // The result is validated.
  static LlamaConfig from_hf_json(const nlohmann::json& j, const std::string& what = "config");

  bool operator==(const LlamaConfig&) const = default;
};

}  // namespace cg::models
