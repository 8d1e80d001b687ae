// models/io/llama2c.cpp — llama2.c legacy v0 .bin reader/writer and the q/k RoPE row
// permutations.
#include "models/io/llama2c.h"

#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "models/io/file_io.h"

namespace cg::models {

namespace {

constexpr int32_t kLlama2cMagic = 0x616b3432;  // "ak42": llama2.c's versioned export (v1, v2)

// Element offsets (in floats, after the header) of each array of the v0 layout.
struct Layout {
  int64_t embed, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq, wcls, total_shared, total_unshared;
};

Layout layout_of(const LlamaConfig& c) {
  const int64_t d = c.dim, h = c.hidden_dim, L = c.n_layers, kv = c.kv_dim(), v = c.vocab_size;
  Layout o{};
  int64_t p = 0;
  auto take = [&](int64_t& field, int64_t n) {
    field = p;
    p += n;
  };
  take(o.embed, v * d);
  take(o.rms_att, L * d);
  take(o.wq, L * d * d);
  take(o.wk, L * kv * d);
  take(o.wv, L * kv * d);
  take(o.wo, L * d * d);
  take(o.rms_ffn, L * d);
  take(o.w1, L * h * d);
  take(o.w2, L * d * h);
  take(o.w3, L * h * d);
  take(o.rms_final, d);
  take(o.freq, 2 * c.seq_len * (c.head_dim() / 2));
  o.total_shared = p;
  take(o.wcls, v * d);
  o.total_unshared = p;
  return o;
}

// Permutes the rows of w[n_heads·hd, in] head by head; `to_half` picks the direction.
Tensor permute_rows(const Tensor& w, int64_t n_heads, bool to_half) {
  if (w.rank() != 2 || n_heads < 1 || w.dim(0) % n_heads != 0 || (w.dim(0) / n_heads) % 2 != 0 ||
      w.dtype() != DType::F32)
    throw ShapeError("permute_rope_rows: weight " + w.desc() + " with " + std::to_string(n_heads) +
                     " heads (needs f32 [n_heads*hd, in] with hd even)");
  const int64_t hd = w.dim(0) / n_heads, half = hd / 2, in = w.dim(1);
  Tensor src = w.to(Device::CPU);
  Tensor out = Tensor::empty(w.shape(), DType::F32);
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (int64_t hh = 0; hh < n_heads; ++hh) {
    const int64_t base = hh * hd;
    for (int64_t i = 0; i < half; ++i) {
      for (int p = 0; p < 2; ++p) {
        const int64_t interleaved = base + 2 * i + p, rotate_half = base + p * half + i;
        const int64_t dst = to_half ? rotate_half : interleaved, from = to_half ? interleaved : rotate_half;
        std::memcpy(o + dst * in, s + from * in, static_cast<size_t>(in) * sizeof(float));
      }
    }
  }
  return w.device() == Device::CPU ? out : out.to(w.device());
}

Checkpoint parse_with(uint64_t total, const ReadAt& read_at, const std::string& what) {
  if (total < static_cast<uint64_t>(kLlama2cHeaderBytes))
    throw FormatError(what + ": " + std::to_string(total) + " bytes is too short for a llama2.c checkpoint header");
  int32_t hdr[7];
  read_at(0, hdr, sizeof(hdr));
  if (hdr[0] == kLlama2cMagic)
    throw FormatError(what + ": llama2.c versioned export (magic \"ak42\", version " + std::to_string(hdr[1]) +
                      ") is not supported; export with the legacy v0 format");
  LlamaConfig c;
  c.dim = hdr[0];
  c.hidden_dim = hdr[1];
  c.n_layers = hdr[2];
  c.n_heads = hdr[3];
  c.n_kv_heads = hdr[4];
  c.vocab_size = hdr[5] < 0 ? -static_cast<int64_t>(hdr[5]) : hdr[5];
  c.seq_len = hdr[6];
  c.tied_embeddings = hdr[5] > 0;
  c.validate(what + " (llama2.c header)");
  const Layout lay = layout_of(c);
  const uint64_t want = static_cast<uint64_t>(kLlama2cHeaderBytes) +
                        4 * static_cast<uint64_t>(c.tied_embeddings ? lay.total_shared : lay.total_unshared);
  if (total != want) {
    const uint64_t other = static_cast<uint64_t>(kLlama2cHeaderBytes) +
                           4 * static_cast<uint64_t>(c.tied_embeddings ? lay.total_unshared : lay.total_shared);
    throw FormatError(what + ": file is " + std::to_string(total) + " bytes but its llama2.c header (" + c.str() +
                      (c.tied_embeddings ? ", shared" : ", separate") + " classifier) needs exactly " +
                      std::to_string(want) + " bytes" +
                      (total == other ? " (the size fits the other classifier layout: wrong vocab_size sign?)"
                                      : " (truncated or not a llama2.c v0 checkpoint?)"));
  }

  // Reads a [rows, cols] block `index` of an array at float offset `at`.
  auto read_block = [&](int64_t at, int64_t index, int64_t rows, int64_t cols) {
    Tensor t = Tensor::empty({rows, cols}, DType::F32);
    const uint64_t off =
        static_cast<uint64_t>(kLlama2cHeaderBytes) + 4 * static_cast<uint64_t>(at + index * rows * cols);
    read_at(off, t.raw(), t.nbytes());
    return t;
  };
  auto read_vec = [&](int64_t at, int64_t index, int64_t n) { return read_block(at, index, 1, n).view({n}); };

  const int64_t d = c.dim, h = c.hidden_dim, kv = c.kv_dim(), v = c.vocab_size;
  Checkpoint ck;
  ck.config = c;
  auto add = [&](const std::string& name, Tensor t) { ck.tensors.emplace_back(name, std::move(t)); };
  Tensor embed = read_block(lay.embed, 0, v, d);
  add("model.embed_tokens.weight", embed);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", read_vec(lay.rms_att, i, d));
    add(p + "self_attn.q_proj.weight", permute_interleaved_to_half(read_block(lay.wq, i, d, d), c.n_heads));
    add(p + "self_attn.k_proj.weight", permute_interleaved_to_half(read_block(lay.wk, i, kv, d), c.n_kv_heads));
    add(p + "self_attn.v_proj.weight", read_block(lay.wv, i, kv, d));
    add(p + "self_attn.o_proj.weight", read_block(lay.wo, i, d, d));
    add(p + "post_attention_layernorm.weight", read_vec(lay.rms_ffn, i, d));
    add(p + "mlp.gate_proj.weight", read_block(lay.w1, i, h, d));
    add(p + "mlp.up_proj.weight", read_block(lay.w3, i, h, d));
    add(p + "mlp.down_proj.weight", read_block(lay.w2, i, d, h));
  }
  add("model.norm.weight", read_vec(lay.rms_final, 0, d));
  add("lm_head.weight", c.tied_embeddings ? embed.clone() : read_block(lay.wcls, 0, v, d));
  return ck;
}

}  // namespace

Tensor permute_interleaved_to_half(const Tensor& w, int64_t n_heads) { return permute_rows(w, n_heads, true); }
Tensor permute_half_to_interleaved(const Tensor& w, int64_t n_heads) { return permute_rows(w, n_heads, false); }

Checkpoint parse_llama2c(const uint8_t* data, size_t size, const std::string& what) {
  return parse_with(size, memory_reader(data, size, what), what);
}

Checkpoint read_llama2c(const std::string& path) {
  FileReader f(path);
  return parse_with(f.size(), f.reader(), path);
}

std::vector<uint8_t> serialize_llama2c(const Checkpoint& ckpt) {
  const std::string what = "write_llama2c";
  check_checkpoint(ckpt, what);
  const LlamaConfig& c = ckpt.config;
  if (c.attention_bias || c.mlp_bias)
    throw FormatError(what + ": llama2.c files have no projection biases; this model has them (" + c.str() +
                      "); write an HF folder instead");
  if (c.norm_eps != 1e-5 || c.rope_theta != 10000.0)
    throw FormatError(what + ": llama2.c files fix norm_eps=1e-5 and rope_theta=10000; this model has norm_eps=" +
                      std::to_string(c.norm_eps) + " rope_theta=" + std::to_string(c.rope_theta));
  const Tensor& embed = ckpt.get("model.embed_tokens.weight");
  if (c.tied_embeddings && !bitwise_equal(embed, ckpt.get("lm_head.weight")))
    throw FormatError(what + ": config says tied embeddings but lm_head.weight differs from model.embed_tokens.weight");
  const Layout lay = layout_of(c);
  const int64_t floats = c.tied_embeddings ? lay.total_shared : lay.total_unshared;
  std::vector<float> body(static_cast<size_t>(floats));
  const int32_t hdr[7] = {static_cast<int32_t>(c.dim),
                          static_cast<int32_t>(c.hidden_dim),
                          static_cast<int32_t>(c.n_layers),
                          static_cast<int32_t>(c.n_heads),
                          static_cast<int32_t>(c.n_kv_heads),
                          static_cast<int32_t>(c.tied_embeddings ? c.vocab_size : -c.vocab_size),
                          static_cast<int32_t>(c.seq_len)};
  float* base = body.data();
  auto put = [&](int64_t at, int64_t index, const Tensor& t) {
    const std::vector<float> v = t.to_f32_vector();
    std::memcpy(base + at + index * t.numel(), v.data(), v.size() * sizeof(float));
  };
  put(lay.embed, 0, embed);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    put(lay.rms_att, i, ckpt.get(p + "input_layernorm.weight"));
    put(lay.wq, i, permute_half_to_interleaved(ckpt.get(p + "self_attn.q_proj.weight"), c.n_heads));
    put(lay.wk, i, permute_half_to_interleaved(ckpt.get(p + "self_attn.k_proj.weight"), c.n_kv_heads));
    put(lay.wv, i, ckpt.get(p + "self_attn.v_proj.weight"));
    put(lay.wo, i, ckpt.get(p + "self_attn.o_proj.weight"));
    put(lay.rms_ffn, i, ckpt.get(p + "post_attention_layernorm.weight"));
    put(lay.w1, i, ckpt.get(p + "mlp.gate_proj.weight"));
    put(lay.w2, i, ckpt.get(p + "mlp.down_proj.weight"));
    put(lay.w3, i, ckpt.get(p + "mlp.up_proj.weight"));
  }
  put(lay.rms_final, 0, ckpt.get("model.norm.weight"));
  // The legacy RoPE tables (cos, then sin) that llama2.c's export wrote; readers skip them.
  const int64_t half = c.head_dim() / 2;
  for (int64_t t = 0; t < c.seq_len; ++t)
    for (int64_t j = 0; j < half; ++j) {
      const double freq = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * j) / static_cast<double>(c.head_dim()));
      base[lay.freq + t * half + j] = static_cast<float>(std::cos(static_cast<double>(t) * freq));
      base[lay.freq + c.seq_len * half + t * half + j] = static_cast<float>(std::sin(static_cast<double>(t) * freq));
    }
  if (!c.tied_embeddings) put(lay.wcls, 0, ckpt.get("lm_head.weight"));
  std::vector<uint8_t> out(sizeof(hdr) + body.size() * sizeof(float));
  std::memcpy(out.data(), hdr, sizeof(hdr));
  std::memcpy(out.data() + sizeof(hdr), body.data(), body.size() * sizeof(float));
  return out;
}

void write_llama2c(const std::string& path, const Checkpoint& ckpt) {
  write_file_atomic(path, serialize_llama2c(ckpt));
}

}  // namespace cg::models
