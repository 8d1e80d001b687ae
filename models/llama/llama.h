// models/llama/llama.h — LlamaModel: the Llama-style decoder (token embedding, per layer
// RMSNorm → grouped-query attention with rotate-half RoPE → residual, RMSNorm → SwiGLU MLP
// → residual; final RMSNorm; lm_head tied or not). Its weights live in one nn::ParamStore
// (group "base") under Hugging Face Llama names. One forward, built from ops, serves
// training (full sequences on the tape) and incremental decoding with a KV cache.
// Checkpoint files are read and written in models/io/checkpoint.h and friends; sampling
// lives in models/llama/sampling.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "models/io/checkpoint.h"
#include "models/llama/config.h"
#include "nn/linear.h"
#include "nn/params.h"

namespace cg::models {

class LlamaModel {
 public:
  struct Layer {
    Tensor attn_norm;           // [dim]  input_layernorm
    nn::Linear q, k, v, o;      // [dim,dim], [kv_dim,dim], [kv_dim,dim], [dim,dim]
    Tensor ffn_norm;            // [dim]  post_attention_layernorm
    nn::Linear gate, up, down;  // [hidden,dim], [hidden,dim], [dim,hidden]
  };

  // Keys after RoPE and values, per layer: keys transposed, k[B, KV, D, capacity]
  // (position is the last dim, so a query's scores are one plain product: ops::Keys),
  // values v[B, KV, capacity, D]. Positions [0, len) are filled.
  struct KVCache {
    std::vector<Tensor> k, v;
    int64_t len = 0;
    int64_t batch() const { return v.empty() ? 0 : v[0].dim(0); }
    int64_t capacity() const { return v.empty() ? 0 : v[0].dim(2); }
  };

  // Random init for pretraining: N(0, 0.02) for every matrix (embedding included), ones
  // for the norms, o_proj and down_proj scaled by 1/√(2·n_layers) (GPT-2's residual
  // scaling). The store is finalized on `device` and frozen (set_trainable to train).
  LlamaModel(const LlamaConfig& config, uint64_t seed, Device device = Device::CPU);
  // Copies the weights of `ckpt` (checked against the config's HF names and shapes).
  // When tied, lm_head.weight is not read (the embedding is the head). dtype F64 gives a
  // float64 model (for checks that must not drown in float32 rounding).
  static std::unique_ptr<LlamaModel> from_checkpoint(const Checkpoint& ckpt, Device device = Device::CPU,
                                                     DType dtype = DType::F32);
  // The weights as host F32 tensors under HF names, lm_head.weight included (a copy of
  // the embedding when tied), in hf_llama_tensor_specs order. Merged affine adapters'
  // biases are included: the config then says attention_bias / mlp_bias (zeros for the
  // projections of the group without one).
  Checkpoint to_checkpoint() const;

  // Stores the base's weight matrices (attention, MLP, embedding / lm_head) once in bf16
  // (engine/dtype.h), for a fine-tune under --precision bf16 that keeps the base frozen:
  // half their memory, the same GEMM results (a bf16 product rounds f32 weights to exactly
  // these bits). Norms and biases stay f32. The base can no longer train, merge adapters
  // or run f32-precision GEMMs (each refused with a DTypeError).
  void store_base_bf16();
  bool base_is_bf16() const { return embed_.dtype() == DType::BF16; }

  const LlamaConfig& config() const { return config_; }
  nn::ParamStore& params() { return params_; }
  const nn::ParamStore& params() const { return params_; }
  Device device() const { return params_.device(); }
  std::vector<Layer>& layers() { return layers_; }
  const Tensor& embedding() const { return embed_; }
  const Tensor& lm_head() const { return lm_head_; }  // same Tensor as embedding() when tied

  // logits[B,T,V] for ids i32 [B,T]. Without a cache: positions 0..T−1 (T ≤ seq_len), on
  // the tape. With a cache: positions cache->len .. cache->len+T−1; their keys and values
  // are appended to the cache and cache->len advances. Decoding needs a NoGrad scope
  // (throws otherwise). Linears with unmerged adapters include them.
  // segments (i32 [B,T], no cache): several samples packed in each row, a run of equal
  // ids per sample; a position attends only to its own sample, and RoPE positions restart at 0
  // where the id changes, so each sample sees exactly what it would alone.
  Tensor forward(const Tensor& ids, KVCache* cache = nullptr, const Tensor& segments = Tensor());
  // Mean next-token cross-entropy; targets i32 [B,T], −1 = ignored. Shape [1].
  Tensor loss(const Tensor& ids, const Tensor& targets, const Tensor& segments = Tensor());

  // Every adaptable projection with its HF module name ("model.layers.3.self_attn.q_proj",
  // "model.layers.3.mlp.down_proj", ...), layer by layer in q,k,v,o,gate,up,down order.
  std::vector<std::pair<std::string, nn::Linear*>> linears();

  // An empty cache for `batch` sequences of up to `capacity` positions (≤ 0: seq_len).
  KVCache make_cache(int64_t batch = 1, int64_t capacity = 0) const;

 private:
  explicit LlamaModel(const LlamaConfig& config);
  void add_params(const std::vector<std::pair<std::string, Tensor>>& values, Device device);
  void check_ids(const char* what, const Tensor& ids) const;
  void check_cache(const KVCache& cache, const Tensor& ids) const;

  LlamaConfig config_;
  nn::ParamStore params_{"base"};
  Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
};

}  // namespace cg::models
