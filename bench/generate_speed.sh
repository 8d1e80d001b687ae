#!/usr/bin/env bash
# bench/generate_speed.sh — decode speed of build/bin/generate on stories260K: 256 greedy
# positions from BOS, one sequence, median tok/s of 3 runs (tok/s is measured as llama2.c's
# run.c does: positions after the first, over the time since the first). Run from the repo
# root after `make`. Usage: bench/generate_speed.sh [THREADS] [MODEL] [TOKENIZER]
set -euo pipefail
threads=${1:-1}
model=${2:-../shared/data/stories260K/stories260K.bin}
tok=${3:-../shared/data/stories260K/tok512.bin}
bin=build/bin/generate
[[ -x $bin ]] || { echo "generate_speed: $bin not found (run make from the repo root)" >&2; exit 2; }
[[ -f $model && -f $tok ]] || { echo "generate_speed: $model or $tok not found" >&2; exit 2; }
rates=()
for i in 1 2 3; do
  r=$("$bin" --model "$model" --tokenizer "$tok" --temperature 0 --steps 256 --threads "$threads" 2>&1 >/dev/null |
      sed -n 's/^achieved tok\/s: //p')
  rates+=("$r")
done
median=$(printf '%s\n' "${rates[@]}" | sort -g | sed -n 2p)
echo "generate stories260K, 256 greedy positions, threads=$threads: runs ${rates[*]} tok/s; median $median tok/s"
