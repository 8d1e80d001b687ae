#!/usr/bin/env python3
"""Check that a Llama safetensors file written by chaingrad loads in Hugging Face
`transformers` unchanged and gives the same loss as `build/bin/evaluate`.

usage: scripts/hf_check.py MODEL.safetensors TEXT_FILE EVALUATE_JSON
  MODEL.safetensors  written by chaingrad (config JSON in the header metadata "config")
  TEXT_FILE          a short text (shorter than the model's context), byte tokenizer
  EVALUATE_JSON      the output of: build/bin/evaluate --model M --tokenizer byte --text F --json
Exit status 0 when the two losses agree to 1e-4. Needs torch and transformers: run it with
the venv of scripts/make-venv.sh ($CG_VENV/bin/python); scripts/test-hf.sh, part of make
test, does so on the CPU whenever that venv exists.
"""
import json
import os
import struct
import sys
import tempfile


def main():
    model, text_file, eval_json = sys.argv[1:4]
    import torch
    from transformers import LlamaForCausalLM

    with open(model, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    config = json.loads(header["__metadata__"]["config"])
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        os.symlink(os.path.abspath(model), os.path.join(d, "model.safetensors"))
        m = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    m.eval()
    data = open(text_file, "rb").read()
    ids = [256] + list(data)  # chaingrad's byte tokenizer: BOS = 256, then the bytes
    if len(ids) > config["max_position_embeddings"] + 1:
        sys.exit("hf_check: text longer than the context; use a shorter file")
    x = torch.tensor([ids[:-1]])
    y = torch.tensor([ids[1:]])
    with torch.no_grad():
        logits = m(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits[0], y[0]).item()
    ours = json.load(open(eval_json))["loss"]
    print(f"transformers loss {loss:.6f}, chaingrad evaluate loss {ours:.6f}, difference {abs(loss - ours):.2e}")
    sys.exit(0 if abs(loss - ours) <= 1e-4 else 1)


if __name__ == "__main__":
    main()
