// tests/test_tokenizer.cpp — llama2.c BPE tokenizer (against the independent Python
// reference's golden ids for tok512.bin, a naive run.c-style merge loop, hand-built
// vocabularies), the byte tokenizer, load_tokenizer, and corrupted tokenizer files.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/rng.h"
#include "models/io/file_io.h"
#include "models/text/tokenizer.h"
#include "tests/skip.h"

using namespace cg;
using namespace cg::models;
namespace fs = std::filesystem;

namespace {

const std::string kTok512 = "../shared/data/stories260K/tok512.bin";
const std::string kGolden = "tests/golden/tokenizer_tok512.json";

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// A vocabulary: unk, BOS, EOS, the 256 byte pieces, then `extra` {piece, score}.
BpeTokenizer make_vocab(const std::vector<std::pair<std::string, float>>& extra) {
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  std::vector<float> scores = {0, 0, 0};
  const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    pieces.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    scores.push_back(0);
  }
  int max_len = 6;
  for (const auto& [p, s] : extra) {
    pieces.push_back(p);
    scores.push_back(s);
    max_len = std::max(max_len, static_cast<int>(p.size()));
  }
  return BpeTokenizer(pieces, scores, max_len);
}

// run.c's merge loop, literally: rescan every pair, highest score wins, leftmost on ties.
std::vector<int> naive_encode(const BpeTokenizer& t, const std::string& text, bool bos) {
  std::vector<int> ids;
  if (bos) ids.push_back(1);
  if (!text.empty()) ids.push_back(t.lookup(" ") >= 0 ? t.lookup(" ") : ' ' + 3);
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80 && j - i < 4) ++j;
    const std::string ch = text.substr(i, j - i);
    if (t.lookup(ch) >= 0) ids.push_back(t.lookup(ch));
    else
      for (char c : ch) ids.push_back(static_cast<unsigned char>(c) + 3);
    i = j;
  }
  while (true) {
    float best = -1e10f;
    int best_id = -1, best_at = -1;
    for (size_t k = 0; k + 1 < ids.size(); ++k) {
      const int id = t.lookup(t.piece(ids[k]) + t.piece(ids[k + 1]));
      if (id >= 0 && t.score(id) > best) {
        best = t.score(id);
        best_id = id;
        best_at = static_cast<int>(k);
      }
    }
    if (best_at < 0) break;
    ids[static_cast<size_t>(best_at)] = best_id;
    ids.erase(ids.begin() + best_at + 1);
  }
  return ids;
}

std::string random_text(Rng& rng, const std::string& alphabet, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(alphabet[rng.below(alphabet.size())]);
  return s;
}

std::string fails(const std::vector<uint8_t>& b, int expected) {
  try {
    BpeTokenizer::parse(b.data(), b.size(), expected, "tok.bin");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("BpeTokenizer: tok512.bin ids match the Python reference golden") {
  if (!cg::testing::have_file(kTok512)) return;
  const std::vector<uint8_t> g = read_file_bytes(kGolden);
  const nlohmann::json golden = nlohmann::json::parse(g.begin(), g.end());
  const BpeTokenizer tok = BpeTokenizer::read(kTok512, 512);
  CHECK(tok.vocab_size() == golden["vocab_size"].get<int>());
  CHECK(tok.max_token_length() == golden["max_token_length"].get<int>());
  REQUIRE(golden["cases"].size() >= 15);
  for (const auto& c : golden["cases"]) {
    const std::string text = from_hex(c["hex"]);
    CAPTURE(c["text"].get<std::string>());
    const std::vector<int> ids = tok.encode(text, c["bos"], c["eos"]);
    CHECK(ids == c["ids"].get<std::vector<int>>());
    CHECK(tok.decode(ids) == from_hex(c["decoded_hex"]));
  }
}

TEST_CASE("BpeTokenizer: tok512 round trips ASCII, handles BOS, byte fallback and <0xXX> pieces") {
  if (!cg::testing::have_file(kTok512)) return;
  const BpeTokenizer tok = BpeTokenizer::read(kTok512, 512);
  for (const std::string text : {"Once upon a time, there was a little girl named Lily.",
                                 "She liked to play outside.\nOne day, she saw a big, red ball!", "x", "   spaces   ",
                                 "Tom & Jerry's 42 cats: [ok] {no} ~tilde~"}) {
    CAPTURE(text);
    const std::vector<int> ids = tok.encode(text, true, false);
    CHECK(ids.front() == 1);
    if (text.size() > 20) CHECK(ids.size() < text.size());  // merges happened
    CHECK(tok.decode(ids) == text);                         // the dummy-prefix space is stripped after BOS
    const std::vector<int> no_bos = tok.encode(text, false, true);
    CHECK(no_bos.front() != 1);
    CHECK(no_bos.back() == 2);
    CHECK(tok.decode(no_bos) == " " + text);  // without BOS the dummy prefix stays, as in run.c
  }
  CHECK(tok.encode("", true, true) == std::vector<int>{1, 2});
  // BOS strips one leading space of the next piece only.
  const int the = tok.lookup(" the");
  REQUIRE(the >= 0);
  CHECK(tok.decode_piece(1, the) == "the");
  CHECK(tok.decode_piece(the, the) == " the");
  CHECK(tok.decode_piece(-1, the) == " the");
  // Byte fallback: '你' (E4 BD A0) is not a piece, so its three UTF-8 bytes become
  // <0xE4> <0xBD> <0xA0>; 'é' is a piece and stays whole.
  REQUIRE(tok.lookup("\xe4\xbd\xa0") == -1);
  const std::vector<int> e = tok.encode("\xe4\xbd\xa0", false, false);
  CHECK(e == std::vector<int>{tok.lookup(" "), 0xE4 + 3, 0xBD + 3, 0xA0 + 3});
  CHECK(tok.decode(e) == " \xe4\xbd\xa0");
  REQUIRE(tok.lookup("\xc3\xa9") >= 0);
  CHECK(tok.encode("\xc3\xa9", true, false) == std::vector<int>{1, tok.lookup(" "), tok.lookup("\xc3\xa9")});
  // <0xXX> pieces decode to the raw byte.
  CHECK(tok.piece(13) == "<0x0A>");
  CHECK(tok.decode_piece(0, 13) == "\n");
  CHECK(tok.decode_piece(1, 0xFF + 3) == "\xff");
  CHECK(tok.decode_piece(5, 0) == "<unk>");
  CHECK_THROWS_AS(tok.decode_piece(0, 512), FormatError);
  CHECK_THROWS_AS(tok.decode_piece(0, -1), FormatError);
  // The file round-trips through serialize().
  CHECK(tok.serialize() == read_file_bytes(kTok512));
}

TEST_CASE("BpeTokenizer: heap merge order equals run.c's rescan loop") {
  SUBCASE("ties go to the leftmost pair, higher scores first") {
    const BpeTokenizer t = make_vocab({{" ", 0}, {"a", 0}, {"b", 0}, {"ab", -1}, {"ba", -1}, {" ab", -5}});
    const int sp = t.lookup(" "), a = t.lookup("a"), ab = t.lookup("ab"), sab = t.lookup(" ab");
    // " aba": pairs "ab"(-1) and "ba"(-1) tie → the left one merges, then " ab" (-5).
    CHECK(t.encode("aba", false, false) == std::vector<int>{sab, a});
    CHECK(naive_encode(t, "aba", false) == std::vector<int>{sab, a});
    const BpeTokenizer t2 = make_vocab({{" ", 0}, {"a", 0}, {"b", 0}, {"ab", -1}, {"ba", 3}});
    CHECK(t2.encode("aba", true, false) == std::vector<int>{1, t2.lookup(" "), t2.lookup("a"), t2.lookup("ba")});
    (void)sp;
    (void)ab;
  }
  SUBCASE("merges need a score above -1e10, and the dummy prefix falls back to a byte") {
    const BpeTokenizer t = make_vocab({{"x", 0}, {"xx", -2e10f}});
    CHECK(t.lookup(" ") == -1);
    CHECK(t.encode("xx", false, false) == std::vector<int>{' ' + 3, t.lookup("x"), t.lookup("x")});
  }
  SUBCASE("random texts over a vocabulary with many equal scores") {
    const BpeTokenizer t = make_vocab({{" ", 0},
                                       {"a", 0},
                                       {"b", 0},
                                       {"c", 0},
                                       {"ab", -1},
                                       {"bc", -1},
                                       {"ca", -1},
                                       {"aa", -2},
                                       {"abc", -1},
                                       {" a", -3},
                                       {"bca", -2},
                                       {"aaa", -1},
                                       {"cc", -1},
                                       {"abca", -4},
                                       {"ccc", -1},
                                       {"\xc3\xa9", 0}});
    Rng rng(5);
    for (int i = 0; i < 300; ++i) {
      const std::string s = random_text(rng, "abc abc\xc3\xa9", 1 + rng.below(40));
      CAPTURE(s);
      CHECK(t.encode(s, i % 2 == 0, false) == naive_encode(t, s, i % 2 == 0));
    }
  }
  SUBCASE("random texts with tok512.bin") {
    if (!cg::testing::have_file(kTok512)) return;
    const BpeTokenizer t = BpeTokenizer::read(kTok512, 0);
    Rng rng(6);
    for (int i = 0; i < 100; ++i) {
      const std::string s = random_text(rng, "the cat sat on a mat. Lily and Tom! \n\xe2\x80\x99", 1 + rng.below(120));
      CAPTURE(s);
      CHECK(t.encode(s, true, false) == naive_encode(t, s, true));
    }
  }
}

TEST_CASE("BpeTokenizer: byte fallback outside a small vocab is a FormatError") {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", " ", "a"};
  const BpeTokenizer t(pieces, std::vector<float>(5, 0.f), 5);
  CHECK(t.encode("aa", true, true) == std::vector<int>{1, 3, 4, 4, 2});
  CHECK_THROWS_AS(t.encode("b", false, false), FormatError);
}

TEST_CASE("BpeTokenizer: corrupted tokenizer files are FormatErrors") {
  const BpeTokenizer t = make_vocab({{" ", 0}, {"ab", -1}});
  const std::vector<uint8_t> good = t.serialize();
  REQUIRE(fails(good, 261).empty());
  REQUIRE(fails(good, 0).empty());
  auto has = [](const std::string& msg, const char* needle) {
    const std::string info = std::string("wanted '") + needle + "' in: '" + msg + "'";
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, info);
  };
  has(fails({}, 0), "too short");
  has(fails(std::vector<uint8_t>(good.begin(), good.end() - 1), 0), "truncated piece");
  has(fails(std::vector<uint8_t>(good.begin(), good.end() - 3 - 4), 0), "truncated entry");
  has(fails(good, 512), "261 tokens but the model's vocab size is 512");
  has(fails(good, 260), "261 tokens");
  std::vector<uint8_t> b = good;
  int32_t v = -5;  // max_token_length
  std::memcpy(b.data(), &v, 4);
  has(fails(b, 0), "max_token_length");
  b = good;
  v = -1;  // length of token 0
  std::memcpy(b.data() + 8, &v, 4);
  has(fails(b, 0), "piece length -1");
  v = 1 << 30;
  std::memcpy(b.data() + 8, &v, 4);
  has(fails(b, 0), "piece length 1073741824");
  v = 7;  // longer than max_token_length (6)
  std::memcpy(b.data() + 8, &v, 4);
  has(fails(b, 0), "max_token_length=6");
  has(fails(std::vector<uint8_t>(good.begin(), good.begin() + 4 + 8 + 5 + 8 + 5), 0), "needs at least 3");
  CHECK_THROWS_AS(load_tokenizer("/nonexistent/tok.bin", 512), FormatError);
}

TEST_CASE("ByteTokenizer and load_tokenizer") {
  ByteTokenizer bt;
  const std::string text("a\0\xff\n\xc3\xa9z", 7);
  const std::vector<int> ids = bt.encode(text, true, true);
  CHECK(ids.size() == 9);
  CHECK(ids.front() == 256);
  CHECK(ids.back() == 257);
  CHECK(ids[2] == 0);
  CHECK(ids[3] == 255);
  CHECK(bt.decode(ids) == text);
  CHECK(bt.decode_piece(-1, 256).empty());
  CHECK_THROWS_AS(bt.decode_piece(0, 258), FormatError);
  auto byte = load_tokenizer("byte", 258);
  CHECK(byte->vocab_size() == 258);
  CHECK(load_tokenizer("byte", 0)->bos_id() == 256);
  CHECK_THROWS_AS(load_tokenizer("byte", 512), FormatError);
  if (!cg::testing::have_file(kTok512)) return;
  auto tok = load_tokenizer(kTok512, 512);
  CHECK(tok->vocab_size() == 512);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  CHECK_THROWS_AS(load_tokenizer(kTok512, 32000), FormatError);
  CHECK_THROWS_AS(load_tokenizer(kTok512, 511), FormatError);
}
