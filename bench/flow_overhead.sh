#!/usr/bin/env bash
# bench/flow_overhead.sh — what `finetune --flow` costs: the same LinChain fine-tune of
# stories260K on tinyshakespeare without --flow (the Trainer's observer pointer is null: one
# untaken branch per step), with --flow every 10 steps (the default) and with --flow every
# step, interleaved ROUNDS times in one run. Prints the median ms/step of each (finetune's
# summary, first step excluded) and its ratio to "off".
# usage: bench/flow_overhead.sh [STEPS] [ROUNDS]   (needs ../shared/data and build/bin/finetune)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-60} rounds=${2:-3}
d=../shared/data
[ -f $d/stories260K/stories260K.bin ] || { echo "flow_overhead: $d/stories260K missing"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--model $d/stories260K/stories260K.bin --tokenizer $d/stories260K/tok512.bin --data $d/tinyshakespeare/input.txt
       --adapter linchain --steps "$steps" --eval-every 0 --eval-batches 1 --threads 1)
declare -A ms
for round in $(seq "$rounds"); do
  for mode in off every10 every1; do
    extra=()
    [ $mode = every10 ] && extra=(--flow "$tmp/f.jsonl" --flow-every 10)
    [ $mode = every1 ] && extra=(--flow "$tmp/f.jsonl" --flow-every 1)
    v=$(build/bin/finetune "${flags[@]}" "${extra[@]}" 2>/dev/null | /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.readlines()[-1])['ms_per_step'])")
    ms[$mode]="${ms[$mode]:-} $v"
  done
done
/usr/bin/python3 - "${ms[off]}" "${ms[every10]}" "${ms[every1]}" <<'PY'
import statistics, sys
names = ["off (no --flow)", "--flow, every 10 steps", "--flow, every step"]
med = [statistics.median(float(x) for x in a.split()) for a in sys.argv[1:]]
for n, m, a in zip(names, med, sys.argv[1:]):
    print(f"{n:24s} median {m:7.2f} ms/step  ratio to off {m / med[0]:.3f}   (runs: {a.strip()})")
PY
