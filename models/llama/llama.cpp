// models/llama/llama.cpp — LlamaModel: parameters under HF names and the one forward, built
// from ops, for training (on the tape) and for decoding with a KV cache.
#include "models/llama/llama.h"

#include <cmath>
#include <map>

#include "engine/rng.h"
#include "engine/tape.h"
#include "ops/ops.h"

namespace cg::models {
namespace {

std::string layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }

bool is_residual_output(const std::string& name) {
  const auto ends = [&](const char* s) {
    const std::string suf(s);
    return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends("self_attn.o_proj.weight") || ends("mlp.down_proj.weight");
}

}  // namespace

LlamaModel::LlamaModel(const LlamaConfig& config) : config_(config) { config_.validate("LlamaModel"); }

LlamaModel::LlamaModel(const LlamaConfig& config, uint64_t seed, Device device) : LlamaModel(config) {
  Rng rng(seed);
  const double std = 0.02, resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
  std::vector<std::pair<std::string, Tensor>> values;
  for (const TensorSpec& s : hf_llama_tensor_specs(config_)) {
    if (s.name == "lm_head.weight" && config_.tied_embeddings) continue;
    const bool bias = s.name.size() > 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0;
    Tensor t = bias                  ? Tensor::zeros(s.shape)
               : s.shape.rank() == 1 ? Tensor::ones(s.shape)
                                     : rand_normal(s.shape, 0.0, is_residual_output(s.name) ? resid_std : std, rng);
    values.emplace_back(s.name, t);
  }
  add_params(values, device);
}

std::unique_ptr<LlamaModel> LlamaModel::from_checkpoint(const Checkpoint& ckpt, Device device, DType dtype) {
  if (!is_float(dtype))
    throw DTypeError(std::string("LlamaModel::from_checkpoint: dtype must be f32 or f64, got ") + dtype_name(dtype));
  check_checkpoint(ckpt, "checkpoint");
  std::unique_ptr<LlamaModel> m(new LlamaModel(ckpt.config));
  std::map<std::string, Tensor> by_name(ckpt.tensors.begin(), ckpt.tensors.end());
  std::vector<std::pair<std::string, Tensor>> values;
  for (const TensorSpec& s : hf_llama_tensor_specs(ckpt.config)) {
    if (s.name == "lm_head.weight" && ckpt.config.tied_embeddings) continue;
    values.emplace_back(s.name, by_name.at(s.name).to(dtype));
  }
  m->add_params(values, device);
  return m;
}

// Registers the values in HF order, finalizes the store and points the layer structs at
// the parameters.
void LlamaModel::add_params(const std::vector<std::pair<std::string, Tensor>>& values, Device device) {
  for (const auto& [name, t] : values) params_.add(name, t);
  params_.finalize(device);
  embed_ = params_.get("model.embed_tokens.weight");
  final_norm_ = params_.get("model.norm.weight");
  lm_head_ = config_.tied_embeddings ? embed_ : params_.get("lm_head.weight");
  layers_.resize(static_cast<size_t>(config_.n_layers));
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    const std::string p = layer_prefix(i);
    Layer& L = layers_[static_cast<size_t>(i)];
    L.attn_norm = params_.get(p + "input_layernorm.weight");
    L.q.weight = params_.get(p + "self_attn.q_proj.weight");
    L.k.weight = params_.get(p + "self_attn.k_proj.weight");
    L.v.weight = params_.get(p + "self_attn.v_proj.weight");
    L.o.weight = params_.get(p + "self_attn.o_proj.weight");
    L.ffn_norm = params_.get(p + "post_attention_layernorm.weight");
    L.gate.weight = params_.get(p + "mlp.gate_proj.weight");
    L.up.weight = params_.get(p + "mlp.up_proj.weight");
    L.down.weight = params_.get(p + "mlp.down_proj.weight");
    if (config_.attention_bias) {
      L.q.bias = params_.get(p + "self_attn.q_proj.bias");
      L.k.bias = params_.get(p + "self_attn.k_proj.bias");
      L.v.bias = params_.get(p + "self_attn.v_proj.bias");
      L.o.bias = params_.get(p + "self_attn.o_proj.bias");
    }
    if (config_.mlp_bias) {
      L.gate.bias = params_.get(p + "mlp.gate_proj.bias");
      L.up.bias = params_.get(p + "mlp.up_proj.bias");
      L.down.bias = params_.get(p + "mlp.down_proj.bias");
    }
  }
}

void LlamaModel::store_base_bf16() {
  params_.store_bf16([](const std::string&, const Tensor& t) { return t.rank() == 2; });
}

// The config gains attention_bias / mlp_bias when some projection of that group has a bias
// the config does not (a merged affine adapter's, nn/linear.h); the group's projections
// without one are written with zeros, as HF's LlamaForCausalLM has a bias on all or none.
Checkpoint LlamaModel::to_checkpoint() const {
  Checkpoint ck;
  ck.config = config_;
  std::map<std::string, const nn::Linear*> by_bias;  // "model.layers.3.self_attn.q_proj.bias" → its Linear
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    const Layer& L = layers_[static_cast<size_t>(i)];
    const std::string p = layer_prefix(i);
    for (const auto& [name, lin] : {std::pair<const char*, const nn::Linear*>{"self_attn.q_proj", &L.q},
                                    {"self_attn.k_proj", &L.k},
                                    {"self_attn.v_proj", &L.v},
                                    {"self_attn.o_proj", &L.o},
                                    {"mlp.gate_proj", &L.gate},
                                    {"mlp.up_proj", &L.up},
                                    {"mlp.down_proj", &L.down}}) {
      by_bias.emplace(p + name + ".bias", lin);
      if (lin->bias.defined()) (name[0] == 'm' ? ck.config.mlp_bias : ck.config.attention_bias) = true;
    }
  }
  for (const TensorSpec& s : hf_llama_tensor_specs(ck.config)) {
    Tensor src;
    if (s.name == "lm_head.weight") src = lm_head_;
    else if (auto it = by_bias.find(s.name); it != by_bias.end()) src = it->second->bias;
    else src = params_.get(s.name);
    if (!src.defined()) {  // a projection without a bias in a group that has them
      ck.tensors.emplace_back(s.name, Tensor::zeros(s.shape));
      continue;
    }
    Tensor host = src.to(Device::CPU).to(DType::F32);
    ck.tensors.emplace_back(s.name, host.same(src) ? host.clone() : host);
  }
  return ck;
}

std::vector<std::pair<std::string, nn::Linear*>> LlamaModel::linears() {
  std::vector<std::pair<std::string, nn::Linear*>> out;
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    const std::string p = layer_prefix(i);
    Layer& L = layers_[static_cast<size_t>(i)];
    out.emplace_back(p + "self_attn.q_proj", &L.q);
    out.emplace_back(p + "self_attn.k_proj", &L.k);
    out.emplace_back(p + "self_attn.v_proj", &L.v);
    out.emplace_back(p + "self_attn.o_proj", &L.o);
    out.emplace_back(p + "mlp.gate_proj", &L.gate);
    out.emplace_back(p + "mlp.up_proj", &L.up);
    out.emplace_back(p + "mlp.down_proj", &L.down);
  }
  return out;
}

void LlamaModel::check_ids(const char* what, const Tensor& ids) const {
  if (ids.dtype() != DType::I32) throw DTypeError(std::string(what) + ": ids must be i32, got " + ids.desc());
  if (ids.rank() != 2 || ids.dim(0) < 1 || ids.dim(1) < 1)
    throw ShapeError(std::string(what) + ": ids must be [B,T] with B,T ≥ 1, got " + ids.desc());
}

// logits[B,T,V] = lm_head(norm(decoder(embed(ids)))), at positions pos .. pos+T−1 with
// pos = cache->len (0 without a cache), or per token from the segments. With a cache, each
// layer appends its keys and values to it and attends over all its positions.
Tensor LlamaModel::forward(const Tensor& ids_in, KVCache* cache, const Tensor& segments_in) {
  check_ids("LlamaModel::forward", ids_in);
  const int64_t B = ids_in.dim(0), T = ids_in.dim(1), pos = cache ? cache->len : 0;
  if (cache) check_cache(*cache, ids_in);
  else if (T > config_.seq_len)
    throw ShapeError("LlamaModel::forward: T=" + std::to_string(T) + " exceeds seq_len " +
                     std::to_string(config_.seq_len));
  Tensor segments, positions;  // packed rows: i32 [B,T] each, on the device
  if (segments_in.defined()) {
    if (cache) throw ShapeError("LlamaModel::forward: segments (packed rows) are for training, not with a KV cache");
    if (segments_in.dtype() != DType::I32 || segments_in.shape() != ids_in.shape())
      throw ShapeError("LlamaModel::forward: segments " + segments_in.desc() + " must be i32 shaped like ids " +
                       ids_in.desc());
    const std::vector<int32_t> sg = segments_in.to_i32_vector();
    std::vector<int32_t> ps(sg.size());  // position within its sample: 0 where the id changes
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const size_t i = static_cast<size_t>(b * T + t);
        ps[i] = t > 0 && sg[i] == sg[i - 1] ? ps[i - 1] + 1 : 0;
      }
    segments = segments_in.to(device());
    positions = Tensor::from_i32(ps, {B, T}).to(device());
  }
  const int64_t dim = config_.dim, H = config_.n_heads, KV = config_.n_kv_heads, D = config_.head_dim();
  const double eps = config_.norm_eps, theta = config_.rope_theta;
  const Tensor ids = ids_in.to(device());
  Tensor x = ops::embedding(embed_, ids);  // [B,T,dim]
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    Tensor h = ops::rmsnorm(x, L.attn_norm, eps);                                              // [B,T,dim]
    Tensor q = ops::rope(ops::reshape(L.q.forward(h), {B, T, H, D}), pos, theta, positions);   // [B,T,H,D]
    Tensor k = ops::rope(ops::reshape(L.k.forward(h), {B, T, KV, D}), pos, theta, positions);  // [B,T,KV,D]
    Tensor v = ops::reshape(L.v.forward(h), {B, T, KV, D});                                    // [B,T,KV,D]
    Tensor a;                                                                                  // [B,H,T,D]
    if (cache) {  // keys [B,KV,D,S] and values [B,KV,S,D] of positions 0 .. pos+T−1
      ops::kv_append(cache->k[l], cache->v[l], k, v, pos);
      a = ops::attention(ops::transpose(q, 1, 2), cache->k[l], cache->v[l], true, pos + T, ops::Keys::Transposed);
    } else {
      a = ops::attention(ops::transpose(q, 1, 2), ops::transpose(k, 1, 2), ops::transpose(v, 1, 2), true, -1,
                         ops::Keys::Rows, segments);
    }
    a = ops::reshape(ops::transpose(a, 1, 2), {B, T, dim});  // [B,T,dim]
    x = ops::add(x, L.o.forward(a));
    h = ops::rmsnorm(x, L.ffn_norm, eps);
    Tensor m = ops::mul(ops::silu(L.gate.forward(h)), L.up.forward(h));  // [B,T,hidden]
    x = ops::add(x, L.down.forward(m));
  }
  if (cache) cache->len = pos + T;
  x = ops::rmsnorm(x, final_norm_, eps);
  return ops::linear(x, lm_head_);  // [B,T,V]
}

Tensor LlamaModel::loss(const Tensor& ids, const Tensor& targets, const Tensor& segments) {
  if (targets.dtype() != DType::I32 || targets.shape() != ids.shape())
    throw ShapeError("LlamaModel::loss: targets " + targets.desc() + " must be i32 shaped like ids " + ids.desc());
  return ops::cross_entropy(forward(ids, nullptr, segments), targets.to(device()));
}

LlamaModel::KVCache LlamaModel::make_cache(int64_t batch, int64_t capacity) const {
  if (capacity <= 0) capacity = config_.seq_len;
  if (batch < 1) throw ShapeError("LlamaModel::make_cache: batch must be ≥ 1, got " + std::to_string(batch));
  KVCache c;
  const DType dt = final_norm_.dtype();  // the working dtype (the matrices may be stored in bf16)
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    c.k.push_back(Tensor::zeros({batch, config_.n_kv_heads, config_.head_dim(), capacity}, dt, device()));
    c.v.push_back(Tensor::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, dt, device()));
  }
  return c;
}

void LlamaModel::check_cache(const KVCache& cache, const Tensor& ids) const {
  if (grad_enabled()) throw Error("LlamaModel::forward: decoding with a KV cache needs a NoGrad scope");
  if (cache.k.size() != layers_.size() || cache.batch() != ids.dim(0))
    throw ShapeError("LlamaModel::forward: cache for batch " + std::to_string(cache.batch()) + " and " +
                     std::to_string(cache.k.size()) + " layers does not fit ids " + ids.desc());
  if (cache.len + ids.dim(1) > cache.capacity())
    throw ShapeError("LlamaModel::forward: positions up to " + std::to_string(cache.len + ids.dim(1)) +
                     " exceed the cache capacity " + std::to_string(cache.capacity()));
}

}  // namespace cg::models
