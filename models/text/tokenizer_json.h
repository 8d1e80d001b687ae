// models/text/tokenizer_json.h — BPE with ranked merges as Hugging Face `tokenizers` runs it,
// configured from a tokenizer.json (plus tokenizer_config.json when beside it) or from a GGUF
// vocabulary (tokenizer.ggml.*, model "gpt2"). Two families:
//   byte-level (GPT-2, SmolLM): pre-tokenizers Digits and ByteLevel (the GPT-2 split pattern
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, written out
//     by hand on codepoints), bytes mapped to GPT-2's printable characters, then BPE per word;
//   SentencePiece-style (Llama-2): normalizer Prepend("▁") + Replace(" " → "▁") or the
//     Metaspace pre-tokenizer, BPE over the characters, byte fallback to <0xNN> pieces.
// Added tokens (special or not) are matched in the raw text first, longest match first, and
// never reach BPE. Text that is not valid UTF-8 goes through byte for byte (an invalid byte is
// a character that is neither letter, number nor space).
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/text/tokenizer.h"

namespace cg::models {

struct GgufFile;

struct AddedToken {
  std::string content;
  int id = -1;
  bool special = true;
  bool lstrip = false, rstrip = false;  // the match also takes whitespace to its left / right
};

class HfBpeTokenizer : public Tokenizer {
 public:
  enum class Kind { ByteLevel, SentencePiece };
  struct Options {
    Kind kind = Kind::ByteLevel;
    // byte-level
    bool individual_digits = false;  // a Digits(individual_digits=true) pre-tokenizer runs first
    bool split_regex = true;         // ByteLevel use_regex
    bool add_prefix_space = false;   // ByteLevel add_prefix_space
    // SentencePiece-style
    bool prepend_normalizer = false;        // Prepend("▁") normalizer (always prepends)
    bool metaspace = false;                 // Metaspace pre-tokenizer instead
    std::string prepend_scheme = "always";  // Metaspace: always, first or never
    bool metaspace_split = false;
    bool byte_fallback = false;
    bool fuse_unk = false;
    int unk_id = -1;
    // both
    bool ignore_merges = false;
    int bos = -1, eos = -1;
    bool add_bos = false;
    std::string chat_template;
  };

  // vocab[i] is token i as the model stores it (byte-level: GPT-2 characters; SentencePiece:
  // "▁" for space). merges in rank order. Bad ids, a merge whose parts or result are not in
  // the vocab → FormatError naming `what`.
  HfBpeTokenizer(std::vector<std::string> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                 std::vector<AddedToken> added, Options options, const std::string& what);

  // A parsed tokenizer.json ("model": BPE). Unsupported normalizers, pre-tokenizers or
  // decoders → FormatError (never a silently different tokenization).
  static HfBpeTokenizer from_json(const nlohmann::json& j, const std::string& what);
  // `path` is a tokenizer.json file or a folder holding one; a tokenizer_config.json beside it
  // gives bos/eos, add_bos_token and chat_template.
  static HfBpeTokenizer read(const std::string& path);
  // The vocabulary of a GGUF file (tokenizer.ggml.model "gpt2", pre "smollm"/"gpt-2"/"default").
  static HfBpeTokenizer from_gguf(const GgufFile& g);

  int vocab_size() const override { return static_cast<int>(vocab_.size()); }
  int bos_id() const override { return opt_.bos; }
  int eos_id() const override { return opt_.eos; }
  bool add_bos() const override { return opt_.add_bos && opt_.bos >= 0; }
  std::string chat_template() const override { return opt_.chat_template; }
  int token_id(const std::string& piece) const override;
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  // Byte-level: the piece's characters mapped back to bytes. SentencePiece: "▁" → " ",
  // <0xNN> → that byte, and the leading space dropped at the start (prev < 0 or BOS).
  // Added tokens give their content.
  std::string decode_piece(int prev, int token) const override;
  std::string piece(int id) const override;

 private:
  void encode_segment(const std::string& seg, bool first, std::vector<int>& out,
                      std::unordered_map<std::string, std::vector<int>>& cache) const;
  void bpe_word(const std::string& word, std::vector<int>& out) const;
  int token_id_raw(const std::string& piece) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int> index_;
  std::unordered_map<uint64_t, std::pair<int, int>> merges_;  // (left<<32 | right) → (rank, merged)
  std::vector<AddedToken> added_;
  std::vector<char> is_added_;
  std::vector<std::string> decoded_;  // decode_piece without the start rule
  Options opt_;
};

// The tokenizer a model file carries: a .gguf's vocabulary, an HF folder's tokenizer.json, or
// a tokenizer.json beside a .safetensors file; nullptr when there is none.
std::unique_ptr<Tokenizer> tokenizer_from_model(const std::string& model_path);

}  // namespace cg::models
