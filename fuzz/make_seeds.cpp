// fuzz/make_seeds.cpp — writes a small valid seed corpus for the fuzz harnesses:
//   make_seeds DIR [TOK_BIN]  →  DIR/{safetensors,llama2c,tokenizer,gguf}/seed_*
// using the project's own writers (plus a hand-built F16/BF16 file, and TOK_BIN when
// given and present). Run by scripts/fuzz.sh.
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/rng.h"
#include "models/io/hf_llama.h"
#include "models/io/file_io.h"
#include "models/io/llama2c.h"
#include "models/io/safetensors.h"
#include "models/text/tokenizer.h"

using namespace cg;
using namespace cg::models;
namespace fs = std::filesystem;

namespace {

Checkpoint tiny_checkpoint(bool tied, uint64_t seed) {
  LlamaConfig c;
  c.dim = 4;
  c.hidden_dim = 6;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 5;
  c.seq_len = 3;
  c.tied_embeddings = tied;
  Rng rng(seed);
  Checkpoint ck;
  ck.config = c;
  for (const TensorSpec& s : hf_llama_tensor_specs(c))
    ck.tensors.emplace_back(s.name, s.name == "lm_head.weight" && tied ? ck.get("model.embed_tokens.weight").clone()
                                                                       : rand_normal(s.shape, 0, 1, rng));
  return ck;
}

std::vector<uint8_t> with_text(const std::string& text, const std::vector<uint8_t>& tok) {
  std::vector<uint8_t> out = {static_cast<uint8_t>(text.size())};
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), tok.begin(), tok.end());
  return out;
}

// A small GGUF v3: llama metadata, a byte-level vocabulary with one merge, an F32 tensor
// [2,32] and a Q4_K tensor [256] (random block bytes with a finite scale).
std::vector<uint8_t> tiny_gguf() {
  std::vector<uint8_t> b;
  auto put = [&](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto u64 = [&](uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    put(s.data(), s.size());
  };
  auto kv_str = [&](const std::string& k, const std::string& v) {
    str(k);
    u32(8);
    str(v);
  };
  auto kv_u32 = [&](const std::string& k, uint32_t v) {
    str(k);
    u32(4);
    u32(v);
  };
  auto kv_strs = [&](const std::string& k, const std::vector<std::string>& v) {
    str(k);
    u32(9);
    u32(8);
    u64(v.size());
    for (const auto& s : v) str(s);
  };
  const std::vector<std::string> toks = {"<|endoftext|>", "a", "b", "ab", "\xC4\xA0", "1"};
  b.insert(b.end(), {'G', 'G', 'U', 'F'});
  u32(3);
  u64(2);  // tensors
  u64(9);  // metadata
  kv_str("general.architecture", "llama");
  kv_u32("general.alignment", 32);
  kv_u32("llama.block_count", 1);
  kv_u32("llama.embedding_length", 32);
  kv_str("tokenizer.ggml.model", "gpt2");
  kv_str("tokenizer.ggml.pre", "smollm");
  kv_strs("tokenizer.ggml.tokens", toks);
  kv_strs("tokenizer.ggml.merges", {"a b"});
  str("tokenizer.ggml.token_type");
  u32(9);
  u32(5);
  u64(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) {
    const int32_t t = i == 0 ? 3 : 1;
    put(&t, 4);
  }
  str("token_embd.weight");
  u32(2);
  u64(32);
  u64(2);
  u32(0);
  u64(0);
  str("blk.0.attn_q.weight");
  u32(1);
  u64(256);
  u32(12);
  u64(256);
  while (b.size() % 32) b.push_back(0);
  for (int i = 0; i < 64; ++i) {
    const float f = 0.5f * static_cast<float>(i);
    put(&f, 4);
  }
  const size_t q = b.size();
  for (int i = 0; i < 144; ++i) b.push_back(static_cast<uint8_t>((i * 37 + 11) & 255));
  b[q] = 0x00;
  b[q + 1] = 0x3C;  // d = 1.0 (f16)
  b[q + 2] = 0x00;
  b[q + 3] = 0x38;  // dmin = 0.5
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_seeds DIR [TOK_BIN]\n");
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    for (const char* sub : {"safetensors", "llama2c", "tokenizer", "gguf"}) fs::create_directories(dir / sub);
    auto out = [&](const char* sub, const std::string& name) { return (dir / sub / name).string(); };
    write_file_atomic(out("gguf", "seed_tiny"), tiny_gguf());

    Rng rng(1);
    write_safetensors(out("safetensors", "seed_mixed"),
                      {{"w", rand_normal({2, 3}, 0, 1, rng)},
                       {"d", Tensor::from({0.5, -1}, {2}, DType::F64)},
                       {"i", Tensor::from_i32({1, -2, 3}, {3})},
                       {"s", Tensor::from({7}, {})}},
                      {{"format", "pt"}, {"k", "v"}});
    write_safetensors(out("safetensors", "seed_empty"), {}, {});
    {
      const std::string header = R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[4,8]}})";
      std::vector<uint8_t> b(8);
      const uint64_t n = header.size();
      std::memcpy(b.data(), &n, 8);
      b.insert(b.end(), header.begin(), header.end());
      for (uint8_t v : {0x00, 0x3C, 0x01, 0x80, 0x80, 0x3F, 0x49, 0x40}) b.push_back(v);
      write_file_atomic(out("safetensors", "seed_half"), b);
    }
    write_hf_llama(out("safetensors", "seed_hf_llama"), tiny_checkpoint(true, 2));
    // Hostile headers (the reproducers of the robustness issue): 40 KB of nesting in the
    // header and in the "config" metadata, a tensor name twice, a hole in the data section.
    auto raw = [&](const std::string& name, const std::string& header, size_t data_bytes) {
      std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
      const uint64_t n = header.size();
      std::memcpy(b.data(), &n, 8);
      std::memcpy(b.data() + 8, header.data(), header.size());
      write_file_atomic(out("safetensors", name), b);
    };
    raw("seed_deep_nesting", "{\"a\":" + std::string(20000, '[') + std::string(20000, ']') + "}", 0);
    raw("seed_deep_config", "{\"__metadata__\":{\"config\":\"" + std::string(20000, '[') + "\"}}", 0);
    raw("seed_duplicate_name",
        R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
        8);
    raw("seed_hole", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);

    write_llama2c(out("llama2c", "seed_tied"), tiny_checkpoint(true, 3));
    write_llama2c(out("llama2c", "seed_untied"), tiny_checkpoint(false, 4));

    std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
    std::vector<float> scores = {0, 0, 0};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      pieces.push_back(buf);
      scores.push_back(0);
    }
    const char* extra[] = {" ", "a", "b", "ab", "ba", " a", "aba", "\xc3\xa9", "the", " the"};
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); ++i) {
      pieces.push_back(extra[i]);
      scores.push_back(-static_cast<float>(i % 4));
    }
    const BpeTokenizer bpe(pieces, scores, 6);
    write_file_atomic(out("tokenizer", "seed_bytes"), with_text("the abba caf\xc3\xa9 \xe4\xbd\xa0!", bpe.serialize()));
    const BpeTokenizer small({"<unk>", "<s>", "</s>", " ", "x", "xx"}, {0, 0, 0, 0, 0, -1}, 2);
    write_file_atomic(out("tokenizer", "seed_small"), with_text("xxx x", small.serialize()));
    if (argc > 2 && fs::exists(argv[2]))
      write_file_atomic(out("tokenizer", "seed_tok_bin"),
                        with_text("Once upon a time, Lily \xe2\x80\x99 went.", read_file_bytes(argv[2])));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
