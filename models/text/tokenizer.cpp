// models/text/tokenizer.cpp — llama2.c BPE tokenizer (tok*.bin) and the byte tokenizer.
#include "models/text/tokenizer.h"

#include <cstring>
#include <filesystem>
#include <queue>

#include "engine/error.h"
#include "models/io/file_io.h"
#include "models/text/tokenizer_json.h"

namespace cg::models {

namespace {

constexpr int kMaxPieceLength = 1 << 16;
constexpr uint64_t kMaxTokenizerFile = uint64_t{1} << 28;  // far above any real vocab (Llama 3's is ~2 MB)
constexpr float kMergeFloor = -1e10f;                      // run.c's initial best_score: merges must beat it

std::string hex_byte(unsigned v) {
  const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[(v >> 4) & 15] + digits[v & 15];
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == bos_id() || ids[i] == eos_id()) continue;
    out += decode_piece(i > 0 ? ids[i - 1] : -1, ids[i]);
  }
  return out;
}

// ---- BpeTokenizer -----------------------------------------------------------------------

BpeTokenizer::BpeTokenizer(std::vector<std::string> pieces, std::vector<float> scores, int max_token_length)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), max_token_length_(max_token_length) {
  if (pieces_.size() != scores_.size() || pieces_.size() < 3)
    throw FormatError("BpeTokenizer: needs at least 3 pieces (unk, BOS, EOS) with one score each, got " +
                      std::to_string(pieces_.size()) + " pieces and " + std::to_string(scores_.size()) + " scores");
  index_.reserve(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); ++i) index_.emplace(pieces_[i], static_cast<int>(i));  // first id wins
}

BpeTokenizer BpeTokenizer::parse(const uint8_t* data, size_t size, int expected_vocab, const std::string& what) {
  auto read_i32 = [&](size_t at) {
    int32_t v;
    std::memcpy(&v, data + at, 4);
    return v;
  };
  if (size < 4) throw FormatError(what + ": " + std::to_string(size) + " bytes is too short for a tokenizer file");
  const int32_t max_len = read_i32(0);
  if (max_len < 1 || max_len > kMaxPieceLength)
    throw FormatError(what + ": not a llama2.c tokenizer (its first 4 bytes, max_token_length " +
                      std::to_string(max_len) + ", are outside [1, " + std::to_string(kMaxPieceLength) + "])");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  size_t pos = 4;
  while (pos < size) {
    const std::string tok = what + ": token " + std::to_string(pieces.size());
    if (size - pos < 8)
      throw FormatError(tok + ": truncated entry (" + std::to_string(size - pos) +
                        " bytes left, need 8 for score+length)");
    float score;
    std::memcpy(&score, data + pos, 4);
    const int32_t len = read_i32(pos + 4);
    pos += 8;
    if (len < 0 || len > max_len)
      throw FormatError(tok + ": piece length " + std::to_string(len) +
                        " is outside [0, max_token_length=" + std::to_string(max_len) + "]");
    if (size - pos < static_cast<size_t>(len))
      throw FormatError(tok + ": truncated piece (" + std::to_string(len) + " bytes claimed, " +
                        std::to_string(size - pos) + " left)");
    pieces.emplace_back(reinterpret_cast<const char*>(data + pos), static_cast<size_t>(len));
    scores.push_back(score);
    pos += static_cast<size_t>(len);
  }
  if (expected_vocab > 0 && pieces.size() != static_cast<size_t>(expected_vocab))
    throw FormatError(what + ": tokenizer has " + std::to_string(pieces.size()) +
                      " tokens but the model's vocab size is " + std::to_string(expected_vocab));
  if (pieces.size() < 3)
    throw FormatError(what + ": tokenizer has " + std::to_string(pieces.size()) +
                      " tokens; needs at least 3 (unk, BOS, EOS)");
  return BpeTokenizer(std::move(pieces), std::move(scores), max_len);
}

BpeTokenizer BpeTokenizer::read(const std::string& path, int expected_vocab) {
  FileReader f(path);
  if (f.size() > kMaxTokenizerFile)
    throw FormatError(path + ": " + std::to_string(f.size()) + " bytes is too large for a tokenizer file (limit " +
                      std::to_string(kMaxTokenizerFile) + ")");
  std::vector<uint8_t> bytes(static_cast<size_t>(f.size()));
  f.read_at(0, bytes.data(), bytes.size());
  return parse(bytes.data(), bytes.size(), expected_vocab, path);
}

std::vector<uint8_t> BpeTokenizer::serialize() const {
  std::vector<uint8_t> out;
  auto put = [&](const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  };
  const int32_t max_len = max_token_length_;
  put(&max_len, 4);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const int32_t len = static_cast<int32_t>(pieces_[i].size());
    put(&scores_[i], 4);
    put(&len, 4);
    put(pieces_[i].data(), pieces_[i].size());
  }
  return out;
}

int BpeTokenizer::lookup(const std::string& piece) const {
  auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

std::vector<int> BpeTokenizer::encode(const std::string& text, bool bos, bool eos) const {
  const int vocab = vocab_size();
  auto byte_fallback = [&](unsigned char b) {
    const int id = static_cast<int>(b) + 3;
    if (id >= vocab)
      throw FormatError("BpeTokenizer::encode: byte " + hex_byte(b) +
                        " has no piece and no byte-fallback token (vocab " + std::to_string(vocab) + ")");
    return id;
  };
  std::vector<int> tok;
  tok.reserve(text.size() + 3);
  if (bos) tok.push_back(bos_id());
  if (!text.empty()) {
    const int space = lookup(" ");
    tok.push_back(space >= 0 ? space : byte_fallback(' '));
  }
  // UTF-8 characters (a lead byte plus up to 3 continuation bytes) as whole pieces.
  std::string ch;
  for (size_t k = 0; k < text.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(text[k]);
    if ((c & 0xC0) != 0x80) ch.clear();
    ch.push_back(static_cast<char>(c));
    const unsigned char next = k + 1 < text.size() ? static_cast<unsigned char>(text[k + 1]) : 0;
    if ((next & 0xC0) == 0x80 && ch.size() < 4) continue;
    const int id = lookup(ch);
    if (id >= 0) {
      tok.push_back(id);
    } else {
      for (char b : ch) tok.push_back(byte_fallback(static_cast<unsigned char>(b)));
    }
    ch.clear();
  }

  // Merges. run.c rescans every pair per merge (quadratic); a heap of candidate pairs
  // with lazy invalidation picks the same pair: highest score, then leftmost. Nodes keep
  // their original index, and merging keeps the left node, so index order is list order.
  const int n = static_cast<int>(tok.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    float score;
    int left, left_tok, right_tok, merged;
  };
  auto worse = [](const Cand& a, const Cand& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  std::string buf;
  auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int right = next[left];
    buf.assign(pieces_[static_cast<size_t>(tok[left])]);
    buf += pieces_[static_cast<size_t>(tok[right])];
    const int id = lookup(buf);
    if (id >= 0 && scores_[static_cast<size_t>(id)] > kMergeFloor)
      heap.push({scores_[static_cast<size_t>(id)], left, tok[left], tok[right], id});
  };
  std::vector<char> alive(n, 1);
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int right = next[c.left];
    if (!alive[c.left] || right < 0 || tok[c.left] != c.left_tok || tok[right] != c.right_tok) continue;
    tok[c.left] = c.merged;
    alive[right] = 0;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::vector<int> out;
  out.reserve(static_cast<size_t>(n) + 1);
  for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(tok[i]);
  if (eos) out.push_back(eos_id());
  return out;
}

std::string BpeTokenizer::decode_piece(int prev, int token) const {
  if (token < 0 || token >= vocab_size())
    throw FormatError("BpeTokenizer::decode: token id " + std::to_string(token) + " is outside [0, " +
                      std::to_string(vocab_size()) + ")");
  const std::string& p = pieces_[static_cast<size_t>(token)];
  const size_t start = prev == bos_id() && !p.empty() && p[0] == ' ' ? 1 : 0;
  // "<0xHH>" pieces stand for one raw byte (run.c: sscanf(piece, "<0x%02hhX>")).
  if (p.compare(start, 3, "<0x") == 0 && p.size() >= start + 4) {
    const int hi = hex_value(p[start + 3]);
    if (hi >= 0) {
      const int lo = p.size() > start + 4 ? hex_value(p[start + 4]) : -1;
      const int v = lo >= 0 ? hi * 16 + lo : hi;
      return std::string(1, static_cast<char>(v));
    }
  }
  return p.substr(start);
}

// ---- ByteTokenizer ----------------------------------------------------------------------

std::vector<int> ByteTokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int> out;
  out.reserve(text.size() + 2);
  if (bos) out.push_back(kBos);
  for (char c : text) out.push_back(static_cast<unsigned char>(c));
  if (eos) out.push_back(kEos);
  return out;
}

std::string ByteTokenizer::decode_piece(int /*prev*/, int token) const {
  if (token < 0 || token >= kVocab)
    throw FormatError("ByteTokenizer::decode: token id " + std::to_string(token) + " is outside [0, 258)");
  if (token >= 256) return "";
  return std::string(1, static_cast<char>(token));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, int vocab_size_expected) {
  if (path == kByteTokenizerPath) {
    if (vocab_size_expected > 0 && vocab_size_expected != ByteTokenizer::kVocab)
      throw FormatError("byte tokenizer has vocab 258 but the model's vocab size is " +
                        std::to_string(vocab_size_expected));
    return std::make_unique<ByteTokenizer>();
  }
  std::error_code ec;
  const std::filesystem::path p(path);
  if (std::filesystem::is_directory(p, ec) || p.extension() == ".json" || p.extension() == ".gguf") {
    std::unique_ptr<Tokenizer> t = p.extension() == ".gguf"
                                       ? tokenizer_from_model(path)
                                       : std::make_unique<HfBpeTokenizer>(HfBpeTokenizer::read(path));
    if (vocab_size_expected > 0 && t->vocab_size() != vocab_size_expected)
      throw FormatError(path + ": tokenizer has " + std::to_string(t->vocab_size()) +
                        " tokens but the model's vocab size is " + std::to_string(vocab_size_expected));
    return t;
  }
  return std::make_unique<BpeTokenizer>(BpeTokenizer::read(path, vocab_size_expected));
}

std::unique_ptr<Tokenizer> tokenizer_for(const std::string& path, const std::string& model_path,
                                         int vocab_size_expected) {
  if (!path.empty()) return load_tokenizer(path, vocab_size_expected);
  std::unique_ptr<Tokenizer> t = tokenizer_from_model(model_path);
  if (!t) throw FormatError(model_path + " carries no tokenizer; give --tokenizer");
  if (vocab_size_expected > 0 && t->vocab_size() != vocab_size_expected)
    throw FormatError(model_path + ": its tokenizer has " + std::to_string(t->vocab_size()) +
                      " tokens but the model's vocab size is " + std::to_string(vocab_size_expected));
  return t;
}

}  // namespace cg::models
