// tools/common/precision.h — --precision f32|bf16, shared by train, finetune, evaluate and
// generate: the precision of every f32 GEMM (cg::set_gemm_precision, engine/backend.h).
// bf16: GEMM inputs rounded to bfloat16, f32 accumulation; weights, optimizer state, norms,
// softmax and loss stay f32 (finetune's --base-dtype bf16 stores the frozen base's matrices
// in bf16 instead; it needs bf16 here). Any other value is refused by the parser (one line,
// exit 2).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace cg::tools {

struct PrecisionFlag {
  std::string value = "f32";
  void add(CLI::App& app);
  // Sets the GEMM precision; for bf16 on the CPU without oneDNN's bf16 kernels, one note on
  // stderr (the math is the same, through OpenBLAS, and not faster).
  void apply(bool cpu) const;
};

}  // namespace cg::tools
