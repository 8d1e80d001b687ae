// fuzz/fuzz_llama2c.cpp — libFuzzer harness for the llama2.c .bin reader. Any input must
// either parse or throw cg::Error; a parsed checkpoint must pass check_checkpoint and
// write/read back to the same tensor bits.
#include <cstdint>
#include <cstdlib>

#include "engine/error.h"
#include "models/io/llama2c.h"

using namespace cg;
using namespace cg::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Checkpoint ck;
  try {
    ck = parse_llama2c(data, size, "fuzz");
  } catch (const cg::Error&) {
    return 0;
  }
  check_checkpoint(ck, "fuzz");  // must not throw
  const std::vector<uint8_t> again = serialize_llama2c(ck);
  if (again.size() != size) std::abort();
  const Checkpoint back = parse_llama2c(again.data(), again.size(), "fuzz round trip");
  if (!(back.config == ck.config) || back.tensors.size() != ck.tensors.size()) std::abort();
  for (size_t i = 0; i < ck.tensors.size(); ++i)
    if (back.tensors[i].first != ck.tensors[i].first || !bitwise_equal(back.tensors[i].second, ck.tensors[i].second))
      std::abort();
  return 0;
}
