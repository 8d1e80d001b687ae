// models/text/data.h — datasets for training: what the Trainer reads (Dataset: numbered
// training samples, validation batches), and TokenDataset, a token stream split into train
// and validation parts with deterministic, resumable batches of windows.
// Batch b of a run reads samples by their global index, so the data position is just the
// number of samples consumed: a resumed run continues exactly, and a data-parallel rank
// can take its slice of the same global batch. Instruction records (padded or packed rows)
// are the other Dataset, in models/text/instruct_data.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace cg::models {

struct Batch {
  Tensor ids;       // i32 [B, T]
  Tensor targets;   // i32 [B, T], the next token of each position; −1: not scored (padding, a masked prompt)
  Tensor segments;  // i32 [B, T], packed rows only: which sample of the row each position belongs to
};

// What the Trainer reads. Sample indices grow without end (epochs are the dataset's affair).
class Dataset {
 public:
  virtual ~Dataset() = default;
  // The most positions of a row (batches may be shorter: padded to their longest row).
  virtual int64_t seq_len() const = 0;
  // Training batch of `batch` rows for global sample indices [first, first + batch).
  virtual Batch train_batch(uint64_t seed, int64_t first_sample, int64_t batch, Device device = Device::CPU) const = 0;
  // Validation rows, in a fixed order; rows [first, first + batch) clipped at the end.
  virtual int64_t val_windows() const = 0;
  virtual Batch val_batch(int64_t first_window, int64_t batch, Device device = Device::CPU) const = 0;
  // What it holds, for a log line ("N training tokens, M validation tokens, windows of L").
  virtual std::string describe() const = 0;
};

class TokenDataset : public Dataset {
 public:
  // Splits `tokens` into train (first 1 − val_frac) and validation (the rest).
  TokenDataset(std::vector<int32_t> tokens, double val_frac, int64_t seq_len);
  int64_t seq_len() const override { return seq_; }
  int64_t train_tokens() const { return static_cast<int64_t>(split_); }
  int64_t val_tokens() const { return static_cast<int64_t>(tokens_.size() - split_); }
  // Windows whose starts are a hash of (seed, sample index).
  Batch train_batch(uint64_t seed, int64_t first_sample, int64_t batch, Device device = Device::CPU) const override;
  // The validation part cut into consecutive windows.
  int64_t val_windows() const override;
  Batch val_batch(int64_t first_window, int64_t batch, Device device = Device::CPU) const override;
  std::string describe() const override;

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
