// nn/adapters.cpp — ChainAdapter (forward through ChainMatmul, ΔW for merging), adapter
// configuration parsing, initialisation (orthogonal mixers from a QR) and
// attach_adapters.
#include "nn/adapters.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

#include "engine/backend.h"
#include "engine/linalg.h"
#include "engine/tape.h"
#include "ops/ops.h"

namespace cg::nn {
namespace {

constexpr std::array<const char*, 7> kTargetShort{"q", "k", "v", "o", "gate", "up", "down"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}
int target_index(const std::string& short_name) {
  for (size_t i = 0; i < kTargetShort.size(); ++i)
    if (short_name == kTargetShort[i]) return static_cast<int>(i);
  return -1;
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Tensor identity(int64_t n, DType dt) {
  std::vector<double> v(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i * n + i)] = 1.0;
  return Tensor::from(v, {n, n}, dt);
}

}  // namespace

// ---- config ---------------------------------------------------------------------------------
int AdapterConfig::num_mixers() const {
  switch (kind) {
    case AdapterKind::LoRA: return 0;
    case AdapterKind::MoSLoRA: return 1;
    case AdapterKind::LinChain: return chain;
  }
  return 0;
}

int AdapterConfig::num_biases() const {
  if (!chain_bias) return 0;
  return kind == AdapterKind::LoRA ? 1 : num_mixers();
}

void AdapterConfig::validate() const {
  if (rank < 1) throw FormatError("adapter: rank must be ≥ 1, got " + std::to_string(rank));
  if (kind == AdapterKind::LinChain && chain < 1)
    throw FormatError("adapter: linchain needs chain length ≥ 1, got " + std::to_string(chain));
  if (kind == AdapterKind::LinChain && chain > ops::kMaxChainFactors - 2)  // A and Bᵀ are factors too
    throw FormatError("adapter: linchain chain length " + std::to_string(chain) + " is above the maximum " +
                      std::to_string(ops::kMaxChainFactors - 2));
  if (!std::isfinite(alpha)) throw FormatError("adapter: alpha must be finite");
  if (chain_bias && kind == AdapterKind::MoSLoRA)
    throw FormatError(
        "adapter: chain biases are LinChain's or LoRA's (on A's output); the authors' MoSLoRA mixer has "
        "no bias");
  if (!(dropout >= 0 && dropout < 1))
    throw FormatError("adapter: dropout must be in [0, 1), got " + std::to_string(dropout));
  if (targets.empty()) throw FormatError("adapter: no target modules");
  for (const auto& t : targets)
    if (target_index(t) < 0) throw FormatError("adapter: unknown target '" + t + "' (q,k,v,o,gate,up,down)");
}

AdapterKind parse_adapter_kind(const std::string& s) {
  const std::string l = lower(trim(s));
  if (l == "lora") return AdapterKind::LoRA;
  if (l == "moslora") return AdapterKind::MoSLoRA;
  if (l == "linchain") return AdapterKind::LinChain;
  throw FormatError("unknown adapter '" + s + "' (expected lora, moslora or linchain)");
}

std::string adapter_kind_name(AdapterKind k) {
  switch (k) {
    case AdapterKind::LoRA: return "lora";
    case AdapterKind::MoSLoRA: return "moslora";
    case AdapterKind::LinChain: return "linchain";
  }
  return "?";
}

MixerInit parse_mixer_init(const std::string& s) {
  const std::string l = lower(trim(s));
  if (l == "kaiming") return MixerInit::Kaiming;
  if (l == "identity") return MixerInit::Identity;
  if (l == "orthogonal") return MixerInit::Orthogonal;
  throw FormatError("unknown init '" + s + "' (expected kaiming, identity or orthogonal)");
}

std::string mixer_init_name(MixerInit m) {
  switch (m) {
    case MixerInit::Kaiming: return "kaiming";
    case MixerInit::Identity: return "identity";
    case MixerInit::Orthogonal: return "orthogonal";
  }
  return "?";
}

std::string target_short_name(const std::string& name) {
  std::string l = lower(trim(name));
  if (ends_with(l, "_proj")) l = l.substr(0, l.size() - 5);
  if (target_index(l) < 0) throw FormatError("unknown target module '" + name + "' (expected q,k,v,o,gate,up,down)");
  return l;
}

std::string target_module_name(const std::string& short_name) { return target_short_name(short_name) + "_proj"; }

std::vector<std::string> parse_targets(const std::string& csv) {
  std::vector<bool> on(kTargetShort.size(), false);
  size_t start = 0;
  bool any = false;
  while (start <= csv.size()) {
    size_t comma = csv.find(',', start);
    if (comma == std::string::npos) comma = csv.size();
    const std::string item = trim(csv.substr(start, comma - start));
    if (!item.empty()) {
      on[static_cast<size_t>(target_index(target_short_name(item)))] = true;
      any = true;
    }
    start = comma + 1;
  }
  if (!any) throw FormatError("empty target list '" + csv + "'");
  std::vector<std::string> out;
  for (size_t i = 0; i < on.size(); ++i)
    if (on[i]) out.emplace_back(kTargetShort[i]);
  return out;
}

std::string target_modules_csv(const std::vector<std::string>& targets) {
  std::string s;
  for (const auto& t : targets) s += (s.empty() ? "" : ",") + target_module_name(t);
  return s;
}

// ---- ChainAdapter ----------------------------------------------------------------------------
ChainAdapter::ChainAdapter(Tensor a, std::vector<Tensor> mixers, Tensor b, double scale, std::vector<Tensor> biases)
    : a_(std::move(a)), b_(std::move(b)), mixers_(std::move(mixers)), biases_(std::move(biases)), scale_(scale) {
  if (a_.rank() != 2 || b_.rank() != 2 || a_.dim(1) != b_.dim(1))
    throw ShapeError("ChainAdapter: A " + a_.desc() + " and B " + b_.desc() + " must be [in, r] and [out, r]");
  for (const Tensor& w : mixers_)
    if (w.rank() != 2 || w.dim(0) != a_.dim(1) || w.dim(1) != a_.dim(1))
      throw ShapeError("ChainAdapter: mixer " + w.desc() + " must be [r, r] with r = " + std::to_string(a_.dim(1)));
  if (!mixers_.empty()) {
    probe_.span_begin = 1;
    probe_.span_end = 1 + static_cast<int>(mixers_.size());
  }
  // One bias per mixer, or with no mixer (LoRA) one bias after A.
  if (!biases_.empty() && biases_.size() != std::max<size_t>(mixers_.size(), 1))
    throw ShapeError("ChainAdapter: " + std::to_string(biases_.size()) + " biases for " +
                     std::to_string(mixers_.size()) + " mixers");
  for (const Tensor& bj : biases_)
    if (bj.numel() != a_.dim(1))
      throw ShapeError("ChainAdapter: bias " + bj.desc() + " must be [r] with r = " + std::to_string(a_.dim(1)));
  factors_.emplace_back(a_, false, mixers_.empty() && !biases_.empty() ? biases_[0] : Tensor());
  for (size_t j = 0; j < mixers_.size(); ++j)
    factors_.emplace_back(mixers_[j], false, biases_.empty() ? Tensor() : biases_[j]);
  factors_.push_back(ops::transposed_factor(b_));
}

// β[r] = Σⱼ bⱼ·W_{j+1}⋯Wₙ by the recurrence h ← h·Wⱼ + bⱼ from h = 0 (LoRA: β = b)
Tensor ChainAdapter::beta() const {
  if (biases_.empty()) return Tensor();
  NoGrad ng;
  Tensor h = biases_[0].view({1, rank()}).clone();
  for (size_t j = 1; j < mixers_.size(); ++j) {
    h = ops::matmul(h, mixers_[j]);
    backend(h).axpy(1.0, biases_[j].view({1, rank()}), h);
  }
  return h.view({rank()});
}

// Δb[out] = s · B[out,r] · β[r]
Tensor ChainAdapter::delta_bias() {
  if (biases_.empty()) return Tensor();
  NoGrad ng;
  Tensor d = ops::matmul(beta().view({1, rank()}), ops::transpose(b_, 0, 1));
  backend(d).unary(UnaryOp::MulScalar, d, d, scale_);
  return d.view({out_features()});
}

// y[..., out] = x[..., in] · W₀[out,in]ᵀ + s · x · A[in,r] · W₁[r,r] ⋯ Wₙ[r,r] · B[out,r]ᵀ
Tensor ChainAdapter::forward(const Tensor& x, const Tensor& weight) {
  if (measuring_) accumulate_terms(x);  // finetune --flow: the term sizes (nn/adapters.h)
  return ops::adapted_linear(x, weight, factors_, scale_, &probe_, dropout_, dropout_seed_);
}

// The input-dependent part alone, s · x[rows, in] · A · W₁⋯Wₙ · Bᵀ → [rows, out]: its Σ‖row‖².
void ChainAdapter::accumulate_terms(const Tensor& x) {
  NoGrad ng;
  std::vector<ops::ChainFactor> f{a_};
  for (const Tensor& w : mixers_) f.push_back(w);
  f.push_back(ops::transposed_factor(b_));
  const int64_t rows = x.numel() / in_features();
  const Tensor t = ops::chain_matmul(ops::reshape(x, {rows, in_features()}), f);
  term_sq_ += backend(t).sum_squares(t) * scale_ * scale_;
  term_rows_ += rows;
}

void ChainAdapter::measure_terms(bool on) {
  measuring_ = on;
  term_sq_ = 0;
  term_rows_ = 0;
}

ChainAdapter::TermSizes ChainAdapter::measured_terms() {
  TermSizes t;
  t.rows = term_rows_;
  if (term_rows_ > 0) t.input_rms = std::sqrt(term_sq_ / static_cast<double>(term_rows_));
  if (!biases_.empty()) {
    const Tensor d = delta_bias();
    t.bias_norm = std::sqrt(backend(d).sum_squares(d));
  }
  return t;
}

// ΔW[out, in] = s · B[out,r] · Wₙᵀ ⋯ W₁ᵀ · A[in,r]ᵀ  (= s·(A·W₁⋯Wₙ·Bᵀ)ᵀ)
Tensor ChainAdapter::delta_weight() {
  NoGrad ng;
  std::vector<ops::ChainFactor> f;
  for (auto it = mixers_.rbegin(); it != mixers_.rend(); ++it) f.push_back(ops::transposed_factor(*it));
  f.push_back(ops::transposed_factor(a_));
  Tensor d = ops::chain_matmul(b_, f);
  backend(d).unary(UnaryOp::MulScalar, d, d, scale_);
  return d;
}

// ---- AdapterSet ------------------------------------------------------------------------------
ChainAdapter* AdapterSet::find(const std::string& module) const {
  for (const auto& a : adapters)
    if (a.module == module) return a.adapter.get();
  return nullptr;
}

void AdapterSet::merge_all() {
  for (auto& a : adapters) a.linear->merge();
}

void AdapterSet::unmerge_all() {
  for (auto& a : adapters) a.linear->unmerge();
}

void AdapterSet::dropout_on(uint64_t key) {
  if (config.dropout <= 0) return;
  for (size_t i = 0; i < adapters.size(); ++i) adapters[i].adapter->set_dropout(config.dropout, dropout_hash(key, i));
}

void AdapterSet::dropout_off() {
  for (auto& a : adapters) a.adapter->set_dropout(0.0, 0);
}

void AdapterSet::detach() {
  for (auto& a : adapters) {
    a.linear->unmerge();
    if (a.linear->adapter.get() == a.adapter.get()) a.linear->adapter.reset();
  }
}

std::string adapter_a_name(const std::string& module) { return module + ".lora_A.weight"; }
std::string adapter_b_name(const std::string& module) { return module + ".lora_B.weight"; }
std::string adapter_mixer_bias_name(const std::string& module, int j) {
  return module + ".lora_mixer." + std::to_string(j) + ".bias";
}
std::string adapter_lora_bias_name(const std::string& module) { return module + ".lora_A.bias"; }
std::string adapter_bias_name(const std::string& module, AdapterKind kind, int j) {
  return kind == AdapterKind::LoRA ? adapter_lora_bias_name(module) : adapter_mixer_bias_name(module, j);
}
std::string adapter_mixer_name(const std::string& module, AdapterKind kind, int j) {
  if (kind == AdapterKind::MoSLoRA) return module + ".lora_AB.weight";
  return module + ".lora_mixer." + std::to_string(j) + ".weight";
}

Tensor random_orthogonal(int64_t n, Rng& rng, DType dtype) {
  if (n < 1) throw ShapeError("random_orthogonal: n = " + std::to_string(n));
  // The normal draws fill the matrix column by column (the order the seeds have always used).
  std::vector<double> a(static_cast<size_t>(n * n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i * n + j)] = rng.normal();
  linalg::QR f = linalg::qr(a, n, n);
  // Q·diag(sign(diag R)) makes the factorisation unique (Haar-distributed Q).
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (f.r[static_cast<size_t>(j * n + j)] < 0) f.q[static_cast<size_t>(i * n + j)] *= -1.0;
  return Tensor::from(f.q, {n, n}, dtype);
}

AdapterSet attach_adapters(const std::vector<std::pair<std::string, Linear*>>& linears, const AdapterConfig& cfg,
                           uint64_t seed, Device device) {
  cfg.validate();
  AdapterSet set;
  set.config = cfg;
  set.store = std::make_unique<ParamStore>("adapters");
  Rng rng(seed);
  const int64_t r = cfg.rank;
  const int n = cfg.num_mixers();
  struct Pending {
    std::string module;
    Linear* linear;
    Tensor a, b;
    std::vector<Tensor> mixers, biases;
  };
  std::vector<Pending> pending;
  for (const auto& [module, lin] : linears) {
    bool hit = false;
    for (const auto& t : cfg.targets) {
      const std::string suffix = target_module_name(t);
      if (module == suffix || ends_with(module, "." + suffix)) hit = true;
    }
    if (!hit) continue;
    if (!lin || !lin->weight.defined()) throw Error("attach_adapters: module '" + module + "' has no weight");
    if (lin->adapter) throw FormatError("attach_adapters: module '" + module + "' already has an adapter");
    const DType dt = lin->weight.dtype() == DType::BF16 ? DType::F32 : lin->weight.dtype();  // bf16: storage only
    const int64_t in = lin->in_features(), out = lin->out_features();
    Pending p{module, lin, Tensor(), Tensor(), {}, {}};
    p.a = set.store->add(adapter_a_name(module), kaiming_uniform({in, r}, in, rng, dt));
    const double bias_bound = 1.0 / std::sqrt(static_cast<double>(r));  // nn.Linear(r, r)'s bias: U(±1/√r)
    if (cfg.chain_bias && n == 0)                                       // LoRA: one bias on A's output, in B's span
      p.biases.push_back(
          set.store->add(adapter_lora_bias_name(module), rand_uniform({r}, -bias_bound, bias_bound, rng, dt)));
    for (int j = 0; j < n; ++j) {
      Tensor w;
      switch (cfg.init) {
        case MixerInit::Kaiming: w = kaiming_uniform({r, r}, r, rng, dt); break;
        case MixerInit::Identity: w = identity(r, dt); break;
        case MixerInit::Orthogonal: w = random_orthogonal(r, rng, dt); break;
      }
      p.mixers.push_back(set.store->add(adapter_mixer_name(module, cfg.kind, j), w));
      if (cfg.chain_bias)  // nn.Linear(r, r)'s bias init: U(±1/√fan_in), fan_in = r
        p.biases.push_back(
            set.store->add(adapter_mixer_bias_name(module, j), rand_uniform({r}, -bias_bound, bias_bound, rng, dt)));
    }
    p.b = set.store->add(adapter_b_name(module), Tensor::zeros({out, r}, dt));
    pending.push_back(std::move(p));
  }
  if (pending.empty())
    throw FormatError("attach_adapters: no module matches the targets " + target_modules_csv(cfg.targets));
  set.store->finalize(device);
  set.store->set_trainable(true);
  for (auto& p : pending) {
    auto ad = std::make_shared<ChainAdapter>(p.a, p.mixers, p.b, cfg.scale(), p.biases);
    p.linear->adapter = ad;
    set.adapters.push_back({p.module, p.linear, ad});
  }
  return set;
}

}  // namespace cg::nn
