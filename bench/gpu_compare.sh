#!/usr/bin/env bash
# bench/gpu_compare.sh — chaingrad vs PyTorch eager on the same GPU, same configs, in one
# run: ms/step and tokens/s of pretraining and of LoRA / LinChain fine-tuning (r=16, n=3,
# targets q,k,v,up,down; f32, TF32 off on both sides). Writes a markdown table to
# $OUT/gpu_compare.md (OUT defaults to build/gpu-bench) and prints it.
#   usage: [OUT=dir] [STEPS=20] [TORCH_REF=bench/torch_ref.py] bench/gpu_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-bench}
STEPS=${STEPS:-20}
TORCH_REF=${TORCH_REF:-bench/torch_ref.py}
PY=${PY:-python3}
mkdir -p "$OUT"
declare -A CFG=(
  [small]="--dim 256 --layers 6 --heads 8 --kv-heads 4 --hidden 688 --seq 256 --batch 8"
  [base]="--dim 768 --layers 12 --heads 12 --kv-heads 4 --hidden 2048 --seq 512 --batch 8"
)
median_ms() {  # median step time of a metrics file, first 5 steps dropped (warm-up)
  "$PY" -c "import json,sys,statistics; r=[json.loads(l)['ms'] for l in open(sys.argv[1])][5:]; print(statistics.median(r))" "$1"
}
table="$OUT/gpu_compare.md"
{
  echo "| config | mode | chaingrad ms/step | PyTorch ms/step | PyTorch / chaingrad | chaingrad tok/s |"
  echo "|---|---|---|---|---|---|"
} > "$table"
for name in small base; do
  read -r -a c <<< "${CFG[$name]}"
  # torch_ref names its flags like ours except --kv-heads; vocab 258 = our byte tokenizer.
  tc=("${c[@]}" --vocab 258)
  tokens=$(( $(sed -E 's/.*--seq ([0-9]+).*/\1/' <<< "${CFG[$name]}") * 8 ))
  build/bin/train --device cuda --arith add --arith-lines 40000 "${c[@]}" --steps "$STEPS" --eval-every 0 \
    --eval-batches 0 --lr 1e-3 --seed 1 --metrics "$OUT/$name-pretrain.jsonl" --out "$OUT/$name-base.safetensors" \
    --log-every 1000 2> "$OUT/$name-pretrain.log"
  for mode in pretrain lora linchain; do
    if [ "$mode" != pretrain ]; then
      build/bin/finetune --device cuda --model "$OUT/$name-base.safetensors" --arith add --arith-lines 40000 \
        --seq "${c[11]}" --batch 8 --adapter "$mode" --rank 16 --chain 3 --alpha 32 --steps "$STEPS" --eval-every 0 \
        --eval-batches 0 --seed 1 --metrics "$OUT/$name-$mode.jsonl" --log-every 1000 > /dev/null 2> "$OUT/$name-$mode.log"
    fi
    ours=$(median_ms "$OUT/$name-$mode.jsonl")
    theirs=$("$PY" "$TORCH_REF" --device cuda --mode "$mode" --steps "$STEPS" --warmup 5 "${tc[@]}" \
      | "$PY" -c "import json,sys; print(json.load(sys.stdin)['ms_per_step'])")
    "$PY" -c "import sys; o,t,n=float(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]); print(f'| $name | $mode | {o:.2f} | {t:.2f} | {t/o:.2f} | {n/(o/1000):,.0f} |')" \
      "$ours" "$theirs" "$tokens" >> "$table"
  done
done
cat "$table"
