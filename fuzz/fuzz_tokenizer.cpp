// fuzz/fuzz_tokenizer.cpp — libFuzzer harness for the tokenizers. Input layout: byte 0 =
// text length n, then n bytes of text, then the bytes of a tok*.bin file. The file must
// parse or throw cg::Error; a parsed tokenizer must serialize back to the same bytes,
// encode the text to in-range ids (or throw cg::Error for a missing byte-fallback id)
// and decode them. The byte tokenizer must round-trip the text exactly.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "engine/error.h"
#include "models/text/tokenizer.h"

using namespace cg;
using namespace cg::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n = std::min<size_t>(data[0], size - 1);
  const std::string text(reinterpret_cast<const char*>(data + 1), n);
  const uint8_t* tok = data + 1 + n;
  const size_t tok_size = size - 1 - n;

  ByteTokenizer bt;
  if (bt.decode(bt.encode(text, true, true)) != text) std::abort();

  try {
    const BpeTokenizer t = BpeTokenizer::parse(tok, tok_size, 0, "fuzz");
    if (t.serialize() != std::vector<uint8_t>(tok, tok + tok_size)) std::abort();
    for (bool bos : {false, true}) {
      std::vector<int> ids;
      try {
        ids = t.encode(text, bos, !bos);
      } catch (const cg::FormatError&) {
        continue;  // a byte with no fallback id in this vocab
      }
      for (int id : ids)
        if (id < 0 || id >= t.vocab_size()) std::abort();
      (void)t.decode(ids);
    }
  } catch (const cg::Error&) {
    return 0;
  }
  return 0;
}
