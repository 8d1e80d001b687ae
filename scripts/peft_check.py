#!/usr/bin/env python3
"""Adapters moving between chaingrad and Hugging Face PEFT, checked with the real libraries.

usage:
  scripts/peft_check.py score BASE_HF ADAPTER_DIR IDS_JSON OURS_JSON
      Loads the HF model folder BASE_HF (transformers), puts the PEFT adapter folder
      ADAPTER_DIR on it with PeftModel.from_pretrained, and compares its mean next-token
      loss on the ids with chaingrad's (the output of build/bin/evaluate --json).
  scripts/peft_check.py make BASE_HF OUT_DIR IDS_JSON [--rslora]
      Makes a LoRA adapter with PEFT itself (get_peft_model, then random non-zero A and B,
      save_pretrained: safetensors), on q,k,v,o,gate,up,down (with --rslora: use_rslora and
      target_modules "all-linear"), and prints {"loss": ...} of the adapted model on the ids.

IDS_JSON is the output of build/bin/tokenize --json (no BOS): the config's bos_token_id is
put first, as evaluate does for a tokenizer that adds BOS; the text must fit the context.
"score" exits 0 when the losses agree to 1e-5 relative and prints the difference. Run it
with the venv of scripts/make-venv.sh ($CG_VENV/bin/python); scripts/test-hf.sh does.
"""
import json
import sys


def load(base_hf):
    import torch
    from transformers import LlamaForCausalLM

    m = LlamaForCausalLM.from_pretrained(base_hf, torch_dtype=torch.float32)
    m.eval()
    return m


def loss_of(model, base_hf, ids_json):
    import torch

    cfg = json.load(open(f"{base_hf}/config.json"))
    ids = [cfg["bos_token_id"]] + json.load(open(ids_json))["ids"]
    if len(ids) > cfg["max_position_embeddings"] + 1:
        sys.exit("peft_check: text longer than the context; use a shorter file")
    x = torch.tensor([ids[:-1]])
    y = torch.tensor([ids[1:]])
    with torch.no_grad():
        logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(logits[0].double(), y[0]).item()


def score(base_hf, adapter, ids_json, ours_json):
    from peft import PeftModel

    model = PeftModel.from_pretrained(load(base_hf), adapter)
    model.eval()
    theirs = loss_of(model, base_hf, ids_json)
    ours = json.load(open(ours_json))["loss"]
    rel = abs(theirs - ours) / abs(theirs)
    print(f"peft loss {theirs:.7f}, chaingrad loss {ours:.7f}, relative difference {rel:.2e}")
    sys.exit(0 if rel <= 1e-5 else 1)


def make(base_hf, out, ids_json, rslora):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(7)
    targets = "all-linear" if rslora else ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, use_rslora=rslora,
                     task_type="CAUSAL_LM")
    model = get_peft_model(load(base_hf), cfg)
    with torch.no_grad():  # PEFT starts B at zero: give both factors values, B non-zero
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    model.eval()
    model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
    print(json.dumps({"loss": loss_of(model, base_hf, ids_json)}))


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "score":
        score(*sys.argv[2:6])
    elif len(sys.argv) >= 5 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4], "--rslora" in sys.argv[5:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
