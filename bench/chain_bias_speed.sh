#!/usr/bin/env bash
# bench/chain_bias_speed.sh — fine-tune step time of LinChain with chain biases (the authors'
# variant, n = 3) against LoRA at equal rank (r = 16, q,k,v,up,down), interleaved in one run
# and best-of-N per row (the shared machine is noisy): on bench_train's `small` config
# (median ms/step of its steps) and on stories260K (finetune --summary ms_per_step, --arith
# add, seq 64, batch 8). Prints one line per config with both times and the ratio.
# Usage: bench/chain_bias_speed.sh [REPEATS=5] [BIN_DIR=build/bin]   (needs make bench for bench_train)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
bin=${2:-build/bin}
data=../shared/data/stories260K
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
best() { sort -g | head -1; }
small() {  # mode [--chain-bias]
  "$bin/bench_train" --config small --mode "$@" --threads 2 --steps 8 --warmup 2 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step"])'
}
stories() {  # adapter [--chain-bias]
  "$bin/finetune" --model "$data/stories260K.bin" --tokenizer "$data/tok512.bin" --arith add --arith-lines 2000 \
    --adapter "$@" --rank 16 --seq 64 --batch 8 --steps 30 --eval-every 0 --eval-batches 1 --threads 2 \
    --summary "$tmp/s.json" >/dev/null 2>&1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ms_per_step"])' "$tmp/s.json"
}
for i in $(seq "$reps"); do  # interleaved: LoRA, LinChain+bias, LoRA, ...
  small lora >>"$tmp/small_lora"
  small linchain --chain-bias >>"$tmp/small_lcb"
  if [ -f "$data/stories260K.bin" ]; then
    stories lora >>"$tmp/st_lora"
    stories linchain --chain-bias >>"$tmp/st_lcb"
  fi
done
report() {  # name lora_file lcb_file
  local l b
  l=$(best <"$2"); b=$(best <"$3")
  python3 -c "import sys; l,b=float(sys.argv[2]),float(sys.argv[3]); print(f'{sys.argv[1]}: LoRA {l:.2f} ms/step, LinChain+bias {b:.2f} ms/step, ratio {b/l:.3f} (best of $reps, interleaved)')" "$1" "$l" "$b"
}
report small "$tmp/small_lora" "$tmp/small_lcb"
if [ -f "$tmp/st_lora" ]; then report stories260K "$tmp/st_lora" "$tmp/st_lcb"; else echo "stories260K: skipped ($data not found)"; fi
