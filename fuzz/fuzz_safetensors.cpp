// fuzz/fuzz_safetensors.cpp — libFuzzer harness for the safetensors reader. Any input
// must either parse or throw cg::Error; a parsed file must serialize and parse back to
// the same names, metadata and tensor bits.
#include <cstdint>
#include <cstdlib>

#include "engine/error.h"
#include "models/io/checkpoint.h"
#include "models/io/safetensors.h"

using namespace cg;
using namespace cg::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafeTensors st;
  try {
    st = parse_safetensors(data, size, "fuzz");
  } catch (const cg::Error&) {
    return 0;
  }
  if (st.names.size() != st.tensors.size()) std::abort();
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const std::string& n : st.names) ts.emplace_back(n, st.tensors.at(n));
  const std::vector<uint8_t> again = serialize_safetensors(ts, st.metadata);  // must not throw
  const SafeTensors back = parse_safetensors(again.data(), again.size(), "fuzz round trip");
  if (back.names != st.names || back.metadata != st.metadata) std::abort();
  for (const std::string& n : st.names)
    if (!bitwise_equal(back.tensors.at(n), st.tensors.at(n))) std::abort();
  return 0;
}
