// models/llama/generation.cpp — the run.c-style generation loop over the KV cache.
#include "models/llama/generation.h"

#include <chrono>
#include <vector>

#include "engine/tape.h"
#include "models/llama/sampling.h"

namespace cg::models {
namespace {

bool printable_piece(const std::string& p) {
  if (p.size() != 1) return true;
  const unsigned char c = static_cast<unsigned char>(p[0]);
  return (c >= 32 && c < 127) || (c >= 9 && c <= 13);
}

}  // namespace

GenerateStats generate(LlamaModel& model, const Tokenizer& tokenizer, const GenerateOptions& options,
                       const std::function<void(const std::string&)>& emit) {
  if (tokenizer.vocab_size() != model.config().vocab_size)
    throw FormatError("tokenizer vocab size " + std::to_string(tokenizer.vocab_size()) +
                      " does not match the model's " + std::to_string(model.config().vocab_size));
  const int64_t seq_len = model.config().seq_len, V = model.config().vocab_size;
  const int64_t steps = (options.steps <= 0 || options.steps > seq_len) ? seq_len : options.steps;
  const std::vector<int> prompt = tokenizer.encode(options.prompt, true, false);
  const int bos = tokenizer.bos_id();
  Sampler sampler(options.temperature, options.top_p, options.seed);

  NoGrad ng;
  auto cache = model.make_cache(1, steps);
  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  using Clock = std::chrono::steady_clock;
  Clock::time_point start;
  Tensor ids = Tensor::from_i32({prompt[0]}, {1, 1});  // host; forward moves it
  int token = prompt[0];
  for (int64_t pos = 0; pos < steps; ++pos) {
    ids.data<int32_t>()[0] = token;
    Tensor logits = model.forward(ids, &cache);  // [1,1,V]
    int next;
    if (pos + 1 < static_cast<int64_t>(prompt.size())) {
      next = prompt[static_cast<size_t>(pos + 1)];  // still in the prompt: forced
    } else {
      const Tensor host = logits.to(Device::CPU);
      next = sampler.sample(host.data<float>(), V);
    }
    st.positions = pos + 1;
    if (pos == 0) start = Clock::now();
    if (next == bos) break;
    const std::string piece = tokenizer.decode_piece(token, next);
    if (printable_piece(piece)) emit(piece);
    token = next;
  }
  st.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return st;
}

}  // namespace cg::models
