#!/usr/bin/python3
"""tests/reference/llama_ref.py — an independent PyTorch reference for the llama2.c model
family (stories*.bin + tok*.bin). Shares no code with the C++: it parses the llama2.c
checkpoint and tokenizer itself, runs the Llama decoder in torch with llama2.c's own
*interleaved* (complex-pair) RoPE on the un-permuted q/k weights — so it checks the C++
side's permutation to rotate-half order — and implements the BPE encoder and run.c-style
decoding.

Run with Debian's interpreter:  /usr/bin/python3 tests/reference/llama_ref.py MODE ...
  generate --model M --tokenizer T [--prompt P] [--steps N]   greedy text on stdout
  evaluate --model M --tokenizer T --text FILE [--json]      mean next-token loss
  logits   --model M [--tokenizer T --prompt P | --tokens 1,2,3] --out FILE

Windowing used by `evaluate` (the C++ evaluate tool does the same): the file's bytes are
encoded with BOS prepended (no EOS) into N tokens; window w feeds tokens
[w·L, w·L + L) (L = seq_len) and scores the next token at every position that has one,
so the windows do not overlap, every token but the first is scored exactly once, and
each window's first token is context only (its own prediction was scored by the
previous window). Scored tokens: N − 1.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch

BOS, EOS = 1, 2


# ---- checkpoint -----------------------------------------------------------------------
def read_checkpoint(path):
    """llama2.c legacy (v0) checkpoint: 7 int32 header, then float32 arrays."""
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads,
               n_kv_heads=n_kv, vocab_size=vocab, seq_len=seq_len, shared=shared)
    shapes = [
        ("tok", (vocab, dim)), ("rms_att", (n_layers, dim)),
        ("wq", (n_layers, dim, dim)), ("wk", (n_layers, kv_dim, dim)),
        ("wv", (n_layers, kv_dim, dim)), ("wo", (n_layers, dim, dim)),
        ("rms_ffn", (n_layers, dim)), ("w1", (n_layers, hidden, dim)),
        ("w2", (n_layers, dim, hidden)), ("w3", (n_layers, hidden, dim)),
        ("rms_final", (dim,)), ("freq_real", (seq_len, hs // 2)),
        ("freq_imag", (seq_len, hs // 2)),
    ]
    if not shared:
        shapes.append(("wcls", (vocab, dim)))
    w, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        if off + n > data.size:
            raise SystemExit(f"{path}: truncated checkpoint")
        w[name] = torch.from_numpy(data[off:off + n].astype(np.float64).reshape(shape))
        off += n
    if shared:
        w["wcls"] = w["tok"]
    return cfg, w


# ---- tokenizer ------------------------------------------------------------------------
def read_tokenizer(path, vocab_size):
    raw = open(path, "rb").read()
    off = 4  # max_token_length, unused here
    pieces, scores = [], []
    for _ in range(vocab_size):
        score, n = struct.unpack_from("<fi", raw, off)
        off += 8
        pieces.append(raw[off:off + n])
        off += n
        scores.append(score)
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    return pieces, scores, lookup


def encode(text_bytes, tok, bos=True):
    pieces, scores, lookup = tok
    ids = [BOS] if bos else []
    if text_bytes:
        ids.append(lookup[b" "])  # the dummy-prefix space
    # Split into UTF-8 code points (a lead byte plus up to 3 continuation bytes).
    i = 0
    while i < len(text_bytes):
        j = i + 1
        while j < len(text_bytes) and j - i < 4 and (text_bytes[j] & 0xC0) == 0x80:
            j += 1
        cp = text_bytes[i:j]
        if cp in lookup:
            ids.append(lookup[cp])
        else:  # byte fallback: <0xXX> tokens start at id 3
            ids.extend(b + 3 for b in cp)
        i = j
    # Greedy merges: always the adjacent pair whose merged piece has the highest score
    # (leftmost on ties), until none merges.
    while True:
        best, best_id, best_at = -1e10, -1, -1
        for k in range(len(ids) - 1):
            m = lookup.get(pieces[ids[k]] + pieces[ids[k + 1]])
            if m is not None and scores[m] > best:
                best, best_id, best_at = scores[m], m, k
        if best_at < 0:
            break
        ids[best_at:best_at + 2] = [best_id]
    return ids


def decode_piece(tok, prev, cur):
    pieces = tok[0]
    p = pieces[cur]
    if prev == BOS and p.startswith(b" "):
        p = p[1:]
    if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
        try:
            p = bytes([int(p[3:5], 16)])
        except ValueError:
            pass
    return p


def printable(p):
    """run.c prints a single raw byte only if it is printable or whitespace."""
    if len(p) == 1:
        c = p[0]
        return 32 <= c < 127 or c in (9, 10, 11, 12, 13)
    return True


# ---- model ----------------------------------------------------------------------------
def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_interleaved(x, pos0, theta=10000.0):
    """x[T, H, hs]: rotate consecutive pairs (2i, 2i+1) as complex numbers by pos·θ^(−2i/hs)."""
    T, H, hs = x.shape
    freqs = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.outer(torch.arange(pos0, pos0 + T, dtype=torch.float64), freqs)  # [T, hs/2]
    rot = torch.polar(torch.ones_like(ang), ang)
    xc = torch.view_as_complex(x.reshape(T, H, hs // 2, 2).contiguous())
    out = torch.view_as_real(xc * rot[:, None, :])
    return out.reshape(T, H, hs)


def forward(cfg, w, ids, lora=None):
    """ids: list of token ids (one sequence, positions 0..T−1) → logits [T, V] float64.
    lora: optional {(layer, weight name): (A [r, in], B [out, r], s)}: that projection
    becomes h·Wᵀ + s·(h·Aᵀ)·Bᵀ (B's rows in this file's interleaved q/k order)."""
    T = len(ids)
    dim, nh, nkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hs = dim // nh

    def proj(h, l, name):
        y = h @ w[name][l].T
        if lora and (l, name) in lora:
            a, b, s = lora[(l, name)]
            y = y + s * ((h @ a.T) @ b.T)
        return y

    x = w["tok"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["n_layers"]):
        h = rmsnorm(x, w["rms_att"][l])
        q = proj(h, l, "wq").view(T, nh, hs)
        k = proj(h, l, "wk").view(T, nkv, hs)
        v = proj(h, l, "wv").view(T, nkv, hs)
        q, k = rope_interleaved(q, 0), rope_interleaved(k, 0)
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hs) + mask
        att = torch.softmax(att, dim=-1)
        o = torch.einsum("hts,shd->thd", att, v).reshape(T, dim)
        x = x + proj(o, l, "wo")
        h = rmsnorm(x, w["rms_ffn"][l])
        x = x + proj(torch.nn.functional.silu(proj(h, l, "w1")) * proj(h, l, "w3"), l, "w2")
    x = rmsnorm(x, w["rms_final"])
    return x @ w["wcls"].T


# ---- modes ----------------------------------------------------------------------------
def generate(cfg, w, tok, prompt, steps):
    steps = min(steps, cfg["seq_len"])
    ids = encode(prompt.encode("utf-8"), tok)
    out = bytearray()
    seq = [ids[0]]  # like run.c: position pos holds seq[pos]; steps counts positions
    pos = 0
    while pos < steps:
        if pos < len(ids) - 1:  # still inside the prompt: the next token is forced
            nxt = ids[pos + 1]
        else:
            nxt = int(torch.argmax(forward(cfg, w, seq)[-1]))
        pos += 1
        if nxt == BOS:
            break
        p = decode_piece(tok, seq[-1], nxt)
        if printable(p):
            out += p
        seq.append(nxt)
    return bytes(out) + b"\n"


def evaluate(cfg, w, tok, path):
    ids = encode(open(path, "rb").read(), tok)
    L = cfg["seq_len"]
    total, count = 0.0, 0
    for s in range(0, len(ids) - 1, L):
        win = ids[s:s + L + 1]
        logits = forward(cfg, w, win[:-1])
        lp = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(win[1:])
        total += float(-lp[torch.arange(len(tgt)), tgt].sum())
        count += len(tgt)
    return total / count, count


# HF module name (what chaingrad's adapter files use) → this file's weight name.
HF_TO_LLAMA2C = {"self_attn.q_proj": "wq", "self_attn.k_proj": "wk", "self_attn.v_proj": "wv",
                 "self_attn.o_proj": "wo", "mlp.gate_proj": "w1", "mlp.down_proj": "w2", "mlp.up_proj": "w3"}


def hf_rows_to_interleaved(b, n_heads):
    """HF's q/k rows are llama2.c's permuted per head: llama2.c row h·hs + 2i + j is HF row
    h·hs + j·hs/2 + i. Returns b's rows in llama2.c's (interleaved) order."""
    out_dim, r = b.shape
    hs = out_dim // n_heads
    return b.view(n_heads, 2, hs // 2, r).transpose(1, 2).reshape(out_dim, r)


def sgd(cfg, w, tok, text_path, rank, alpha, lr, steps, seed, adapter_out):
    """Plain SGD on a LoRA adapter over the whole file as one sequence (BOS first), as
    `finetune --text F --optimizer sgd --schedule constant --warmup 0 --clip 0
    --weight-decay 0 --adapter-in ADAPTER` runs it. The initial adapter (A ~ U(±1/√in),
    B ~ N(0, 0.002²): non-zero, so both factors get gradients from step 1) is written to
    adapter_out in chaingrad's adapter-file layout. Returns the loss before each update."""
    from safetensors_writer import write_safetensors
    ids = encode(open(text_path, "rb").read(), tok)[:cfg["seq_len"] + 1]
    g = torch.Generator().manual_seed(seed)
    targets = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.up_proj", "mlp.down_proj"]
    s = alpha / rank
    params, lora, tensors = [], {}, []
    for l in range(cfg["n_layers"]):
        for t in targets:
            wt = w[HF_TO_LLAMA2C[t]][l]
            out_dim, in_dim = wt.shape
            a = ((torch.rand(rank, in_dim, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(in_dim))
            b_hf = torch.randn(out_dim, rank, generator=g, dtype=torch.float64) * 0.002
            # chaingrad rounds the file to float32: start from exactly those values.
            a, b_hf = a.float().double().requires_grad_(), b_hf.float().double().requires_grad_()
            name = f"base_model.model.model.layers.{l}.{t}"
            tensors += [(name + ".lora_A.weight", a), (name + ".lora_B.weight", b_hf)]
            params += [a, b_hf]
            lora[(l, HF_TO_LLAMA2C[t])] = (a, b_hf, s)
    write_safetensors(adapter_out, tensors, {
        "format": "pt", "peft_type": "LORA", "r": rank, "lora_alpha": f"{alpha:g}", "chain_length": 0,
        "chain_bias": 0, "init": "kaiming", "target_modules": ",".join(t.split(".")[1] for t in targets)})
    nh, nkv = cfg["n_heads"], cfg["n_kv_heads"]
    losses = []
    tgt = torch.tensor(ids[1:])
    for _ in range(steps):
        view = {k: (a, hf_rows_to_interleaved(b, nh if k[1] == "wq" else nkv) if k[1] in ("wq", "wk") else b, s)
                for k, (a, b, s) in lora.items()}
        logits = forward(cfg, w, ids[:-1], view)
        loss = torch.nn.functional.cross_entropy(logits, tgt)
        for p in params:
            p.grad = None
        loss.backward()
        losses.append(float(loss))
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
    return losses, len(ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["generate", "evaluate", "logits", "sgd"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--prompt", default="")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--text")
    ap.add_argument("--tokens", help="comma-separated token ids (logits mode)")
    ap.add_argument("--out")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rank", type=int, default=2, help="sgd: LoRA rank")
    ap.add_argument("--alpha", type=float, default=32.0, help="sgd: LoRA alpha (s = alpha/rank)")
    ap.add_argument("--lr", type=float, default=0.05, help="sgd: learning rate")
    ap.add_argument("--seed", type=int, default=0, help="sgd: seed of the initial adapter")
    ap.add_argument("--adapter-out", help="sgd: write the initial adapter here")
    a = ap.parse_args()
    cfg, w = read_checkpoint(a.model)
    tok = read_tokenizer(a.tokenizer, cfg["vocab_size"]) if a.tokenizer else None
    if a.mode == "sgd":
        losses, n = sgd(cfg, w, tok, a.text, a.rank, a.alpha, a.lr, a.steps, a.seed, a.adapter_out)
        with open(a.out, "w") as f:
            json.dump({"mode": "sgd", "rank": a.rank, "alpha": a.alpha, "lr": a.lr, "steps": a.steps,
                       "seed": a.seed, "tokens": n, "losses": losses}, f, indent=1)
            f.write("\n")
        return
    with torch.no_grad():
        if a.mode == "generate":
            sys.stdout.buffer.write(generate(cfg, w, tok, a.prompt, a.steps))
        elif a.mode == "evaluate":
            loss, n = evaluate(cfg, w, tok, a.text)
            if a.json:
                print(json.dumps({"loss": loss, "tokens": n, "ppl": math.exp(loss)}))
            else:
                print(f"loss {loss:.6f} nats/token, ppl {math.exp(loss):.4f}, tokens {n}")
        else:
            ids = [int(t) for t in a.tokens.split(",")] if a.tokens else encode(a.prompt.encode(), tok)
            logits = forward(cfg, w, ids)
            with open(a.out, "w") as f:
                f.write(f"# llama_ref.py logits: tokens {','.join(map(str, ids))}\n")
                f.write(f"{len(ids)} {cfg['vocab_size']}\n")
                for row in logits:
                    f.write(" ".join(f"{v:.8e}" for v in row.tolist()) + "\n")


if __name__ == "__main__":
    main()
