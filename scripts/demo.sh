#!/usr/bin/env bash
# scripts/demo.sh — the main job (`make demo`): pretrain a tiny model, fine-tune it with
# LoRA, MoSLoRA and LinChain at equal rank, print a comparison table and write a plot.
#   make demo                          embedded task: pretrain on addition, fine-tune on
#                                      subtraction (generated in memory, no files needed)
#   make demo DATA=text.txt BASE=m.bin [TOKENIZER=tok.bin]
#                                      fine-tune a real base model on a real text file
# Outputs go to build/demo/ (override with OUT=dir).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
OUT=${OUT:-build/demo}
DATA=${DATA:-}
BASE=${BASE:-}
TOKENIZER=${TOKENIZER:-}
RANK=${RANK:-8}
CHAIN=${CHAIN:-3}
mkdir -p "$OUT"
start=$(date +%s)

common=(--threads 2 --log-every 50)
if [ -z "$DATA" ] && [ -z "$BASE" ]; then
  echo "== demo: embedded arithmetic task (pretrain on a+b, fine-tune on a-b)"
  "$BIN/train" --arith add --arith-lines 30000 --dim 96 --layers 3 --heads 4 --kv-heads 2 --seq 64 --batch 16 \
    --steps 1500 --lr 3e-3 --warmup 50 --min-lr-frac 0.1 --eval-every 250 --seed 1 \
    --metrics "$OUT/pretrain.jsonl" --out "$OUT/base.safetensors" "${common[@]}"
  base="$OUT/base.safetensors"
  ft_data=(--arith sub --arith-lines 30000 --eval-arith 300)
  ft_steps=500
  ft_lr=3e-3
  seq=64
  tokargs=()
else
  [ -n "$DATA" ] && [ -n "$BASE" ] || { echo "demo: give both DATA=text and BASE=model" >&2; exit 2; }
  echo "== demo: fine-tune $BASE on $DATA"
  base="$BASE"
  ft_data=(--data "$DATA")
  ft_steps=${STEPS:-300}
  ft_lr=${LR:-1e-3}
  seq=${SEQ:-128}
  tokargs=()
  [ -n "$TOKENIZER" ] && tokargs=(--tokenizer "$TOKENIZER")
fi

# linchain_bias: LinChain with chain biases (--chain-bias), as the authors' code builds it.
for run in lora moslora linchain linchain_bias; do
  kind=${run%_bias}
  bias=()
  [ "$run" = linchain_bias ] && bias=(--chain-bias)
  echo "== fine-tune: $kind (r=$RANK$([ $kind = linchain ] && echo ", n=$CHAIN")${bias:+, chain biases})"
  "$BIN/finetune" --model "$base" "${tokargs[@]}" "${ft_data[@]}" --adapter $kind "${bias[@]}" --rank $RANK --chain $CHAIN \
    --alpha $((2 * RANK)) --seq $seq --batch 16 --steps $ft_steps --lr $ft_lr --warmup 20 --eval-every 50 --seed 1 \
    --metrics "$OUT/$run.jsonl" --summary "$OUT/$run.json" --out "$OUT/$run.adapter.safetensors" "${common[@]}" >/dev/null
done

/usr/bin/python3 scripts/demo_table.py "$OUT"/lora.json "$OUT"/moslora.json "$OUT"/linchain.json "$OUT"/linchain_bias.json
/usr/bin/python3 scripts/plot.py "$OUT/demo_val_loss.png" "$OUT/lora.jsonl=LoRA" "$OUT/moslora.jsonl=MoSLoRA" \
  "$OUT/linchain.jsonl=LinChain (n=$CHAIN)" "$OUT/linchain_bias.jsonl=LinChain (n=$CHAIN, biases)" --key val_loss --title "fine-tuning: validation loss (r=$RANK)"
/usr/bin/python3 scripts/plot.py "$OUT/demo_train_loss.png" "$OUT/lora.jsonl=LoRA" "$OUT/moslora.jsonl=MoSLoRA" \
  "$OUT/linchain.jsonl=LinChain (n=$CHAIN)" "$OUT/linchain_bias.jsonl=LinChain (n=$CHAIN, biases)" --key loss --title "fine-tuning: training loss (r=$RANK)"
echo "demo: done in $(( $(date +%s) - start )) s; outputs in $OUT/"
