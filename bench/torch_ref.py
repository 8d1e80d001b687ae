#!/usr/bin/python3
"""PyTorch reference for bench/compare: the same Llama-style model and adapters as
chaingrad, written plainly in torch (no code shared with the C++), timed per training step.

usage: bench/torch_ref.py --config tiny|small|smollm2 --mode pretrain|lora|moslora|linchain
                          [--threads N] [--steps N] [--warmup N] [--variant eager|sdpa|bf16|compile]
Prints one JSON object: config, mode, threads, ms_per_step (median wall time of the timed
steps), cpu_ms_per_step (median process CPU time: all threads, spinning included),
tok_s, peak_rss_mb (getrusage of this process, so it includes the torch runtime itself).

What matches chaingrad's bench/bench_train.cpp: the model (Llama-style, untied head,
RMSNorm eps 1e-5, rotate-half RoPE theta 1e4, grouped-query attention, SwiGLU), the
adapters (Δy = s·x·A·W1⋯Wn·Bᵀ, s = alpha/r = 2, the r×r product formed once per step,
base frozen), AdamW (lr 1e-3, no weight decay) with global-norm clipping at 1.0, and the
step (zero_grad, forward + cross-entropy, backward, clip, step) on random token batches
made before timing. Initial values differ (they do not change the time of a step).
"""
import argparse
import contextlib
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "tiny": dict(dim=64, layers=5, heads=8, kv_heads=4, hidden=172, vocab=512, seq=256, batch=8),
    "small": dict(dim=256, layers=6, heads=8, kv_heads=4, hidden=688, vocab=512, seq=256, batch=8),
    # SmolLM2-135M's shape on a short sequence, as in bench_train.
    "smollm2": dict(dim=576, layers=30, heads=9, kv_heads=3, hidden=1536, vocab=49152, seq=64, batch=2),
}
SDPA = False  # --variant sdpa/bf16/compile: F.scaled_dot_product_attention instead of the plain formula


class Adapter(nn.Module):
    """Δy = s · x A W1 ⋯ Wn Bᵀ (paper convention); n = 0 LoRA, 1 MoSLoRA, ≥1 LinChain."""

    def __init__(self, d_in, d_out, r, n, alpha):
        super().__init__()
        self.A = nn.Parameter(torch.empty(d_in, r).uniform_(-1 / math.sqrt(d_in), 1 / math.sqrt(d_in)))
        self.W = nn.ParameterList([nn.Parameter(torch.empty(r, r).uniform_(-1 / math.sqrt(r), 1 / math.sqrt(r)))
                                   for _ in range(n)])
        self.B = nn.Parameter(torch.zeros(d_out, r))
        self.s = alpha / r

    def forward(self, x):
        h = x @ self.A
        if len(self.W):
            p = self.W[0]
            for w in self.W[1:]:
                p = p @ w
            h = h @ p
        return self.s * (h @ self.B.t())


class Lin(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) * 0.02)
        self.adapter = None

    def forward(self, x):
        y = F.linear(x, self.weight)
        return y if self.adapter is None else y + self.adapter(x)


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):  # x [B,H,T,D], rotate-half
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.kv, self.hd = c["heads"], c["kv_heads"], c["dim"] // c["heads"]
        d, hd = c["dim"], c["dim"] // c["heads"]
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.q, self.k, self.v, self.o = Lin(d, d), Lin(d, self.kv * hd), Lin(d, self.kv * hd), Lin(d, d)
        self.gate, self.up, self.down = Lin(d, c["hidden"]), Lin(d, c["hidden"]), Lin(c["hidden"], d)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.kv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = self.h // self.kv
        if SDPA:  # PyTorch 2's fused attention, grouped KV heads without repeating them
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).transpose(1, 2).reshape(B, T, -1)
        else:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
            att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(-1)
            a = (att @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o(a)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.emb = nn.Parameter(torch.randn(c["vocab"], c["dim"]) * 0.02)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["dim"])
        self.head = Lin(c["dim"], c["vocab"])
        hd = c["dim"] // c["heads"]
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(c["seq"]).float()[:, None] * inv[None, :]
        self.cos, self.sin = ang.cos(), ang.sin()
        self.mask = torch.triu(torch.ones(c["seq"], c["seq"], dtype=torch.bool), 1)

    def forward(self, ids, targets):
        x = self.emb[ids]
        T = ids.shape[1]
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T], self.mask)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=CONFIGS, default="tiny")
    ap.add_argument("--mode", choices=["pretrain", "lora", "moslora", "linchain"], default="pretrain")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--chain", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu_compare.sh)")
    ap.add_argument("--variant", choices=["eager", "sdpa", "bf16", "compile"], default="eager",
                    help="eager: the plain attention formula; sdpa: F.scaled_dot_product_attention (f32); "
                         "bf16: sdpa under bf16 autocast; compile: sdpa under torch.compile (f32)")
    for k in ["dim", "layers", "heads", "kv_heads", "hidden", "vocab", "seq", "batch"]:
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None, help="override the config's " + k)
    a = ap.parse_args()
    global SDPA
    SDPA = a.variant != "eager"
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = dict(CONFIGS[a.config])
    for k in c:
        if getattr(a, k, None) is not None:
            c[k] = getattr(a, k)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    m = Llama(c)
    if a.mode == "pretrain":
        params = list(m.parameters())
    else:
        for p in m.parameters():
            p.requires_grad_(False)
        n = {"lora": 0, "moslora": 1, "linchain": a.chain}[a.mode]
        params = []
        for b in m.blocks:
            for name in ["q", "k", "v", "up", "down"]:
                lin = getattr(b, name)
                lin.adapter = Adapter(lin.weight.shape[1], lin.weight.shape[0], a.rank, n, 2 * a.rank)
                params += list(lin.adapter.parameters())
    m.to(dev)
    m.cos, m.sin, m.mask = m.cos.to(dev), m.sin.to(dev), m.mask.to(dev)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    fwd = torch.compile(m) if a.variant == "compile" else m
    if a.variant == "bf16":
        autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, c["vocab"], (c["batch"], c["seq"]), generator=g),
                torch.randint(0, c["vocab"], (c["batch"], c["seq"]), generator=g)) for _ in range(4)]
    batches = [(x.to(dev), y.to(dev)) for x, y in batches]
    times, cpu = [], []
    for i in range(a.warmup + a.steps):
        ids, tg = batches[i % 4]
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = fwd(ids, tg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        t1, c1 = time.perf_counter(), time.process_time()
        if i >= a.warmup:
            times.append(t1 - t0)
            cpu.append(c1 - c0)
    times.sort()
    cpu.sort()
    ms = 1000 * times[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "variant": a.variant, "torch": torch.__version__, "config": a.config, "mode": a.mode, "threads": a.threads, "device": a.device,
                      "ms_per_step": ms,
                      "cpu_ms_per_step": 1000 * cpu[len(cpu) // 2],
                      "tok_s": c["batch"] * c["seq"] / (ms / 1000),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "trainable_params": sum(p.numel() for p in params), "loss": loss.item()}))


if __name__ == "__main__":
    main()
