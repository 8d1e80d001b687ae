// models/llama/generation.cpp — the run.c-style generation loop over the KV cache.
#include "models/llama/generation.h"

#include <algorithm>
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

ContinueStats continue_tokens(LlamaModel& model, const Tokenizer& tokenizer, const std::vector<int>& prompt,
                              int64_t max_new, const std::vector<int>& stop, double temperature, double top_p,
                              uint64_t seed, const std::function<void(const std::string&)>& emit) {
  if (tokenizer.vocab_size() != model.config().vocab_size)
    throw FormatError("tokenizer vocab size " + std::to_string(tokenizer.vocab_size()) +
                      " does not match the model's " + std::to_string(model.config().vocab_size));
  const int64_t seq_len = model.config().seq_len, V = model.config().vocab_size;
  const int64_t P = static_cast<int64_t>(prompt.size());
  if (P < 1) throw FormatError("generate: the prompt encodes to no token");
  if (P >= seq_len)
    throw FormatError("generate: the prompt has " + std::to_string(P) + " tokens; the context is " +
                      std::to_string(seq_len));
  const int64_t room = seq_len - P;
  const int64_t n_new = max_new <= 0 || max_new > room ? room : max_new;
  Sampler sampler(temperature, top_p, seed);
  NoGrad ng;
  auto cache = model.make_cache(1, P + n_new);
  ContinueStats st;
  st.prompt_tokens = P;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Tensor logits = model.forward(Tensor::from_i32(std::vector<int32_t>(prompt.begin(), prompt.end()), {1, P}), &cache);
  Tensor last = logits.to(Device::CPU);
  const float* row = last.data<float>() + (P - 1) * V;
  int prev = prompt.back();
  const auto t1 = Clock::now();
  st.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  Tensor ids = Tensor::from_i32({0}, {1, 1});
  for (int64_t k = 0; k < n_new; ++k) {
    const int next = sampler.sample(row, V);
    if (std::find(stop.begin(), stop.end(), next) != stop.end()) {
      st.stopped = true;
      break;
    }
    st.new_tokens.push_back(next);
    emit(tokenizer.decode_piece(prev, next));
    prev = next;
    if (k + 1 == n_new) break;
    ids.data<int32_t>()[0] = next;
    last = model.forward(ids, &cache).to(Device::CPU);
    row = last.data<float>();
  }
  st.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return st;
}

std::vector<GreedyRow> greedy_batch(LlamaModel& model, const std::vector<std::vector<int>>& prompts, int64_t max_new,
                                    const std::vector<int>& stop) {
  const int64_t B = static_cast<int64_t>(prompts.size()), V = model.config().vocab_size;
  if (B < 1) return {};
  const int64_t P = static_cast<int64_t>(prompts[0].size());
  for (const auto& p : prompts)
    if (static_cast<int64_t>(p.size()) != P) throw ShapeError("greedy_batch: the prompts differ in length");
  if (P < 1 || max_new < 1 || P + max_new > model.config().seq_len)
    throw ShapeError("greedy_batch: " + std::to_string(P) + " prompt tokens + " + std::to_string(max_new) +
                     " new ones do not fit the context " + std::to_string(model.config().seq_len));
  NoGrad ng;
  auto cache = model.make_cache(B, P + max_new);
  std::vector<int32_t> in;
  in.reserve(static_cast<size_t>(B * P));
  for (const auto& p : prompts) in.insert(in.end(), p.begin(), p.end());
  Tensor logits = model.forward(Tensor::from_i32(in, {B, P}), &cache).to(Device::CPU);  // [B,P,V]
  int64_t row_stride = P * V, row_offset = (P - 1) * V;  // where row b's last logits start
  std::vector<GreedyRow> out(static_cast<size_t>(B));
  std::vector<int32_t> next(static_cast<size_t>(B), 0);
  for (int64_t k = 0; k < max_new; ++k) {
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      GreedyRow& r = out[static_cast<size_t>(b)];
      const int32_t t = argmax(logits.data<float>() + b * row_stride + row_offset, V);
      next[static_cast<size_t>(b)] = t;  // a finished row is fed along; its tokens are ignored
      if (r.stopped) continue;
      if (std::find(stop.begin(), stop.end(), t) != stop.end()) {
        r.stopped = true;
        continue;
      }
      r.new_tokens.push_back(t);
      all_done = false;
    }
    if (all_done || k + 1 == max_new) break;
    logits = model.forward(Tensor::from_i32(next, {B, 1}), &cache).to(Device::CPU);  // [B,1,V]
    row_stride = V, row_offset = 0;
  }
  return out;
}

}  // namespace cg::models
