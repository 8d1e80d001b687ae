#!/usr/bin/env python3
"""tests/reference/real_models_ref.py — references for the real-model readers, from PyPI's
`tokenizers`, `transformers` (its own GGUF loader), `gguf` and `torch`; shares no code with the
C++. Run with the venv (scripts/make-venv.sh), from the repository root:

  $CG_VENV/bin/python tests/reference/real_models_ref.py goldens
      writes tests/golden/tokenizer_json.json (ids of a varied text for SmolLM2's and Llama-2's
      tokenizer.json), tests/golden/gguf_dequant.json (random blocks of every ggml type read by
      the C++, dequantized by gguf-py), tests/golden/smollm2_chat.json (greedy chat replies of
      SmolLM2-135M-Instruct loaded from the GGUF by transformers, float32) and
      tests/golden/smollm2_loss.json (its mean next-token loss on two short texts).
  $CG_VENV/bin/python tests/reference/real_models_ref.py compare-tokenizers BUILD_TOKENIZE FILE...
      encodes each whole file with HF tokenizers and with BUILD_TOKENIZE for the three
      tokenizers and reports id-for-id equality (used by scripts/check-tokenizers.sh)."""
import json
import os
import subprocess
import sys

import numpy as np

DATA = "../shared/data"
SMOL_TOK = f"{DATA}/smollm2/tokenizer.json"
SMOL_GGUF = f"{DATA}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA_TOK = f"{DATA}/llama2_tokenizer/tokenizer.json"

TEXT = (
    "Hello world! It's 2024; they'll say we've 3.14159 reasons. I'M LOUD, 'quoted' text.\n\n"
    "   three leading spaces, tabs\t\there, trailing spaces   \n"
    "Numbers: 1234567890 and ١٢٣ (Arabic-Indic) and ½ ⅓ Ⅻ.\r\n"
    "Unicode: café naïve résumé Ελληνικά Русский 中文字符 日本語のテキスト 한국어 \U0001F600\U0001F680 ✓ — “smart quotes” …\n"
    "Code: def f(x):\n    return x**2  # comment\n\n\n\n"
    "Special tokens: <|im_start|>user\nhi there<|im_end|>\n<|endoftext|> and <s> </s> mixed in.\n"
    "Whitespace runs:      \n\n \t \u00a0 nbsp\u2028line-sep  end.\n"
    "Contractions: don't can't won't I'd you're we've she'll it's 'S 'T.\n"
    "URLs https://example.com/path?q=1&r=2 and emails a.b@c.de, $100.00, 50%, #hash @user.\n"
)
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Name three primary colors.",
    "Write a haiku about the sea.",
    "What is 12 plus 30?",
    "Explain what a neural network is in one sentence.",
    "Give me a synonym for happy.",
    "Who wrote Romeo and Juliet?",
]


def hf_tok(path):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(path)


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def goldens_tokenizer():
    out = {"text": TEXT}
    for name, path in [("smollm2", SMOL_TOK), ("llama2", LLAMA_TOK)]:
        out[name] = hf_tok(path).encode(TEXT, add_special_tokens=False).ids
    write("tests/golden/tokenizer_json.json", out)


def goldens_dequant():
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import dequantize
    from gguf.constants import GGML_QUANT_SIZES
    rng = np.random.default_rng(16)
    cases = []
    for q in [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        block, nbytes = GGML_QUANT_SIZES[q]
        nblocks = 2
        raw = bytearray(rng.integers(0, 256, size=nblocks * nbytes, dtype=np.uint8).tobytes())
        # f16 scales: keep them finite and small (exponent bits cleared to a sane range)
        def fix_half(off):
            h = rng.integers(0, 1 << 10) | (rng.integers(10, 16) << 10) | (rng.integers(0, 2) << 15)
            raw[off:off + 2] = int(h).to_bytes(2, "little")
        for b in range(nblocks):
            base = b * nbytes
            if q in (Q.Q8_0, Q.Q4_0, Q.Q5_0):
                fix_half(base)
            elif q in (Q.Q4_1, Q.Q5_1, Q.Q4_K, Q.Q5_K):
                fix_half(base); fix_half(base + 2)
            elif q == Q.Q6_K:
                fix_half(base + 208)
        if q == Q.F16:
            raw = bytearray(np.float16(rng.standard_normal(nblocks * nbytes // 2)).tobytes())
        if q == Q.BF16:
            f = np.float32(rng.standard_normal(nblocks * nbytes // 2))
            raw = bytearray((f.view(np.uint32) >> 16).astype(np.uint16).tobytes())
        vals = dequantize(np.frombuffer(bytes(raw), dtype=np.uint8), q).astype(np.float32).ravel()
        cases.append({"type": int(q), "name": q.name, "hex": bytes(raw).hex(),
                      "values": [float(v) for v in vals]})
    write("tests/golden/gguf_dequant.json", {"cases": cases})


def load_model():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(SMOL_GGUF)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    if not tok.chat_template:  # transformers' GGUF loader leaves it out: take it from the file
        from gguf import GGUFReader
        field = GGUFReader(SMOL_GGUF).fields["tokenizer.chat_template"]
        tok.chat_template = bytes(field.parts[field.data[0]]).decode("utf-8")
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    return tok, model


def goldens_model():
    import torch
    torch.manual_seed(0)
    tok, model = load_model()
    fast = hf_tok(SMOL_TOK)
    chats = []
    for p in CHAT_PROMPTS:
        text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        ids = fast.encode(text, add_special_tokens=False).ids
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False,
                                 eos_token_id=[2], pad_token_id=2)
        new = out[0, len(ids):].tolist()
        if new and new[-1] == 2:
            new = new[:-1]
        chats.append({"prompt": p, "prompt_ids": ids, "reply_ids": new, "reply": fast.decode(new)})
        print(p, "→", repr(fast.decode(new)), file=sys.stderr)
    write("tests/golden/smollm2_chat.json", {"max_new_tokens": 32, "chats": chats})
    texts = {"tinyshakespeare_1500": open(f"{DATA}/tinyshakespeare/input.txt", encoding="utf-8").read()[:1500],
             "tokenizer_text": TEXT}
    losses = {}
    for name, t in texts.items():
        ids = fast.encode(t, add_special_tokens=False).ids  # the GGUF says add_bos_token = false
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        loss = -lp.gather(1, torch.tensor(ids[1:])[:, None]).mean().item()
        losses[name] = {"text": t, "tokens": len(ids) - 1, "loss": loss}
        print(name, len(ids) - 1, loss, file=sys.stderr)
    write("tests/golden/smollm2_loss.json", losses)


def compare(tool, files):
    import tempfile
    ok = True
    for label, hf_path, ours in [("smollm2 tokenizer.json", SMOL_TOK, SMOL_TOK),
                                 ("smollm2 GGUF vocab", SMOL_TOK, SMOL_GGUF),
                                 ("llama2 tokenizer.json", LLAMA_TOK, LLAMA_TOK)]:
        if os.environ.get("CG_CHECK_ONLY", "") not in label:  # e.g. CG_CHECK_ONLY=llama2
            continue
        t = hf_tok(hf_path)
        for f in files:
            raw = open(f, "rb").read()
            note = ""
            try:
                text = raw.decode("utf-8")
                path = f
            except UnicodeDecodeError:  # HF tokenizers takes only Unicode text: give both sides UTF-8
                text = raw.decode("latin-1")
                tmp = tempfile.NamedTemporaryFile(suffix=".txt", delete=False)
                tmp.write(text.encode("utf-8"))
                tmp.close()
                path = tmp.name
                note = " (ISO-8859-1, compared as its UTF-8 conversion)"
            want = t.encode(text, add_special_tokens=False).ids
            r = subprocess.run([tool, "--tokenizer", ours, "--file", path, "--json", "--check"],
                               capture_output=True, text=True)
            if r.returncode not in (0, 1):
                print(f"FAIL {label} {f}: tokenize exit {r.returncode}: {r.stderr.strip()}")
                ok = False
                continue
            got = json.loads(r.stdout)["ids"]
            trip = "round trip exact"
            if r.returncode == 1:  # decode(encode(x)) != x: acceptable only where HF's own decode differs alike
                hf_back = t.decode(want, skip_special_tokens=False)
                if hf_back == text:
                    trip = "ROUND TRIP DIFFERS"
                    ok = False
                else:
                    trip = "round trip differs as HF's own decode does (added tokens such as <s> inside the text)"
            if got == want:
                print(f"{'ok  ' if 'DIFFERS' not in trip else 'FAIL'} {label:24s} {f}: {len(got)} ids equal, {trip}{note}")
            else:
                k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                print(f"FAIL {label:24s} {f}: {len(got)} vs {len(want)} ids, first difference at {k}: "
                      f"ours {got[k:k + 5]} HF {want[k:k + 5]}{note}")
                ok = False
    return ok


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "goldens":
        what = sys.argv[2:] or ["tokenizer", "dequant", "model"]
        if "tokenizer" in what: goldens_tokenizer()
        if "dequant" in what: goldens_dequant()
        if "model" in what: goldens_model()
    elif len(sys.argv) == 3 and sys.argv[1] == "hf-folder-loss":
        # The HF folder that `build/bin/convert --save-hf DIR` wrote from the GGUF, loaded by
        # transformers: its losses on the golden texts against tests/golden/smollm2_loss.json.
        import torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32).eval()
        fast = hf_tok(SMOL_TOK)
        worst = 0.0
        for name, v in json.load(open("tests/golden/smollm2_loss.json")).items():
            ids = fast.encode(v["text"], add_special_tokens=False).ids
            with torch.no_grad():
                lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double()[:-1], dim=-1)
            loss = -lp.gather(1, torch.tensor(ids[1:])[:, None]).mean().item()
            rel = abs(loss - v["loss"]) / v["loss"]
            worst = max(worst, rel)
            print(f"{name}: HF folder loss {loss:.6f}, GGUF reference {v['loss']:.6f}, relative difference {rel:.2e}")
        sys.exit(0 if worst <= 1e-4 else 1)
    elif len(sys.argv) >= 4 and sys.argv[1] == "compare-tokenizers":
        sys.exit(0 if compare(sys.argv[2], sys.argv[3:]) else 1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
