#!/usr/bin/python3
"""tests/reference/adapters_ref.py — PyTorch reference for the adapter parity test.

Builds a small random Llama (HF conventions: rotate-half RoPE, SwiGLU MLP, RMSNorm, grouped
KV heads, untied head) and, for each adapter kind (LoRA, MoSLoRA, LinChain n = 1..4), writes
a golden safetensors file with the initial adapter weights, the logits, the loss, the
gradient of every adapter tensor (and of the mixer product P), and the losses and final
weights of 5 AdamW and 5 plain SGD steps. Shares no code with the C++ (run with Debian's
/usr/bin/python3; needs only torch and the standard library).

Files (in --out, default tests/golden):
  adapters_base.safetensors      model config (metadata), base weights (HF names), ids, targets
  adapters_<kind>.safetensors    kind = lora, moslora, linchain1 … linchain4, and linchainb1 …
                                 linchainb4: LinChain with chain biases, written as the authors'
                                 layer is (AuthorsLinChain below: nn.Linear modules in PEFT's
                                 layout, dropout off), stored in the C++ layout
With --variant alt, a non-default config instead (rope θ = 500000, RMSNorm eps = 1e-6, one KV
head, T = 80 > 64 so the C++ blocked causal attention runs, several ignored targets (−1),
SGD with momentum and weight decay, AdamW with weight decay):
  adapters_alt_base.safetensors, adapters_alt_linchain3.safetensors

Adapter convention (the paper's, y = x·W): for a target module with weight W[out, in]
  y = x·Wᵀ + s · x·A·W₁⋯Wₙ·Bᵀ,  A[in, r], Wⱼ[r, r], B[out, r], s = alpha / r.
Tensor names follow the C++ adapter store: "<module>.lora_A.weight" (A, [in, r]),
"<module>.lora_B.weight" (B), "<module>.lora_AB.weight" (MoSLoRA's W₁),
"<module>.lora_mixer.{j}.weight" (LinChain's W_{j+1}), with prefixes
  init.   initial values          grad.   ∂loss/∂tensor at the initial values
  grad_product.<module>           ∂loss/∂P, P = W₁⋯Wₙ (kinds with mixers)
  adamw.losses / sgd.losses [6]   loss before step 1 … after step 5
  adamw.final. / sgd.final.       the tensors after 5 steps
Computation is in float64; tensors are stored as float32 (ids/targets as int32).
"""
import argparse
import math
import os

import torch
from safetensors_writer import write_safetensors

CFG = dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64, vocab_size=64, seq_len=16, batch=2,
           norm_eps=1e-5, rope_theta=10000.0)
ALT_CFG = dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=1, hidden_dim=48, vocab_size=64, seq_len=80, batch=1,
               norm_eps=1e-6, rope_theta=500000.0)
OPT = dict(adamw_weight_decay=0.0, sgd_momentum=0.0, sgd_weight_decay=0.0)
ALT_OPT = dict(adamw_weight_decay=0.1, sgd_momentum=0.9, sgd_weight_decay=0.05)
N_IGNORED_ALT = 7  # targets set to −1 (ignored by the loss)
RANK, ALPHA = 4, 8.0
TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
ADAMW_LR, SGD_LR, STEPS = 1e-2, 0.5, 5
DT = torch.float64


def make_base(gen):
    c = CFG
    d, hd, kvd, h, v = c["dim"], c["dim"] // c["n_heads"], c["dim"] // c["n_heads"] * c["n_kv_heads"], \
        c["hidden_dim"], c["vocab_size"]

    def lin(out_f, in_f):
        b = 1.0 / math.sqrt(in_f)
        return (torch.rand(out_f, in_f, generator=gen, dtype=DT) * 2 - 1) * b

    def norm(n):
        return 1.0 + 0.1 * torch.randn(n, generator=gen, dtype=DT)

    w = {"model.embed_tokens.weight": torch.randn(v, d, generator=gen, dtype=DT)}
    del hd
    for i in range(c["n_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = lin(d, d)
        w[p + "self_attn.k_proj.weight"] = lin(kvd, d)
        w[p + "self_attn.v_proj.weight"] = lin(kvd, d)
        w[p + "self_attn.o_proj.weight"] = lin(d, d)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = lin(h, d)
        w[p + "mlp.up_proj.weight"] = lin(h, d)
        w[p + "mlp.down_proj.weight"] = lin(d, h)
    w["model.norm.weight"] = norm(d)
    w["lm_head.weight"] = lin(v, d)
    return w


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):  # x [B, T, H, D], rotate-half
    _, t, _, d = x.shape
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=DT) / d))
    ang = torch.outer(torch.arange(t, dtype=DT), inv)  # [T, D/2]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def target_modules(base):
    """(module name, out features, in features) of every adapted base weight, in the base's order."""
    for name, w in base.items():
        mod = name[: -len(".weight")]
        if any(mod.endswith("." + t) for t in TARGETS):
            yield (mod, *w.shape)


class Adapters:
    """The adapter tensors of every target module, in the C++ store's names and layouts."""

    def __init__(self, base, kind, n, gen):
        self.kind, self.n, self.scale = kind, n, ALPHA / RANK
        self.modules, self.t = [], {}
        for mod, out_f, in_f in target_modules(base):
            self.modules.append(mod)
            b = 1.0 / math.sqrt(in_f)
            self.t[mod + ".lora_A.weight"] = (torch.rand(in_f, RANK, generator=gen, dtype=DT) * 2 - 1) * b
            for j in range(n):
                # I + noise keeps the chain product O(1), so every factor gets a real gradient.
                wj = torch.eye(RANK, dtype=DT) + (torch.rand(RANK, RANK, generator=gen, dtype=DT) * 2 - 1) * 0.4
                self.t[self.mixer_name(mod, j)] = wj
            self.t[mod + ".lora_B.weight"] = 0.2 * torch.randn(out_f, RANK, generator=gen, dtype=DT)
        for v in self.t.values():
            v.requires_grad_(True)
        self.products = {}

    def mixer_name(self, mod, j):
        return mod + (".lora_AB.weight" if self.kind == "moslora" else f".lora_mixer.{j}.weight")

    def names(self):
        return list(self.t.keys())

    def delta(self, mod, x):  # s · x·A·W₁⋯Wₙ·Bᵀ
        h = x @ self.t[mod + ".lora_A.weight"]
        if self.n > 0:
            p = self.t[self.mixer_name(mod, 0)]
            for j in range(1, self.n):
                p = p @ self.t[self.mixer_name(mod, j)]
            if p.requires_grad and not p.is_leaf:
                p.retain_grad()
            self.products[mod] = p
            h = h @ p
        return self.scale * (h @ self.t[mod + ".lora_B.weight"].T)


class AuthorsLinChain:
    """LinChain as the authors' PEFT fork builds it: per module lora_A = nn.Linear(in, r, bias=False),
    lora_mixer = ModuleList([nn.Linear(r, r)] * n) (biases on), lora_B = nn.Linear(r, out, bias=False),
    Δy = lora_B(mixer_n(⋯mixer_1(lora_A(x)))) · s. Tensors are read and written in the C++ store's
    layout (A = lora_A.weightᵀ, W_{j+1} = lora_mixer.j.weightᵀ, b_{j+1} = lora_mixer.j.bias)."""

    def __init__(self, base, n, gen):
        self.kind, self.n, self.scale = "linchain", n, ALPHA / RANK
        self.modules, self.layers = [], {}
        for mod, out_f, in_f in target_modules(base):
            self.modules.append(mod)
            a = torch.nn.Linear(in_f, RANK, bias=False, dtype=DT)
            mix = torch.nn.ModuleList([torch.nn.Linear(RANK, RANK, dtype=DT) for _ in range(n)])
            b = torch.nn.Linear(RANK, out_f, bias=False, dtype=DT)
            with torch.no_grad():  # values from gen (not torch's global RNG), like Adapters above
                a.weight.copy_(((torch.rand(in_f, RANK, generator=gen, dtype=DT) * 2 - 1) / math.sqrt(in_f)).T)
                for m in mix:
                    m.weight.copy_((torch.eye(RANK, dtype=DT) +
                                    (torch.rand(RANK, RANK, generator=gen, dtype=DT) * 2 - 1) * 0.4).T)
                    m.bias.copy_((torch.rand(RANK, generator=gen, dtype=DT) * 2 - 1) / math.sqrt(RANK))
                b.weight.copy_(0.2 * torch.randn(out_f, RANK, generator=gen, dtype=DT))
            self.layers[mod] = (a, mix, b)
        self.products = {}

    def named(self):  # (C++ store name, tensor in the C++ layout, parameter, transposed)
        out = []
        for mod in self.modules:
            a, mix, b = self.layers[mod]
            out.append((mod + ".lora_A.weight", a.weight, True))
            for j, m in enumerate(mix):
                out.append((mod + f".lora_mixer.{j}.weight", m.weight, True))
                out.append((mod + f".lora_mixer.{j}.bias", m.bias, False))
            out.append((mod + ".lora_B.weight", b.weight, False))
        return out

    @property
    def t(self):
        return {n: (p.T if tr else p) for n, p, tr in self.named()}

    def params(self):
        return [p for _, p, _ in self.named()]

    def grads(self):
        return [(n, p.grad.T if tr else p.grad) for n, p, tr in self.named()]

    def load(self, values):
        with torch.no_grad():
            for n, p, tr in self.named():
                p.copy_(values[n].T if tr else values[n])

    def delta(self, mod, x):
        a, mix, b = self.layers[mod]
        h = a(x)
        for m in mix:
            h = m(h)
        return b(h) * self.scale


def forward(base, ad, ids, targets):
    c = CFG
    bsz, t = ids.shape
    nh, nkv, hd = c["n_heads"], c["n_kv_heads"], c["dim"] // c["n_heads"]

    def linear(mod, x):
        y = x @ base[mod + ".weight"].T
        if ad is not None and mod in ad.modules:
            y = y + ad.delta(mod, x)
        return y

    h = base["model.embed_tokens.weight"][ids.long()]
    mask = torch.full((t, t), float("-inf"), dtype=DT).triu(1)
    for i in range(c["n_layers"]):
        p = f"model.layers.{i}."
        x = rmsnorm(h, base[p + "input_layernorm.weight"], c["norm_eps"])
        q = rope(linear(p + "self_attn.q_proj", x).view(bsz, t, nh, hd), c["rope_theta"]).transpose(1, 2)
        k = rope(linear(p + "self_attn.k_proj", x).view(bsz, t, nkv, hd), c["rope_theta"]).transpose(1, 2)
        v = linear(p + "self_attn.v_proj", x).view(bsz, t, nkv, hd).transpose(1, 2)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(bsz, t, nh * hd)
        h = h + linear(p + "self_attn.o_proj", o)
        x = rmsnorm(h, base[p + "post_attention_layernorm.weight"], c["norm_eps"])
        m = torch.nn.functional.silu(linear(p + "mlp.gate_proj", x)) * linear(p + "mlp.up_proj", x)
        h = h + linear(p + "mlp.down_proj", m)
    h = rmsnorm(h, base["model.norm.weight"], c["norm_eps"])
    logits = h @ base["lm_head.weight"].T
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long(),
                                             ignore_index=-1)
    return logits, loss


def trajectory(base, ad, ids, targets, opt_name):
    params = ad.params() if isinstance(ad, AuthorsLinChain) else [ad.t[n] for n in ad.names()]
    if opt_name == "adamw":
        opt = torch.optim.AdamW(params, lr=ADAMW_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=OPT["adamw_weight_decay"])
    else:
        opt = torch.optim.SGD(params, lr=SGD_LR, momentum=OPT["sgd_momentum"], weight_decay=OPT["sgd_weight_decay"])
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        _, loss = forward(base, ad, ids, targets)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(forward(base, ad, ids, targets)[1].item())
    return torch.tensor(losses, dtype=DT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
    ap.add_argument("--variant", choices=["default", "alt"], default="default")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    alt = args.variant == "alt"
    prefix = "adapters_alt_" if alt else "adapters_"
    if alt:
        CFG.clear()
        CFG.update(ALT_CFG)
        OPT.update(ALT_OPT)

    gen = torch.Generator().manual_seed(20241101)
    base = make_base(gen)
    c = CFG
    ids = torch.randint(0, c["vocab_size"], (c["batch"], c["seq_len"]), generator=gen, dtype=torch.int32)
    targets = torch.randint(0, c["vocab_size"], (c["batch"], c["seq_len"]), generator=gen, dtype=torch.int32)
    if alt:
        flat = targets.view(-1)
        flat[torch.randperm(flat.numel(), generator=gen)[:N_IGNORED_ALT]] = -1
    write_safetensors(os.path.join(args.out, prefix + "base.safetensors"),
                      list(base.items()) + [("ids", ids), ("targets", targets)], c)

    kinds = [("linchain3", 3)] if alt else [("lora", 0), ("moslora", 1)] + [(f"linchain{n}", n) for n in range(1, 5)]
    for ki, (kname, n) in enumerate(kinds):
        kind = "linchain" if kname.startswith("linchain") else kname
        agen = torch.Generator().manual_seed(1000 + ki)
        ad = Adapters(base, kind, n, agen)
        init = {k: v.detach().clone() for k, v in ad.t.items()}
        logits, loss = forward(base, ad, ids, targets)
        loss.backward()
        out = [("init." + k, v) for k, v in init.items()]
        out += [("logits", logits), ("loss", loss.reshape(1))]
        out += [("grad." + k, v.grad) for k, v in ad.t.items()]
        out += [("grad_product." + m, p.grad) for m, p in ad.products.items()]
        for opt_name in ("adamw", "sgd"):
            ad_run = Adapters(base, kind, n, torch.Generator().manual_seed(1000 + ki))
            with torch.no_grad():
                for k in ad_run.t:
                    ad_run.t[k].copy_(init[k])
            losses = trajectory(base, ad_run, ids, targets, opt_name)
            out.append((opt_name + ".losses", losses))
            out += [(opt_name + ".final." + k, v) for k, v in ad_run.t.items()]
        meta = dict(kind=kind, chain=n, rank=RANK, alpha=ALPHA, targets=",".join(TARGETS), adamw_lr=ADAMW_LR,
                    sgd_lr=SGD_LR, steps=STEPS, **OPT)
        path = os.path.join(args.out, f"{prefix}{kname}.safetensors")
        write_safetensors(path, out, meta)
        print(f"{path}: loss {loss.item():.6f}, sgd losses {[round(x, 5) for x in losses.tolist()]}", flush=True)

    for n in range(1, 5):  # the authors' layer: chain factors with biases
        ad = AuthorsLinChain(base, n, torch.Generator().manual_seed(2000 + n))
        init = {k: v.detach().clone() for k, v in ad.t.items()}
        logits, loss = forward(base, ad, ids, targets)
        loss.backward()
        out = [("init." + k, v) for k, v in init.items()]
        out += [("logits", logits), ("loss", loss.reshape(1))]
        out += [("grad." + k, g) for k, g in ad.grads()]
        for opt_name in ("adamw", "sgd"):
            ad_run = AuthorsLinChain(base, n, torch.Generator().manual_seed(2000 + n))
            ad_run.load(init)
            losses = trajectory(base, ad_run, ids, targets, opt_name)
            out.append((opt_name + ".losses", losses))
            out += [(opt_name + ".final." + k, v.detach()) for k, v in ad_run.t.items()]
        meta = dict(kind="linchain", chain=n, chain_bias=1, rank=RANK, alpha=ALPHA, targets=",".join(TARGETS),
                    adamw_lr=ADAMW_LR, sgd_lr=SGD_LR, steps=STEPS)
        path = os.path.join(args.out, f"adapters_linchainb{n}.safetensors")
        write_safetensors(path, out, meta)
        print(f"{path}: loss {loss.item():.6f}, sgd losses {[round(x, 5) for x in losses.tolist()]}", flush=True)


if __name__ == "__main__":
    main()
