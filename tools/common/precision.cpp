// tools/common/precision.cpp — the --precision flag.
#include "tools/common/precision.h"

#include <cstdio>

#include "engine/backend.h"

namespace cg::tools {

void PrecisionFlag::add(CLI::App& app) {
  app.add_option("--precision", value,
                 "GEMM precision: f32, or bf16 (inputs rounded to bfloat16, f32 accumulation; weights, optimizer "
                 "state, norms, softmax and loss stay f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
}

void PrecisionFlag::apply(bool cpu) const {
  const GemmPrecision p = value == "bf16" ? GemmPrecision::BF16 : GemmPrecision::F32;
  set_gemm_precision(p);
  if (p == GemmPrecision::BF16 && cpu && !cpu_bf16_gemm_native())
    std::fprintf(stderr, "--precision bf16: %s\n", cpu_bf16_gemm_path().c_str());
}

}  // namespace cg::tools
