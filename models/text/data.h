// models/text/data.h — token datasets for training: a token stream split into train and
// validation parts, and deterministic, resumable batches of windows.
// Batch b of a run reads windows whose starts are a hash of (seed, sample index), so the
// data position is just the number of samples consumed: a resumed run continues exactly,
// and a data-parallel rank can take its slice of the same global batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cg::models {

struct Batch {
  Tensor ids;      // i32 [B, T]
  Tensor targets;  // i32 [B, T], the next token of each position
};

class TokenDataset {
 public:
  // Splits `tokens` into train (first 1 − val_frac) and validation (the rest).
  TokenDataset(std::vector<int32_t> tokens, double val_frac, int64_t seq_len);
  int64_t seq_len() const { return seq_; }
  int64_t train_tokens() const { return static_cast<int64_t>(split_); }
  int64_t val_tokens() const { return static_cast<int64_t>(tokens_.size() - split_); }
  // Training batch of `batch` windows for global sample indices [first, first + batch).
  Batch train_batch(uint64_t seed, int64_t first_sample, int64_t batch, Device device = Device::CPU) const;
  // The validation part cut into consecutive windows; window i of at most `max_windows`.
  int64_t val_windows() const;
  Batch val_batch(int64_t first_window, int64_t batch, Device device = Device::CPU) const;

 private:
  // The `batch` windows starting at start(0), …, start(batch − 1), written straight into
  // host tensors (no vectors: drawing a batch takes nothing from the heap after warm-up).
  template <class Start>
  Batch make(int64_t batch, Start start, Device device) const;
  std::vector<int32_t> tokens_;
  size_t split_;
  int64_t seq_;
};

// Reads a whole file (FormatError if missing or unreadable).
std::string read_text_file(const std::string& path);

}  // namespace cg::models
