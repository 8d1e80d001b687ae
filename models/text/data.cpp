// models/text/data.cpp — windows over a token stream.
#include "models/text/data.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/backend.h"
#include "engine/error.h"

namespace cg::models {

TokenDataset::TokenDataset(std::vector<int32_t> tokens, double val_frac, int64_t seq_len)
    : tokens_(std::move(tokens)), seq_(seq_len) {
  if (seq_len < 1) throw FormatError("dataset: sequence length must be positive");
  if (val_frac < 0 || val_frac >= 1) throw FormatError("dataset: validation fraction must be in [0, 1)");
  split_ = static_cast<size_t>(static_cast<double>(tokens_.size()) * (1.0 - val_frac));
  if (static_cast<int64_t>(split_) < seq_len + 1)
    throw FormatError("dataset: " + std::to_string(tokens_.size()) + " tokens are too few for training windows of " +
                      std::to_string(seq_len) + " (need more text or a shorter --seq)");
}

template <class Start>
Batch TokenDataset::make(int64_t B, Start start, Device device) const {
  Tensor ids = Tensor::empty({B, seq_}, DType::I32, Device::CPU);
  Tensor tg = Tensor::empty({B, seq_}, DType::I32, Device::CPU);
  int32_t* iv = ids.data<int32_t>();
  int32_t* tv = tg.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s0 = start(b);
    for (int64_t t = 0; t < seq_; ++t) {
      const size_t s = static_cast<size_t>(s0 + t);
      iv[b * seq_ + t] = tokens_[s];
      tv[b * seq_ + t] = tokens_[s + 1];
    }
  }
  return {ids.to(device), tg.to(device), Tensor()};
}

Batch TokenDataset::train_batch(uint64_t seed, int64_t first_sample, int64_t batch, Device device) const {
  const uint64_t range = static_cast<uint64_t>(split_) - static_cast<uint64_t>(seq_);  // starts in [0, range)
  return make(
      batch,
      [&](int64_t i) {
        return static_cast<int64_t>(dropout_hash(seed, static_cast<uint64_t>(first_sample + i)) % range);
      },
      device);
}

int64_t TokenDataset::val_windows() const {
  const int64_t n = val_tokens();
  return n > seq_ ? (n - 1) / seq_ : 0;
}

Batch TokenDataset::val_batch(int64_t first_window, int64_t batch, Device device) const {
  const int64_t n = std::min(batch, val_windows() - first_window);  // windows left from first_window
  if (n <= 0) throw FormatError("dataset: no validation windows");
  return make(
      n, [&](int64_t i) { return static_cast<int64_t>(split_) + (first_window + i) * seq_; }, device);
}

std::string TokenDataset::describe() const {
  return std::to_string(train_tokens()) + " training tokens, " + std::to_string(val_tokens()) +
         " validation tokens, windows of " + std::to_string(seq_);
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError("cannot open '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw FormatError("cannot read '" + path + "'");
  return ss.str();
}

}  // namespace cg::models
