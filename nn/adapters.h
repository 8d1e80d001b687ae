// nn/adapters.h — the low-rank adapters (LoRA, MoSLoRA, LinChain) as one class, ChainAdapter,
// their configuration and CLI-string parsing, and attach_adapters(), which puts adapters on
// a model's Linear modules with all adapter parameters in one trainable ParamStore.
// The PEFT file format lives in models/io/adapter_file.h, not here.
//
// Convention (the paper's, y = x·W with W d_in×d_out), used everywhere in the code:
//   Δy[..., out] = s · x[..., in] · A[in, r] · W₁[r, r] ⋯ Wₙ[r, r] · B[out, r]ᵀ,  s = alpha / r
//   LoRA: n = 0; MoSLoRA: n = 1 (the mixer); LinChain: n = chain ≥ 1.
// The adapted projection y = x·W₀ᵀ + Δy runs as one ops::adapted_linear (ChainMatmul's
// product tree, accumulated into the base GEMM's output) with a ChainProbe whose span is
// W₁⋯Wₙ, so ∂L/∂P (P = W₁⋯Wₙ) and each ∂L/∂Wᵢ can be read after backward.
// In the base weight's [out, in] layout the update is ΔW = s · B · Wₙᵀ ⋯ W₁ᵀ · Aᵀ.
//
// Parameter names in the adapter store are PEFT-style, but hold the tensors in the layout
// above (A is [in, r], not PEFT's [r, in]; mixers are Wⱼ, not PEFT's Wⱼᵀ):
//   "<module>.lora_A.weight" A[in, r], "<module>.lora_B.weight" B[out, r],
//   MoSLoRA "<module>.lora_AB.weight" W₁[r, r], LinChain "<module>.lora_mixer.{j}.weight"
//   W_{j+1}[r, r] for j = 0..n−1 (0-based, applied j-th after A), and with chain biases
//   "<module>.lora_mixer.{j}.bias" b_{j+1}[r] (the same vector in both conventions).
// With chain biases the update is affine: Δy = s · (x·A·P + β)·Bᵀ, P = W₁⋯Wₙ,
// β = Σⱼ bⱼ·W_{j+1}⋯Wₙ, i.e. ΔW as above plus an output bias s·B·β.
// LoRA with chain biases (n = 0, the control "a learned bias in B's span") has one bias b[r] on
// A's output, "<module>.lora_A.bias": Δy = s · (x·A + b)·Bᵀ, i.e. β = b — LinChain's formula
// with no factor after the bias.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/rng.h"
#include "nn/linear.h"
#include "nn/params.h"
#include "ops/chain_matmul.h"

namespace cg::nn {

enum class AdapterKind { LoRA, MoSLoRA, LinChain };
enum class MixerInit { Kaiming, Identity, Orthogonal };

struct AdapterConfig {
  AdapterKind kind = AdapterKind::LoRA;
  int rank = 16;
  int chain = 3;  // LinChain's n; MoSLoRA always uses 1 mixer, LoRA none (see num_mixers)
  double alpha = 32;
  std::vector<std::string> targets{"q", "k", "v", "up", "down"};  // short names
  MixerInit init = MixerInit::Kaiming;
  // LinChain: every chain factor carries a bias, h ← h·Wⱼ + bⱼ (the authors' code builds the
  // chain from nn.Linear(r, r)); off: the paper's linear chain. LoRA: one bias on A's output,
  // h ← x·A + b (the control for the authors' biases: an output bias s·B·b in B's span, no
  // chain). MoSLoRA: refused (the authors' MoSLoRA mixer has no bias).
  bool chain_bias = false;
  // Adapter dropout (PEFT's lora_dropout): during training micro-batches (AdapterSet::
  // dropout_on) the adapter's input is x ⊙ keep / (1 − p); the base path sees x. 0: off.
  double dropout = 0.0;

  int num_mixers() const;  // LoRA 0, MoSLoRA 1, LinChain chain
  double scale() const { return alpha / rank; }
  int num_biases() const;  // chain_bias off: 0; LoRA 1 (on A), LinChain chain (one per mixer)
  void validate() const;   // rank ≥ 1, LinChain chain ≥ 1, alpha finite, known targets, chain_bias not
                           // for MoSLoRA, dropout in [0, 1); FormatError
};

// ---- CLI strings ----------------------------------------------------------------------------
// "lora" | "moslora" | "linchain" (case-insensitive); FormatError otherwise.
AdapterKind parse_adapter_kind(const std::string& s);
std::string adapter_kind_name(AdapterKind k);  // "lora", "moslora", "linchain"
// "kaiming" | "identity" | "orthogonal".
MixerInit parse_mixer_init(const std::string& s);
std::string mixer_init_name(MixerInit m);
// "q,k,v,o,gate,up,down" (short or HF names, e.g. "q_proj", in any order) → short names in
// the canonical order q,k,v,o,gate,up,down, without duplicates. FormatError on unknown names.
std::vector<std::string> parse_targets(const std::string& csv);
std::string target_module_name(const std::string& short_name);  // "q" → "q_proj"
std::string target_short_name(const std::string& name);         // "q_proj" or "q" → "q"
// Short names → "q_proj,k_proj,…" (PEFT's target_modules).
std::string target_modules_csv(const std::vector<std::string>& targets);

// ---- the adapter --------------------------------------------------------------------------
class ChainAdapter : public Adapter {
 public:
  // a[in, r], mixers[r, r] × n, b[out, r] (parameter handles from the adapter store);
  // biases: none, or one [r] per mixer (added after it), or with no mixer one [r] added after A.
  ChainAdapter(Tensor a, std::vector<Tensor> mixers, Tensor b, double scale, std::vector<Tensor> biases = {});

  // y[..., out] = x[..., in] · W₀ᵀ + s · x·A·W₁⋯Wₙ·Bᵀ as one ops::adapted_linear (probe
  // span = the Wᵢ); x in the adapter's term is x ⊙ keep/(1 − p) while dropout is on.
  Tensor forward(const Tensor& x, const Tensor& weight) override;
  // Dropout p on the adapter's input with the mask of `seed` for the following forwards
  // (p = 0: off, the default; evaluation and generation never turn it on).
  void set_dropout(double p, uint64_t seed) {
    dropout_ = p;
    dropout_seed_ = seed;
  }
  // ΔW[out, in] = s · B · Wₙᵀ ⋯ W₁ᵀ · Aᵀ, computed without recording.
  Tensor delta_weight() override;
  // Δb[out] = s · B · β (undefined without chain biases), computed without recording.
  Tensor delta_bias() override;
  // β[r] = Σⱼ bⱼ·W_{j+1}⋯Wₙ (LoRA: β = b; undefined without chain biases), computed without
  // recording.
  Tensor beta() const;

  // The sizes of the adapter term's two parts, Δy = s·x·A·W₁⋯Wₙ·Bᵀ + Δb, on the inputs of the
  // forwards since measure_terms(true): the input-dependent part's RMS over rows (x without
  // dropout, every row of the batch) and ‖Δb‖ = ‖s·B·β‖ (0 without chain biases). Off by default:
  // measuring costs a second chain product per forward (finetune --flow turns it on for the
  // steps it logs). measured_terms() with rows = 0: nothing was measured.
  struct TermSizes {
    double input_rms = 0, bias_norm = 0;
    int64_t rows = 0;
  };
  void measure_terms(bool on);
  TermSizes measured_terms();

  // The probe of the latest forward: for n ≥ 1 its span is the mixers, so after backward
  // grad_product = ∂L/∂P and grad_factors[i] = ∂L/∂W_{i+1}. LoRA: no span (so no probe.beta or
  // grad_biases either; a LoRA bias's gradient is in biases()[0].grad()).
  ops::ChainProbe& probe() { return probe_; }

  const Tensor& a() const { return a_; }
  const Tensor& b() const { return b_; }
  const std::vector<Tensor>& mixers() const { return mixers_; }
  const std::vector<Tensor>& biases() const { return biases_; }  // empty without chain biases; LoRA: {b}
  int64_t rank() const { return a_.dim(1); }
  int64_t in_features() const { return a_.dim(0); }
  int64_t out_features() const { return b_.dim(0); }
  double scale() const { return scale_; }

 private:
  Tensor a_, b_;
  std::vector<Tensor> mixers_, biases_;
  double scale_;
  double dropout_ = 0.0;
  uint64_t dropout_seed_ = 0;
  ops::ChainProbe probe_;
  void accumulate_terms(const Tensor& x);  // forward's share of measure_terms
  bool measuring_ = false;
  double term_sq_ = 0;  // Σ over measured rows of ‖s·x·A·P·Bᵀ‖²
  int64_t term_rows_ = 0;
  std::vector<ops::ChainFactor> factors_;  // {A, W₁, …, Wₙ, Bᵀ}, built once (no list per forward)
};

// ---- a model's adapters -------------------------------------------------------------------
struct AttachedAdapter {
  std::string module;  // HF module name, e.g. "model.layers.3.self_attn.q_proj"
  Linear* linear = nullptr;
  std::shared_ptr<ChainAdapter> adapter;  // also held by linear->adapter
};

struct AdapterSet {
  AdapterConfig config;
  std::unique_ptr<ParamStore> store;  // group "adapters", trainable
  std::vector<AttachedAdapter> adapters;

  int64_t trainable_params() const { return store ? store->numel() : 0; }
  ChainAdapter* find(const std::string& module) const;  // nullptr when absent
  void merge_all();                                     // W += ΔW for every module (skips merged ones)
  void unmerge_all();                                   // W −= ΔW
  void detach();  // removes the adapters from their Linear modules (unmerging first)
  // Training forwards from here use config.dropout (when > 0) with masks that depend only on
  // `key` (the Trainer passes a hash of the run's seed and the micro-batch's data position, so
  // a resumed run draws the same masks), the module's index and the element; dropout_off()
  // ends it (the Trainer calls it after each micro-batch's forward).
  void dropout_on(uint64_t key);
  void dropout_off();
};

// The store names of one module's parameters.
std::string adapter_a_name(const std::string& module);
std::string adapter_b_name(const std::string& module);
std::string adapter_mixer_name(const std::string& module, AdapterKind kind, int j);  // j 0-based
std::string adapter_mixer_bias_name(const std::string& module, int j);               // LinChain's bⱼ₊₁
std::string adapter_lora_bias_name(const std::string& module);                       // LoRA's b (on A)
// Bias j of a module with chain biases: LoRA's b (j = 0), else LinChain's bⱼ₊₁.
std::string adapter_bias_name(const std::string& module, AdapterKind kind, int j);

// Puts an adapter on every Linear whose module name ends in ".<target>_proj" for a target in
// cfg.targets, in the order of `linears`. Initialises A kaiming-uniform (fan_in = in), B
// zeros and the mixers per cfg.init (kaiming-uniform with fan_in = r, identity, or a random
// orthogonal matrix) and, with chain_bias, each bⱼ U(±1/√r) as nn.Linear(r, r) does (LoRA's
// b too, so that the control's bias starts at the size of the chain's), drawing from one
// Rng(seed) module by module (A (LoRA: then b), then W₁ (b₁), …, Wₙ (bₙ)). The
// returned store is finalized on `device` and trainable. Throws FormatError when no module
// matches or a module already has an adapter.
AdapterSet attach_adapters(const std::vector<std::pair<std::string, Linear*>>& linears, const AdapterConfig& cfg,
                           uint64_t seed, Device device = Device::CPU);

// A random orthogonal matrix [n, n] (Q of the QR of a Gaussian, signs fixed so diag(R) > 0),
// via LAPACK dgeqrf/dorgqr.
Tensor random_orthogonal(int64_t n, Rng& rng, DType dtype = DType::F32);

}  // namespace cg::nn
