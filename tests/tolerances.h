// tests/tolerances.h — the one table of parity tolerances: chaingrad (float32) against the
// PyTorch float64 goldens of tests/reference/. Each is about 10× the largest error observed
// over every golden file, both adapter configs and the OpenBLAS kernels Zen, Haswell,
// Sandybridge and Prescott (AMD EPYC; OPENBLAS_CORETYPE=...), so a CPU with other rounding
// passes and a plausible bug (a wrong eps, θ, scale or mask; ignored rows counted) fails.
// rel: max|ours − ref| / max|ref|; abs: max|ours − ref|. Observed maxima in the comments.
#pragma once

namespace cg::testing::tol {

// tests/test_adapters_parity.cpp (adapters_*.safetensors, adapters_alt_*.safetensors)
constexpr double kLogitsRel = 3e-6;       // 2.9e-7
constexpr double kLossAbs = 5e-6;         // 4.8e-7 (loss ≈ 4.3: one float32 ulp)
constexpr double kGradRel = 2e-5;         // 1.7e-6
constexpr double kGradProductRel = 2e-5;  // 1.3e-6
constexpr double kAdamwLossesAbs = 5e-5;  // 4.5e-6 (AdamW's first steps are ±lr, whatever |g|)
constexpr double kSgdLossesAbs = 5e-6;    // 4.8e-7
constexpr double kAdamwFinalRel = 5e-5;   // 4.5e-6
constexpr double kSgdFinalRel = 5e-6;     // 4.1e-7

// tests/test_sgd_reference.cpp: finetune's plain SGD vs llama_ref.py sgd, 10 steps, relative
constexpr double kToolSgdLossesRel = 1e-5;  // 6.5e-7 (Zen, Haswell kernel; 1 and 2 threads)

// tests/test_gradflow_dump.cpp (dumpgrads_expected.safetensors), relative
constexpr double kDumpLossRel = 1e-6;  // 9.1e-8
constexpr double kDumpGradRel = 2e-5;  // 2.1e-6

// tests/test_linalg.cpp, tests/test_gradflow.cpp: LAPACK in float64 on small matrices, relative
constexpr double kLinalgRel = 1e-12;

// tests/test_model.cpp: KV-cache decoding vs the full forward, float32, relative to the
// largest |logit| (one-row products are GEMVs, many-row ones GEMMs: they sum in different
// orders): 7.8e-6 (random model with dense adapters, Zen and Haswell kernels), 5.2e-6
// (Prescott), 2.6e-6 (Sandybridge); 5.6e-6 when one-row products were GEMMs
constexpr double kDecodeRel = 3e-5;

// tests/test_model.cpp: stories260K logits vs llama_ref.py (golden printed as text), abs
constexpr double kStoriesLogitsAbs = 1e-4;  // 1.5e-5 (|logit| up to ≈ 15)

// tests/test_peft_folder.cpp: a PEFT-layout adapter folder run by our float32 adapted Linear
// vs the authors' forks' formula evaluated in float64 from the same tensors, relative to max|y|
constexpr double kPeftForwardRel = 3e-6;  // 1.7e-7
// tests/test_peft_folder.cpp: ΔW of the plain LoRA exported from a MoSLoRA / LinChain chain
// (A' = A·W₁⋯Wₙ rounded to float32) vs the chain's ΔW, relative to max|ΔW|
constexpr double kExportDeltaRel = 3e-6;  // 2.3e-7

}  // namespace cg::testing::tol
