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

  scripts/peft_check.py make-authors BASE_HF OUT_DIR IDS_JSON [--moslora]
      Writes the folder the LinChain authors' PEFT fork saves (github wangfrombupt/linchain,
      tuners/lora.py: lora_use_mixer, mixer_num 3, a chain of nn.Linear(r, r) WITH biases
      between lora_A and lora_B; with --moslora that of MoSLoRA's fork, github
      wutaiqiang/MoSLoRA: one lora_AB = nn.Linear(r, r, bias=False)), from a PyTorch layer
      written as the forks' forward is (not PEFT's, which has neither), with random non-zero B,
      and prints {"loss": ...} of that model on the ids.

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


def make_authors(base_hf, out, ids_json, moslora):
    import os

    import torch
    from safetensors.torch import save_file

    torch.manual_seed(8)
    model = load(base_hf)
    r, alpha, n = 4, 8, 3
    targets = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]

    class ForkLinear(torch.nn.Module):
        """The forks' Linear: y = base(x) + s * lora_B(chain(lora_A(x))), s = lora_alpha / r."""

        def __init__(self, base):
            super().__init__()
            self.base = base
            self.lora_A = torch.nn.Linear(base.in_features, r, bias=False)
            if moslora:
                self.lora_AB = torch.nn.Linear(r, r, bias=False)
            else:
                self.lora_mixer = torch.nn.ModuleList([torch.nn.Linear(r, r) for _ in range(n)])
            self.lora_B = torch.nn.Linear(r, base.out_features, bias=False)
            torch.nn.init.normal_(self.lora_B.weight, std=0.2)  # the forks start B at 0: non-zero here

        def forward(self, x):
            h = self.lora_A(x)
            for m in [self.lora_AB] if moslora else self.lora_mixer:  # mixer 0 first
                h = m(h)
            return self.base(x) + self.lora_B(h) * (alpha / r)

    state = {}
    for name, mod in list(model.named_modules()):
        if name.split(".")[-1] in targets:
            parent, child = name.rsplit(".", 1)
            layer = ForkLinear(mod)
            setattr(model.get_submodule(parent), child, layer)
            for k, v in layer.state_dict().items():
                if k.startswith("lora_"):
                    state[f"base_model.model.{name}.{k}"] = v.contiguous()
    os.makedirs(out, exist_ok=True)
    save_file(state, os.path.join(out, "adapter_model.safetensors"), {"format": "pt"})
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.05,
           "target_modules": targets, "bias": "none", "fan_in_fan_out": False, "merge_weights": False,
           "enable_lora": None, "modules_to_save": None, "inference_mode": True,
           "base_model_name_or_path": base_hf, "lora_use_mixer": True}
    if not moslora:
        cfg["mixer_num"] = n
    json.dump(cfg, open(os.path.join(out, "adapter_config.json"), "w"), indent=2)
    model.eval()
    print(json.dumps({"loss": loss_of(model, base_hf, ids_json)}))


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "score":
        score(*sys.argv[2:6])
    elif len(sys.argv) >= 5 and sys.argv[1] == "make-authors":
        make_authors(sys.argv[2], sys.argv[3], sys.argv[4], "--moslora" in sys.argv[5:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4], "--rslora" in sys.argv[5:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
