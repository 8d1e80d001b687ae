#!/usr/bin/env bash
# The Hugging Face interop check on the CPU: a model written by build/bin/train (GQA), one
# merged by build/bin/finetune --merge-out and one merged from a LinChain with chain biases
# (attention_bias / mlp_bias in its config, q..down biases) each load in `transformers`
# unchanged and give the loss of
# build/bin/evaluate on a short text (scripts/hf_check.py). Needs the venv of
# scripts/make-venv.sh at $CG_VENV (default .venv); without one it prints a skip (CI does not
# build the venv: torch and transformers from PyPI are gigabytes). Prints
# "hf: N passed, M failed[, K skipped]"; exit status non-zero on a failure.
# Usage: scripts/test-hf.sh [BIN_DIR]   (default build/bin)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
bin=${1:-build/bin}
py=${CG_VENV:-.venv}/bin/python
if [ ! -x "$py" ] || ! "$py" -c "import torch, transformers" 2>/dev/null; then
  echo "hf: 0 passed, 0 failed, 1 skipped (no venv with torch and transformers at ${CG_VENV:-.venv}: scripts/make-venv.sh)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '12+34=46\n7+8=15\n51+9=60\n' >"$tmp/text.txt"
passed=0 failed=0
# check NAME MODEL: evaluate MODEL, then load it in transformers and compare the losses.
check() {
  local name=$1 model=$2 out=""
  if "$bin/evaluate" --model "$model" --tokenizer byte --text "$tmp/text.txt" --json >"$tmp/$name.json" 2>"$tmp/eval.log" &&
     out=$("$py" scripts/hf_check.py "$model" "$tmp/text.txt" "$tmp/$name.json" 2>&1); then
    echo "  ok    $name: $(tail -1 <<<"$out")"
    passed=$((passed + 1))
  else
    echo "  FAIL  $name: $(tail -3 "$tmp/eval.log" | tr '\n' ' ') $(tail -3 <<<"$out" | tr '\n' ' ')"
    failed=$((failed + 1))
  fi
}
if "$bin/train" --arith add --arith-lines 500 --dim 32 --layers 2 --heads 4 --kv-heads 2 --seq 64 --batch 4 \
     --steps 3 --threads 2 --seed 1 --out "$tmp/base.safetensors" >"$tmp/train.log" 2>&1; then
  check "train --out (GQA, untied)" "$tmp/base.safetensors"
  if "$bin/finetune" --model "$tmp/base.safetensors" --arith add --arith-lines 500 --adapter linchain --rank 4 \
       --seq 64 --batch 4 --steps 3 --lr 1e-2 --threads 2 --merge-out "$tmp/merged.safetensors" >"$tmp/ft.log" 2>&1; then
    check "finetune --merge-out (LinChain merged)" "$tmp/merged.safetensors"
  else
    echo "  FAIL  finetune --merge-out: $(tail -3 "$tmp/ft.log" | tr '\n' ' ')"
    failed=$((failed + 1))
  fi
  if "$bin/finetune" --model "$tmp/base.safetensors" --arith add --arith-lines 500 --adapter linchain --chain-bias \
       --rank 4 --seq 64 --batch 4 --steps 3 --lr 1e-2 --threads 2 --merge-out "$tmp/merged_bias.safetensors" \
       >"$tmp/ftb.log" 2>&1; then
    check "finetune --chain-bias --merge-out (biases merged)" "$tmp/merged_bias.safetensors"
  else
    echo "  FAIL  finetune --chain-bias --merge-out: $(tail -3 "$tmp/ftb.log" | tr '\n' ' ')"
    failed=$((failed + 1))
  fi
else
  echo "  FAIL  train: $(tail -3 "$tmp/train.log" | tr '\n' ' ')"
  failed=$((failed + 1))
fi
echo "hf: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
