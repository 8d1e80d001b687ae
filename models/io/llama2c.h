// models/io/llama2c.h — llama2.c checkpoints (legacy "v0" .bin: a 7×int32 header, then raw
// float32 arrays). Reading converts to Hugging Face Llama names and layout, including
// the q/k row permutation from llama2.c's interleaved-pair RoPE order to HF's
// rotate-half order; writing does the inverse. The file size is checked exactly against
// the header before any tensor is allocated.
//
// File layout (llama2.c export.py legacy_export / run.c memory_map_weights), L layers,
// kv_dim = dim·n_kv_heads/n_heads, hd = dim/n_heads; every matrix is [out, in] row-major:
//   header  dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (int32;
//           vocab_size < 0 means a separate classifier follows)
//   token_embedding[V,dim] rms_att[L,dim] wq[L,dim,dim] wk[L,kv_dim,dim] wv[L,kv_dim,dim]
//   wo[L,dim,dim] rms_ffn[L,dim] w1[L,hidden,dim] w2[L,dim,hidden] w3[L,hidden,dim]
//   rms_final[dim] freq_cis_real[seq_len,hd/2] freq_cis_imag[seq_len,hd/2] (unused)
//   wcls[V,dim] (only when vocab_size < 0)
// Mapping: w1 → mlp.gate_proj, w2 → mlp.down_proj, w3 → mlp.up_proj. The format fixes
// norm_eps = 1e-5 and rope_theta = 10000.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/io/checkpoint.h"

namespace cg::models {

constexpr int64_t kLlama2cHeaderBytes = 7 * 4;

// Parses a whole .bin held in memory; `what` names it in messages.
Checkpoint parse_llama2c(const uint8_t* data, size_t size, const std::string& what);
// Reads `path`: header, exact size check, then each tensor straight from the file.
Checkpoint read_llama2c(const std::string& path);

// The .bin bytes for `ckpt` (checked with check_checkpoint; norm_eps must be 1e-5 and
// rope_theta 10000, which the format cannot store). A tied checkpoint is written with
// a shared classifier (lm_head must then equal the embedding), an untied one with wcls.
std::vector<uint8_t> serialize_llama2c(const Checkpoint& ckpt);
// serialize_llama2c written atomically (path + ".tmp", then rename).
void write_llama2c(const std::string& path, const Checkpoint& ckpt);

// Row permutations of a q or k weight w[n_heads·hd, in] (hd even), head by head.
// interleaved → rotate-half: out row i = in row 2i, out row hd/2+i = in row 2i+1 (i < hd/2).
Tensor permute_interleaved_to_half(const Tensor& w, int64_t n_heads);
// The inverse: out row 2i = in row i, out row 2i+1 = in row hd/2+i.
Tensor permute_half_to_interleaved(const Tensor& w, int64_t n_heads);

}  // namespace cg::models
