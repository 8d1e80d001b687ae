// fuzz/fuzz_gguf.cpp — libFuzzer harness for the GGUF reader. Any input must either parse or
// throw cg::Error; a parsed file's tensors must all dequantize (their sizes were checked
// against the file), and the Llama mapping and the GGUF tokenizer must succeed or throw
// cg::Error.
#include <cstdint>
#include <cstdlib>

#include "engine/error.h"
#include "models/io/gguf.h"
#include "models/text/tokenizer_json.h"

using namespace cg;
using namespace cg::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GgufFile g;
  try {
    g = parse_gguf(std::vector<uint8_t>(data, data + size), "fuzz");
  } catch (const cg::Error&) {
    return 0;
  }
  for (const GgufTensorInfo& t : g.tensors) {
    if (t.offset + t.nbytes > g.bytes.size() - g.data_offset) std::abort();
    (void)gguf_tensor_f32(g, t);
  }
  try {
    (void)gguf_to_checkpoint(g);
  } catch (const cg::Error&) {
  }
  try {
    const HfBpeTokenizer tok = HfBpeTokenizer::from_gguf(g);
    (void)tok.encode("Hello, world! 123 <|im_end|>", false, false);
  } catch (const cg::Error&) {
  }
  return 0;
}
