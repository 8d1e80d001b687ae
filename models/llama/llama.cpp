// models/llama/llama.cpp — LlamaModel: parameters under HF names, the training forward (ops on
// the tape) and the cached decode forward (backend kernels on reused buffers, attention
// over the whole cache with the keys stored transposed).
#include "models/llama/llama.h"

#include <array>
#include <cmath>
#include <map>

#include "engine/backend.h"
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

// Row-major strides (elements) of a 4-d shape [·, d1, d2, d3].
std::array<int64_t, 4> strides_of(int64_t d1, int64_t d2, int64_t d3) { return {d1 * d2 * d3, d2 * d3, d3, 1}; }

// y[N,O] = x[N,I] · Wᵀ + beta·y (beta 0 or 1), with the Linear's adapter when it is not merged.
void project(Backend& be, const nn::Linear& lin, const Tensor& x, Tensor& y, double beta) {
  if (lin.adapter && !lin.adapter->merged) {
    Tensor p = lin.adapter->forward(x, lin.weight).view(y.shape());  // [N,O] = x·Wᵀ + Δy
    if (beta == 0.0) be.copy(y.raw(), p.raw(), y.nbytes());
    else be.axpy(1.0, p, y);
    return;
  }
  be.gemm(mat(x), mat(lin.weight).t(), mat(y), 1.0, beta);
}

// True when the weights lie back to back in one storage, in order, starting at `fused`
// (so one GEMM against `fused` computes all their outputs at once).
bool stacked(const Tensor& fused, std::initializer_list<const Tensor*> ws) {
  if (!fused.defined()) return false;
  int64_t off = fused.offset();
  for (const Tensor* w : ws) {
    if (w->storage() != fused.storage() || w->offset() != off) return false;
    off += w->numel();
  }
  return true;
}

// A [Σ rows, cols] view over weights that lie back to back, or an undefined Tensor.
Tensor stack_view(std::initializer_list<const Tensor*> ws) {
  const Tensor& first = **ws.begin();
  int64_t rows = 0;
  for (const Tensor* w : ws) rows += w->dim(0);
  Tensor v = Tensor::view_of(first.storage(), first.offset(), {rows, first.dim(1)}, first.dtype());
  return stacked(v, ws) ? v : Tensor();
}

// The decode path's attention over the cache, forward only (no tape):
//   out[BK, G·Tq, D] = softmax(scale · q[BK, G·Tq, D] · kt[BK, D, :Tk] + causal mask) · v[BK, :Tk, D]
// with BK = B·KV batch entries (one per KV head; the G query heads of a KV head are
// contiguous in q, as in ops::attention) and the cache's capacity S as the row stride of
// kt and v. Keys are cached transposed, so the scores are a plain (NN) product: OpenBLAS
// runs a one-query score product with D = 8 about 2× faster that way than as q·kᵀ. The
// causal mask matters only when Tq > 1: row t of a sequence sees keys ≤ Tk − Tq + t.
// s and p are scratch of at least BK·G·Tq·Tk elements.
void cached_attention(Backend& be, const Tensor& q, const Tensor& kt, const Tensor& v, int64_t BK, int64_t G,
                      int64_t Tq, int64_t Tk, int64_t S, int64_t D, const Tensor& s_buf, const Tensor& p_buf,
                      const Tensor& out) {
  const DType dt = q.dtype();
  const int64_t GT = G * Tq;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  be.gemm(mat(q, BK, GT, D), mat(kt, BK, D, S).sub(0, D, 0, Tk), mat(s_buf, BK, GT, Tk), scale);
  const Tensor s = Tensor::view_of(s_buf.storage(), s_buf.offset(), {BK * GT, Tk}, dt);
  Tensor p = Tensor::view_of(p_buf.storage(), p_buf.offset(), {BK * GT, Tk}, dt);
  be.softmax(s, p, false, Tq > 1 ? Tq : 0, Tk - Tq);
  be.gemm(mat(p, BK, GT, Tk), mat(v, BK, S, D).rows_from(0, Tk), mat(out, BK, GT, D));
}

}  // namespace

LlamaModel::LlamaModel(const LlamaConfig& config) : config_(config) { config_.validate("LlamaModel"); }

LlamaModel::LlamaModel(const LlamaConfig& config, uint64_t seed, Device device) : LlamaModel(config) {
  Rng rng(seed);
  const double std = 0.02, resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
  std::vector<std::pair<std::string, Tensor>> values;
  for (const TensorSpec& s : hf_llama_tensor_specs(config_)) {
    if (s.name == "lm_head.weight" && config_.tied_embeddings) continue;
    Tensor t = s.shape.rank() == 1 ? Tensor::ones(s.shape)
                                   : rand_normal(s.shape, 0.0, is_residual_output(s.name) ? resid_std : std, rng);
    values.emplace_back(s.name, t);
  }
  add_params(values, device);
}

std::unique_ptr<LlamaModel> LlamaModel::from_checkpoint(const Checkpoint& ckpt, Device device, DType dtype) {
  if (!is_float(dtype)) throw DTypeError(std::string("LlamaModel::from_checkpoint: dtype must be f32 or f64, got ") + dtype_name(dtype));
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

// Registers the values in HF order (so q,k,v and gate,up sit next to each other in the
// flat buffer), finalizes the store and points the layer structs at the parameters.
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
    qkv_w_.push_back(stack_view({&L.q.weight, &L.k.weight, &L.v.weight}));
    gate_up_w_.push_back(stack_view({&L.gate.weight, &L.up.weight}));
  }
}

Checkpoint LlamaModel::to_checkpoint() const {
  Checkpoint ck;
  ck.config = config_;
  for (const TensorSpec& s : hf_llama_tensor_specs(config_)) {
    const Tensor& src = (s.name == "lm_head.weight") ? lm_head_ : params_.get(s.name);
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

// logits[B,T,V] = lm_head(norm(decoder(embed(ids))))
Tensor LlamaModel::forward(const Tensor& ids_in) {
  check_ids("LlamaModel::forward", ids_in);
  const int64_t B = ids_in.dim(0), T = ids_in.dim(1);
  if (T > config_.seq_len)
    throw ShapeError("LlamaModel::forward: T=" + std::to_string(T) + " exceeds seq_len " + std::to_string(config_.seq_len));
  const int64_t dim = config_.dim, H = config_.n_heads, KV = config_.n_kv_heads, D = config_.head_dim();
  const double eps = config_.norm_eps, theta = config_.rope_theta;
  const Tensor ids = ids_in.to(device());
  Tensor x = ops::embedding(embed_, ids);  // [B,T,dim]
  for (Layer& L : layers_) {
    Tensor h = ops::rmsnorm(x, L.attn_norm, eps);                                // [B,T,dim]
    Tensor q = ops::rope(ops::reshape(L.q.forward(h), {B, T, H, D}), 0, theta);   // [B,T,H,D]
    Tensor k = ops::rope(ops::reshape(L.k.forward(h), {B, T, KV, D}), 0, theta);  // [B,T,KV,D]
    Tensor v = ops::reshape(L.v.forward(h), {B, T, KV, D});                      // [B,T,KV,D]
    Tensor a = ops::attention(ops::transpose(q, 1, 2), ops::transpose(k, 1, 2), ops::transpose(v, 1, 2),
                              true);                                             // [B,H,T,D]
    a = ops::reshape(ops::transpose(a, 1, 2), {B, T, dim});                      // [B,T,dim]
    x = ops::add(x, L.o.forward(a));
    h = ops::rmsnorm(x, L.ffn_norm, eps);
    Tensor m = ops::mul(ops::silu(L.gate.forward(h)), L.up.forward(h));          // [B,T,hidden]
    x = ops::add(x, L.down.forward(m));
  }
  x = ops::rmsnorm(x, final_norm_, eps);
  return ops::linear(x, lm_head_);  // [B,T,V]
}

Tensor LlamaModel::loss(const Tensor& ids, const Tensor& targets) {
  if (targets.dtype() != DType::I32 || targets.shape() != ids.shape())
    throw ShapeError("LlamaModel::loss: targets " + targets.desc() + " must be i32 shaped like ids " + ids.desc());
  return ops::cross_entropy(forward(ids), targets.to(device()));
}

LlamaModel::KVCache LlamaModel::make_cache(int64_t batch, int64_t capacity) const {
  if (capacity <= 0) capacity = config_.seq_len;
  if (batch < 1) throw ShapeError("LlamaModel::make_cache: batch must be ≥ 1, got " + std::to_string(batch));
  KVCache c;
  const DType dt = embed_.dtype();
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    c.k.push_back(Tensor::zeros({batch, config_.n_kv_heads, config_.head_dim(), capacity}, dt, device()));
    c.v.push_back(Tensor::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, dt, device()));
  }
  return c;
}

// The decode path. Same maths as forward() but without the tape: kernels write into
// buffers kept in cache.scratch (reallocated only when B·Tnew changes), attention runs
// over the cache in cached_attention (keys kept transposed), the residual
// projections accumulate straight into x (GEMM with beta = 1), and new keys/values are
// written into the cache after RoPE. One token at a time (the generation loop) takes a
// leaner route: fused q,k,v and gate,up GEMMs, one RoPE call for q and k together, and
// no layout copies for q and the attention output (with B = T = 1 they are no-ops).
Tensor LlamaModel::forward_cached(const Tensor& ids_in, KVCache& cache) {
  if (grad_enabled()) throw Error("LlamaModel::forward_cached: call it inside a NoGrad scope");
  check_ids("LlamaModel::forward_cached", ids_in);
  const int64_t B = ids_in.dim(0), Tn = ids_in.dim(1), len = cache.len;
  if (cache.k.size() != layers_.size() || cache.batch() != B)
    throw ShapeError("LlamaModel::forward_cached: cache for batch " + std::to_string(cache.batch()) + " and " +
                     std::to_string(cache.k.size()) + " layers does not fit ids " + ids_in.desc());
  if (len + Tn > cache.capacity())
    throw ShapeError("LlamaModel::forward_cached: positions up to " + std::to_string(len + Tn) +
                     " exceed the cache capacity " + std::to_string(cache.capacity()));
  const int64_t dim = config_.dim, V = config_.vocab_size, N = B * Tn;
  const DType dt = embed_.dtype();
  const Device dev = device();
  Backend& be = backend_for(dev);

  // Token ids: checked on the host, then on the model's device.
  Tensor ids = ids_in.to(Device::CPU);
  for (int64_t i = 0; i < N; ++i) {
    const int32_t t = ids.data<int32_t>()[i];
    if (t < 0 || t >= V)
      throw ShapeError("LlamaModel::forward_cached: token id " + std::to_string(t) + " outside vocab " + std::to_string(V));
  }
  ids = ids.to(dev);

  auto& sc = cache.scratch;
  if (sc.size() < 3 || sc[0].dim(0) != N) {  // x[N,dim], h[N,dim], rstd[N]; the paths add more
    sc.assign(3, Tensor());
    sc[0] = Tensor::empty({N, dim}, dt, dev);
    sc[1] = Tensor::empty({N, dim}, dt, dev);
    sc[2] = Tensor::empty({N}, dt, dev);
  }
  be.embedding(embed_, ids, sc[0]);  // x[N,dim]
  if (N == 1)
    decode_layers_one(cache);
  else
    decode_layers_many(cache, B, Tn);
  be.rmsnorm(sc[0], final_norm_, sc[1], sc[2], config_.norm_eps);
  Tensor logits = Tensor::empty({B, Tn, V}, dt, dev);  // logits[N,V] = h · lm_headᵀ
  be.gemm(mat(sc[1]), mat(lm_head_).t(), mat(logits));
  cache.len = len + Tn;
  return logits;
}

void LlamaModel::decode_layers_one(KVCache& cache) {
  const int64_t dim = config_.dim, H = config_.n_heads, KV = config_.n_kv_heads, D = config_.head_dim();
  const int64_t kvd = KV * D, hidden = config_.hidden_dim, S = cache.capacity(), len = cache.len;
  const double eps = config_.norm_eps, theta = config_.rope_theta;
  const DType dt = embed_.dtype();
  const Device dev = device();
  Backend& be = backend_for(dev);
  auto& sc = cache.scratch;
  enum { X, Hn, RSTD, QKV, QKR, GU, Qv, Kv, Vv, QK, QKRv, QT, Gv, Uv, SB, PB, AT, kCount };
  if (sc.size() != kCount) {
    sc.resize(kCount);
    sc[QKV] = Tensor::empty({dim + 2 * kvd}, dt, dev);  // [q | k | v]
    sc[QKR] = Tensor::empty({dim + kvd}, dt, dev);      // [rope(q) | rope(k)]
    sc[GU] = Tensor::empty({2 * hidden}, dt, dev);      // [gate | up]
    auto part = [&](const Tensor& buf, int64_t off, const Shape& shape) {
      return Tensor::view_of(buf.storage(), buf.offset() + off, shape, dt);
    };
    sc[Qv] = part(sc[QKV], 0, {1, dim});
    sc[Kv] = part(sc[QKV], dim, {1, kvd});
    sc[Vv] = part(sc[QKV], dim + kvd, {1, kvd});
    sc[QK] = part(sc[QKV], 0, {1, 1, H + KV, D});  // q and k heads as [B,T,H+KV,D]
    sc[QKRv] = part(sc[QKR], 0, {1, 1, H + KV, D});
    sc[QT] = part(sc[QKR], 0, {1, H, 1, D});       // rope(q) as [B,H,T,D]
    sc[Gv] = part(sc[GU], 0, {1, hidden});
    sc[Uv] = part(sc[GU], hidden, {1, hidden});
    sc[SB] = Tensor::empty({H * S}, dt, dev);  // attention scores, then probabilities
    sc[PB] = Tensor::empty({H * S}, dt, dev);
    sc[AT] = Tensor::empty({1, dim}, dt, dev);  // attention output [1,H,1,D]
  }
  Tensor &x = sc[X], &h = sc[Hn], &rstd = sc[RSTD], &g = sc[Gv], &u = sc[Uv];
  Tensor &q = sc[Qv], &k = sc[Kv], &v = sc[Vv];
  const size_t es = dtype_size(dt);
  auto at = [&](const Tensor& t, int64_t elems) { return static_cast<char*>(t.raw()) + elems * static_cast<int64_t>(es); };
  const int64_t row_st[4] = {0, 0, D, 1};         // (·,·,kv,d) of a [KV,D] row
  const int64_t kt_st[4] = {0, 0, D * S, S};      // (·,·,kv,d) in the key cache [1,KV,D,S]
  const int64_t cache_st[4] = {0, 0, S * D, 1};   // (·,·,kv,d) in the value cache [1,KV,S,D]
  const int64_t box[4] = {1, 1, KV, D};
  auto active = [](const nn::Linear& l) { return l.adapter && !l.adapter->merged; };
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    Tensor& kc = cache.k[l];
    Tensor& vc = cache.v[l];
    be.rmsnorm(x, L.attn_norm, h, rstd, eps);  // h[1,dim]
    if (!active(L.q) && !active(L.k) && !active(L.v) && stacked(qkv_w_[l], {&L.q.weight, &L.k.weight, &L.v.weight}))
      be.gemm(mat(h), mat(qkv_w_[l]).t(), mat(sc[QKV]));  // [q|k|v] = h · [Wq;Wk;Wv]ᵀ
    else {
      project(be, L.q, h, q, 0.0);
      project(be, L.k, h, k, 0.0);
      project(be, L.v, h, v, 0.0);
    }
    be.rope(sc[QK], sc[QKRv], len, theta, false);  // q and k heads rotate alike: one call
    be.copy_box(dt, at(sc[QKR], dim), row_st, at(kc, len), kt_st, box, false);  // k → key cache[:, :, :, len]
    be.copy_box(dt, v.raw(), row_st, at(vc, len * D), cache_st, box, false);    // v → value cache[:, :, len]
    cached_attention(be, sc[QT], kc, vc, KV, H / KV, 1, len + 1, S, D, sc[SB], sc[PB], sc[AT]);
    project(be, L.o, sc[AT], x, 1.0);  // x += o(a), a[1,H,1,D] = [1,dim]
    be.rmsnorm(x, L.ffn_norm, h, rstd, eps);
    if (!active(L.gate) && !active(L.up) && stacked(gate_up_w_[l], {&L.gate.weight, &L.up.weight}))
      be.gemm(mat(h), mat(gate_up_w_[l]).t(), mat(sc[GU]));  // [g|u] = h · [Wg;Wu]ᵀ
    else {
      project(be, L.gate, h, g, 0.0);
      project(be, L.up, h, u, 0.0);
    }
    be.unary(UnaryOp::Silu, g, g, 0.0);
    be.binary(BinaryOp::Mul, g, u, g);
    project(be, L.down, g, x, 1.0);  // x += down(silu(g)·u)
  }
}

void LlamaModel::decode_layers_many(KVCache& cache, int64_t B, int64_t Tn) {
  const int64_t dim = config_.dim, H = config_.n_heads, KV = config_.n_kv_heads, D = config_.head_dim();
  const int64_t hidden = config_.hidden_dim, N = B * Tn, S = cache.capacity(), len = cache.len;
  const double eps = config_.norm_eps, theta = config_.rope_theta;
  const DType dt = embed_.dtype();
  const Device dev = device();
  Backend& be = backend_for(dev);
  auto& sc = cache.scratch;
  enum { X, Hn, RSTD, Q, QR, QT, KN, VN, KR, AT, G, U, SB, PB, ATT, kCount };
  if (sc.size() != kCount) {
    sc.resize(kCount);
    sc[Q] = Tensor::empty({B, Tn, H, D}, dt, dev);
    sc[QR] = Tensor::empty({B, Tn, H, D}, dt, dev);
    sc[QT] = Tensor::empty({B, H, Tn, D}, dt, dev);
    sc[KN] = Tensor::empty({B, Tn, KV, D}, dt, dev);
    sc[VN] = Tensor::empty({B, Tn, KV, D}, dt, dev);
    sc[KR] = Tensor::empty({B, Tn, KV, D}, dt, dev);
    sc[AT] = Tensor::empty({B, Tn, H, D}, dt, dev);
    sc[G] = Tensor::empty({N, hidden}, dt, dev);
    sc[U] = Tensor::empty({N, hidden}, dt, dev);
    sc[SB] = Tensor::empty({N * H * S}, dt, dev);  // attention scores, then probabilities
    sc[PB] = Tensor::empty({N * H * S}, dt, dev);
    sc[ATT] = Tensor::empty({B, H, Tn, D}, dt, dev);
  }
  Tensor &x = sc[X], &h = sc[Hn], &rstd = sc[RSTD], &g = sc[G], &u = sc[U];
  Tensor qv = sc[Q].view({N, dim}), kv = sc[KN].view({N, KV * D}), vv = sc[VN].view({N, KV * D});
  Tensor atv = sc[AT].view({N, dim});
  const size_t es = dtype_size(dt);
  auto at = [&](const Tensor& t, int64_t elems) { return static_cast<char*>(t.raw()) + elems * static_cast<int64_t>(es); };
  const auto btkd = strides_of(Tn, KV, D);                                    // [B,Tn,KV,D]
  const auto kt_st = std::array<int64_t, 4>{KV * D * S, 1, D * S, S};       // (b,t,kv,d) in keys [B,KV,D,S]
  const auto cache_st = std::array<int64_t, 4>{KV * S * D, D, S * D, 1};     // (b,t,kv,d) in values [B,KV,S,D]
  const int64_t box_kv[4] = {B, Tn, KV, D};
  const auto bthd = strides_of(Tn, H, D);                                     // [B,Tn,H,D]
  const auto bhtd_as_bthd = std::array<int64_t, 4>{H * Tn * D, D, Tn * D, 1};  // (b,t,h,d) in [B,H,Tn,D]
  const int64_t box_q[4] = {B, Tn, H, D};
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    be.rmsnorm(x, L.attn_norm, h, rstd, eps);  // h[N,dim]
    project(be, L.q, h, qv, 0.0);              // q[N,dim]   = [B,Tn,H,D]
    project(be, L.k, h, kv, 0.0);              // k[N,KV·D]  = [B,Tn,KV,D]
    project(be, L.v, h, vv, 0.0);              // v[N,KV·D]
    be.rope(sc[Q], sc[QR], len, theta, false);
    be.rope(sc[KN], sc[KR], len, theta, false);
    // q [B,Tn,H,D] → [B,H,Tn,D]; k [B,Tn,KV,D] → keys[l][B,KV,:,len+t]; v → values[l][B,KV,len+t,:]
    be.copy_box(dt, sc[QR].raw(), bthd.data(), sc[QT].raw(), bhtd_as_bthd.data(), box_q, false);
    be.copy_box(dt, sc[KR].raw(), btkd.data(), at(cache.k[l], len), kt_st.data(), box_kv, false);
    be.copy_box(dt, sc[VN].raw(), btkd.data(), at(cache.v[l], len * D), cache_st.data(), box_kv, false);
    cached_attention(be, sc[QT], cache.k[l], cache.v[l], B * KV, H / KV, Tn, len + Tn, S, D, sc[SB], sc[PB],
                     sc[ATT]);  // [B,H,Tn,D]
    be.copy_box(dt, sc[ATT].raw(), bhtd_as_bthd.data(), sc[AT].raw(), bthd.data(), box_q, false);  // → [B,Tn,H,D]
    project(be, L.o, atv, x, 1.0);  // x += o(a)
    be.rmsnorm(x, L.ffn_norm, h, rstd, eps);
    project(be, L.gate, h, g, 0.0);  // g[N,hidden]
    project(be, L.up, h, u, 0.0);    // u[N,hidden]
    be.unary(UnaryOp::Silu, g, g, 0.0);
    be.binary(BinaryOp::Mul, g, u, g);
    project(be, L.down, g, x, 1.0);  // x += down(silu(g)·u)
  }
}

}  // namespace cg::models
