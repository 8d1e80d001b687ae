// models/text/tokenizer.h — text ↔ token ids. Tokenizer is the one interface the tools use
// for every kind (bytes, llama2.c tok*.bin, tokenizer.json and GGUF vocabularies: the latter
// two in tokenizer_json.h); BpeTokenizer reads llama2.c's tok*.bin and encodes/decodes
// exactly as llama2.c's run.c does; ByteTokenizer maps raw bytes to ids.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace cg::models {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  // Whether text encodes with BOS first by this tokenizer's own setting (llama2.c and bytes:
  // yes; tokenizer.json / GGUF: as the file says).
  virtual bool add_bos() const { return true; }
  // The chat template the tokenizer file carries (Jinja text), or "".
  virtual std::string chat_template() const { return ""; }
  // The id of a token given as its text (a special token such as "<|im_end|>"), or -1.
  virtual int token_id(const std::string& /*text*/) const { return -1; }
  // Token `id` as the vocabulary stores it (for display); defaults to its decoded bytes.
  virtual std::string piece(int id) const { return decode_piece(-1, id); }
  // Token ids of `text`, with BOS first / EOS last when asked.
  virtual std::vector<int> encode(const std::string& text, bool bos, bool eos) const = 0;
  // The bytes token `token` stands for when it follows `prev` (-1: no previous token).
  // An id outside [0, vocab_size) → FormatError.
  virtual std::string decode_piece(int prev, int token) const = 0;
  // Concatenated decode_piece(previous id, id) over `ids`, skipping BOS and EOS ids.
  std::string decode(const std::vector<int>& ids) const;
};

// llama2.c's BPE tokenizer. File (little-endian): int32 max_token_length, then per token
// {float32 score, int32 len, len bytes}. The file has no count: it is read to its end,
// and a count other than the expected vocab size is an error. Ids 0/1/2 are
// <unk>/BOS/EOS, and ids 3..258 are the byte-fallback pieces "<0x00>".."<0xFF>".
class BpeTokenizer : public Tokenizer {
 public:
  // Parses tok*.bin bytes; expected_vocab > 0 must equal the number of tokens (the
  // model's vocab size), expected_vocab <= 0 accepts any count >= 3. Truncation, a
  // negative or too long piece length, or trailing bytes → FormatError naming `what`.
  static BpeTokenizer parse(const uint8_t* data, size_t size, int expected_vocab, const std::string& what);
  static BpeTokenizer read(const std::string& path, int expected_vocab);
  // The tok*.bin bytes of this tokenizer (parse(serialize()) gives it back).
  std::vector<uint8_t> serialize() const;
  BpeTokenizer(std::vector<std::string> pieces, std::vector<float> scores, int max_token_length);

  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
  // As run.c's encode: [BOS], then for non-empty text the id of " " (dummy prefix),
  // then each UTF-8 character (≤ 4 bytes) as a whole piece or, when absent, one
  // byte-fallback id (byte + 3) per byte; then repeatedly the adjacent pair whose
  // concatenation is a piece with the highest score (> -1e10; leftmost on ties) is
  // merged; then [EOS]. A byte whose fallback id is not in the vocab → FormatError.
  // (run.c stops at a NUL byte; here NUL is encoded like any byte.)
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  // As run.c's decode: the piece, without its leading space when prev is BOS; a piece
  // "<0xHH>" gives the single raw byte HH.
  std::string decode_piece(int prev, int token) const override;

  std::string piece(int id) const override { return pieces_.at(static_cast<size_t>(id)); }
  int token_id(const std::string& text) const override { return lookup(text); }
  float score(int id) const { return scores_.at(static_cast<size_t>(id)); }
  int max_token_length() const { return max_token_length_; }
  // The id of an exact piece, or -1 (the lowest id when a piece appears twice).
  int lookup(const std::string& piece) const;

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  int max_token_length_ = 0;
  std::unordered_map<std::string, int> index_;
};

// Raw bytes: vocab 258 = ids 0..255 for the byte values, 256 = BOS, 257 = EOS.
// decode_piece gives the byte itself, and "" for BOS/EOS.
class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int kBos = 256;
  static constexpr int kEos = 257;
  static constexpr int kVocab = 258;
  int vocab_size() const override { return kVocab; }
  int bos_id() const override { return kBos; }
  int eos_id() const override { return kEos; }
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  std::string decode_piece(int prev, int token) const override;
};

// The special path that load_tokenizer maps to ByteTokenizer.
constexpr const char* kByteTokenizerPath = "byte";

// `path` == "byte" → ByteTokenizer; a folder, a .json or a .gguf → HfBpeTokenizer (its
// tokenizer.json or GGUF vocabulary); anything else → BpeTokenizer::read. A vocab size
// other than vocab_size_expected (when > 0, normally the model's) → FormatError.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, int vocab_size_expected);

// `path` when given, else the tokenizer the model carries (tokenizer_from_model); neither →
// FormatError asking for --tokenizer.
std::unique_ptr<Tokenizer> tokenizer_for(const std::string& path, const std::string& model_path,
                                         int vocab_size_expected);

}  // namespace cg::models
