#!/usr/bin/python3
"""tests/reference/dump_grads_ref.py — PyTorch reference for `gradflow --dump-grads`.

Self-contained (shares no code with the C++ or with the other reference scripts; Debian's
/usr/bin/python3 with torch). It builds a small random Llama with the byte tokenizer's vocab
(258: bytes 0..255, BOS 256, EOS 257), a LinChain adapter (n = 3, r = 4) with fixed non-zero
values on every projection, encodes a fixed text as [BOS] + its bytes (cut to seq_len + 1
tokens, as the tool does), and computes in float64 the mean next-token cross-entropy and the
gradient of every adapter tensor.

Files written to --out (default tests/golden):
  dumpgrads_base.safetensors     HF Llama (metadata "config" = HF config JSON), F32
  dumpgrads_adapter.safetensors  the adapter in PEFT layout (models/io/adapter_file.h), F32
  dumpgrads_text.txt             the text
  dumpgrads_expected.safetensors "loss" [1] and the gradient of every adapter tensor under
                                 its PEFT name, in the file's layout (F64)
Model convention (HF nn.Linear, column vectors): for a target module with W[out, in]
  y = W x + s · B · M₂ · M₁ · M₀ · A_peft · x,  s = alpha / r,
with A_peft = lora_A.weight [r, in], M_j = lora_mixer.{j}.weight [r, r], B = lora_B.weight.
The values are rounded to float32 (what the files hold) before the float64 computation.
"""
import argparse
import json
import math
import os

import torch
from safetensors_writer import write_safetensors

DT = torch.float64
CFG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=258, max_position_embeddings=48, rms_norm_eps=1e-5, rope_theta=10000.0)
RANK, ALPHA, CHAIN = 4, 8.0, 3
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TEXT = ("Once upon a time, a little chain of matrices learned to carry gradients "
        "from the loss all the way back to A.\n")
BOS = 256
PREFIX = "base_model.model."


def f32(t):
    """Round to float32 and back: the values the files hold."""
    return t.to(torch.float32).to(DT)


def make_base(gen):
    d, h, v = CFG["hidden_size"], CFG["intermediate_size"], CFG["vocab_size"]
    kvd = d // CFG["num_attention_heads"] * CFG["num_key_value_heads"]

    def lin(o, i):
        return f32((torch.rand(o, i, generator=gen, dtype=DT) * 2 - 1) / math.sqrt(i))

    def norm(n):
        return f32(1.0 + 0.1 * torch.randn(n, generator=gen, dtype=DT))

    w = {"model.embed_tokens.weight": f32(torch.randn(v, d, generator=gen, dtype=DT))}
    for i in range(CFG["num_hidden_layers"]):
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


def make_adapter(base, gen):
    """PEFT-layout tensors {name: leaf tensor} for every target module, non-zero B."""
    t = {}
    for name, w in base.items():
        mod = name[: -len(".weight")]
        if not any(mod.endswith("." + x) for x in TARGETS):
            continue
        out_f, in_f = w.shape
        t[PREFIX + mod + ".lora_A.weight"] = f32((torch.rand(RANK, in_f, generator=gen, dtype=DT) * 2 - 1) / math.sqrt(in_f))
        for j in range(CHAIN):
            m = torch.eye(RANK, dtype=DT) + (torch.rand(RANK, RANK, generator=gen, dtype=DT) * 2 - 1) * 0.4
            t[PREFIX + mod + f".lora_mixer.{j}.weight"] = f32(m)
        t[PREFIX + mod + ".lora_B.weight"] = f32(0.2 * torch.randn(out_f, RANK, generator=gen, dtype=DT))
    for v in t.values():
        v.requires_grad_(True)
    return t


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["rms_norm_eps"]) * w


def rope(x):  # x [B, T, H, D], rotate-half (HF Llama)
    _, t, _, d = x.shape
    inv = 1.0 / (CFG["rope_theta"] ** (torch.arange(0, d, 2, dtype=DT) / d))
    ang = torch.outer(torch.arange(t, dtype=DT), inv)
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def loss_of(base, ad, ids):
    nh, nkv = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    hd = CFG["hidden_size"] // nh
    scale = ALPHA / RANK
    inp, tgt = ids[:-1][None, :], ids[1:]
    t = inp.shape[1]

    def linear(mod, x):
        y = x @ base[mod + ".weight"].T
        key = PREFIX + mod
        if key + ".lora_A.weight" in ad:
            h = x @ ad[key + ".lora_A.weight"].T
            for j in range(CHAIN):
                h = h @ ad[key + f".lora_mixer.{j}.weight"].T
            y = y + scale * (h @ ad[key + ".lora_B.weight"].T)
        return y

    h = base["model.embed_tokens.weight"][inp]
    mask = torch.full((t, t), float("-inf"), dtype=DT).triu(1)
    for i in range(CFG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rmsnorm(h, base[p + "input_layernorm.weight"])
        q = rope(linear(p + "self_attn.q_proj", x).view(1, t, nh, hd)).transpose(1, 2)
        k = rope(linear(p + "self_attn.k_proj", x).view(1, t, nkv, hd)).transpose(1, 2)
        v = linear(p + "self_attn.v_proj", x).view(1, t, nkv, hd).transpose(1, 2)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(1, t, nh * hd)
        h = h + linear(p + "self_attn.o_proj", o)
        x = rmsnorm(h, base[p + "post_attention_layernorm.weight"])
        h = h + linear(p + "mlp.down_proj", torch.nn.functional.silu(linear(p + "mlp.gate_proj", x)) *
                       linear(p + "mlp.up_proj", x))
    logits = rmsnorm(h, base["model.norm.weight"]) @ base["lm_head.weight"].T
    return torch.nn.functional.cross_entropy(logits[0], tgt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20241126)
    base = make_base(gen)
    ad = make_adapter(base, gen)

    ids = torch.tensor([BOS] + list(TEXT.encode()), dtype=torch.long)
    ids = ids[: CFG["max_position_embeddings"] + 1]  # the tool's truncation to seq_len (+1 target)
    loss = loss_of(base, ad, ids)
    loss.backward()

    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", tie_word_embeddings=False,
                  attention_bias=False, torch_dtype="float32", **CFG)
    write_safetensors(os.path.join(args.out, "dumpgrads_base.safetensors"), list(base.items()),
                      {"config": json.dumps(config), "format": "pt"})
    write_safetensors(os.path.join(args.out, "dumpgrads_adapter.safetensors"), list(ad.items()),
                      {"format": "pt", "peft_type": "LINCHAIN", "r": RANK, "lora_alpha": ALPHA,
                       "target_modules": ",".join(TARGETS), "chain_length": CHAIN, "init": "kaiming"})
    with open(os.path.join(args.out, "dumpgrads_text.txt"), "w") as f:
        f.write(TEXT)
    expected = [("loss", loss.detach().reshape(1))] + [(k, v.grad) for k, v in ad.items()]
    write_safetensors(os.path.join(args.out, "dumpgrads_expected.safetensors"), expected,
                      {"tokens": len(ids) - 1, "text_bytes": len(TEXT.encode())}, dtype="F64")
    gmin = min(v.grad.abs().max().item() for v in ad.values())
    print(f"dump_grads_ref: {len(ids) - 1} predicted tokens (text {len(TEXT.encode())} bytes), loss {loss.item():.8f}, "
          f"{len(ad)} adapter tensors, smallest max|grad| {gmin:.3e}")


if __name__ == "__main__":
    main()
