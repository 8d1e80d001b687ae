#!/usr/bin/env python3
"""bench/bench_real.py — SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantized to float32) prompt
and decode speed, chaingrad's generate --chat against transformers' generate, in one run on the
same machine and thread count. Run from the repository root with the venv:
  $CG_VENV/bin/python bench/bench_real.py [THREADS]
Prints a markdown table (tokens/s; ratios are chaingrad / transformers)."""
import os
import re
import subprocess
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
os.environ["OMP_NUM_THREADS"] = str(threads)
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

torch.set_num_threads(threads)
GGUF = "../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "Write a long story about a dragon who learns to read. " * 6
NEW = 64

r = subprocess.run(["build/bin/generate", "--model", GGUF, "--chat", PROMPT, "--temperature", "0", "--steps", str(NEW),
                    "--threads", str(threads)], capture_output=True, text=True, check=True)
m = re.search(r"prompt (\d+) tokens at ([\d.]+) tok/s; (\d+) new tokens at ([\d.]+) tok/s", r.stderr)
cg_prompt_n, cg_prompt, cg_new, cg_decode = int(m[1]), float(m[2]), int(m[3]), float(m[4])

d, f = os.path.split(GGUF)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
tok = Tokenizer.from_file("../shared/data/smollm2/tokenizer.json")
text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n")
ids = torch.tensor([tok.encode(text, add_special_tokens=False).ids])
assert ids.shape[1] == cg_prompt_n, (ids.shape, cg_prompt_n)
with torch.no_grad():
    model(ids)  # warm-up
    t0 = time.perf_counter()
    model(ids, use_cache=True)
    t_prompt = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=2)
    t_gen = time.perf_counter() - t0
n_new = out.shape[1] - ids.shape[1]
hf_prompt = ids.shape[1] / t_prompt
hf_decode = (n_new - 1) / max(t_gen - t_prompt, 1e-9)
print(f"| SmolLM2-135M f32, {threads} threads | chaingrad tok/s | transformers tok/s | ratio |")
print("|---|---|---|---|")
print(f"| prompt ({cg_prompt_n} tokens, one forward) | {cg_prompt:.1f} | {hf_prompt:.1f} | {cg_prompt / hf_prompt:.2f} |")
print(f"| decode ({cg_new} vs {n_new} new tokens) | {cg_decode:.1f} | {hf_decode:.1f} | {cg_decode / hf_decode:.2f} |")
