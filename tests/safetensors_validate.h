// tests/safetensors_validate.h — an independent check of the safetensors files chaingrad
// writes, from the format's rules alone (it shares no code with models/io/safetensors.cpp):
// u64 LE header size N, then N bytes of a JSON object padded with spaces, then the data; each
// entry {dtype, shape, data_offsets} with a dtype of the format, a shape of non-negative ints
// and end − begin = numel · dtype size; the entries tile [0, last end) without a hole or an
// overlap, and the file is exactly 8 + N + last end bytes; "__metadata__" maps strings to
// strings; names are non-empty. Used on files written by serialize_safetensors, the train /
// finetune / adapter writers and the train-state checkpoints.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cg::testing {

// "" when `bytes` is a valid safetensors file, else the first problem found.
std::string safetensors_problem(const std::vector<uint8_t>& bytes);
// The same for a file on disk.
std::string safetensors_file_problem(const std::string& path);
// Validates (CHECKs) every safetensors file under `dir`, recursively (a file is taken to be
// one when its name ends in .safetensors or its bytes start like one); returns how many.
int check_safetensors_under(const std::string& dir);

}  // namespace cg::testing
