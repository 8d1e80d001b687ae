#!/usr/bin/env bash
# bench/bf16_tracking.sh — does --precision bf16 training track f32? stories260K fine-tuned on
# tinyshakespeare with each adapter (LoRA, MoSLoRA, LinChain n = 3, r 8) for STEPS steps and
# 3 seeds in both precisions, validation loss every STEPS/10 steps; prints the final
# validation loss of every run and, per adapter, the largest |bf16 − f32| difference over the
# whole curve next to the f32 seed spread (max − min over seeds) at the end. Run from the repo root after `make`. Usage: bench/bf16_tracking.sh [STEPS] [OUT_DIR]
set -euo pipefail
steps=${1:-500}
out=${2:-build/bf16_tracking}
d=../shared/data
bin=build/bin/finetune
[[ -x $bin ]] || { echo "bf16_tracking: $bin not found (run make from the repo root)" >&2; exit 2; }
[[ -f $d/stories260K/stories260K.bin ]] || { echo "bf16_tracking: $d/stories260K not found" >&2; exit 2; }
mkdir -p "$out"
common=(--model $d/stories260K/stories260K.bin --tokenizer $d/stories260K/tok512.bin
        --data $d/tinyshakespeare/input.txt --steps "$steps" --batch 4 --seq 64 --lr 2e-3
        --rank 8 --eval-every $((steps / 10)) --eval-batches 8 --threads 1)
run() {  # adapter seed precision
  "$bin" "${common[@]}" --adapter "$1" --seed "$2" --precision "$3" --metrics "$out/$1-s$2-$3.jsonl" \
    >"$out/$1-s$2-$3.log" 2>&1
}
for a in lora moslora linchain; do
  for s in 0 1 2; do
    run "$a" "$s" f32 & run "$a" "$s" bf16 & wait
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
def curve(path):
    return [json.loads(l)["val_loss"] for l in open(path) if "val_loss" in json.loads(l)]
def final_val(path):
    return curve(path)[-1]
print(f"{'adapter':9} {'seed':>4} {'f32 val':>9} {'bf16 val':>9} {'diff':>8}")
for a in ["lora", "moslora", "linchain"]:
    f = {s: final_val(f"{out}/{a}-s{s}-f32.jsonl") for s in range(3)}
    b = {s: final_val(f"{out}/{a}-s{s}-bf16.jsonl") for s in range(3)}
    for s in range(3):
        print(f"{a:9} {s:>4} {f[s]:9.4f} {b[s]:9.4f} {b[s]-f[s]:+8.4f}")
    gap = max(abs(x - y) for s in range(3)
              for x, y in zip(curve(f"{out}/{a}-s{s}-f32.jsonl"), curve(f"{out}/{a}-s{s}-bf16.jsonl")))
    print(f"{a:9}  max |bf16 - f32| over the curves {gap:.4f}, "
          f"f32 seed spread {max(f.values())-min(f.values()):.4f}")
PY
