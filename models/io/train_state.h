// models/io/train_state.h — training checkpoints: one safetensors file holding the trained
// parameters (the whole base store when pretraining, the adapter store when fine-tuning),
// the optimizer state, the step, the data position and the RNG state, so a run resumes
// bit-identically. Written durably and atomically: temp file, fsync, rename, fsync of the
// directory — a crash during a save leaves the previous checkpoint intact and loadable.
// Model and adapter files for inference live in models/io/checkpoint.h and models/io/adapter_file.h.
//
// File layout:
//   <param name>            each parameter of the store, under its own name
//   optim.m.<param name>    AdamW first moment, or SGD's momentum buffer
//   optim.v.<param name>    AdamW second moment
//   metadata (strings): format = "chaingrad.train_state", version = "1", group (the store's
//   group), optimizer (adamw|sgd), step (updates taken), data_position,
//   rng.s0 … rng.s3, rng.has_spare, rng.spare_bits (the xoshiro state and the cached normal
//   as its IEEE bits, all decimal u64), and the caller's own strings as user.<key>.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "models/io/file_io.h"
#include "nn/optim.h"
#include "nn/params.h"

namespace cg::models {

// What a checkpoint carries besides the parameters and the optimizer.
struct TrainState {
  int64_t data_position = 0;                // the caller's data cursor (e.g. next batch index)
  Rng::State rng{};                         // the run's RNG (data order, dropout seeds)
  std::map<std::string, std::string> meta;  // caller's strings (e.g. the run's flags)
};

// Saves `params` (finalized) with `opt`'s state (its step count included) and `state`.
void save_train_state(const std::string& path, const nn::ParamStore& params, nn::Optimizer& opt,
                      const TrainState& state);

// Restores `params` and `opt` (moments and step count) bit-exactly and returns the rest.
// The file must match: same group, the same parameter names and shapes, the same optimizer
// kind. Everything is checked before anything is changed; a mismatch or a damaged file
// gives a FormatError naming the path and what is wrong; so do a step or data position beyond
// 2^53 and a non-finite parameter or moment or a negative second moment.
TrainState load_train_state(const std::string& path, nn::ParamStore& params, nn::Optimizer& opt);

// Writes bytes to path durably and atomically (models/io/file_io.h's write_file_atomic; the
// test hook testing::crash_during_next_write lives there too).
void write_file_durable(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace cg::models
