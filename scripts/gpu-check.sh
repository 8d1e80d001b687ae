#!/usr/bin/env bash
# scripts/gpu-check.sh — one call on a GPU machine checks the CUDA backend end to end:
# prints the device, builds with CUDA=1, runs the CPU tests and gradcheck, the CUDA tests
# (every gradcheck case and larger shapes, GPU vs CPU in f64 and f32; run-to-run bit
# identity; the caching allocator), then — once those tools exist — a short training run
# of each adapter on the GPU and the GPU benchmark against PyTorch.
#
# Logs and summary.txt go to $OUT when set, else build/gpu-check/. Every step has a time
# limit, and all of them together share a budget of BUDGET_S seconds (default 480), so the
# script ends within 8 minutes plus the last step's remainder; a failing step does not stop the others, and the exit
# status is 1 if any step failed or was skipped for lack of time.
#   usage: [OUT=dir] [JOBS=16] scripts/gpu-check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
LOG_DIR="${OUT:-build/gpu-check}"
JOBS="${JOBS:-16}"
BUDGET_S="${BUDGET_S:-480}"
mkdir -p "$LOG_DIR"
SUMMARY="$LOG_DIR/summary.txt"
: > "$SUMMARY"
FAILED=0
START=$(date +%s)

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_SECONDS CMD...: runs CMD with a time limit (cut to what is left of the
# budget), output to NAME.log.
step() {
  local name="$1" limit="$2"
  shift 2
  local t0 rc left
  left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -lt 10 ]; then
    note "FAIL  $name: not run, the ${BUDGET_S}s budget is spent"
    FAILED=1
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  t0=$(date +%s)
  echo "== $name: $*"
  set +e
  timeout --kill-after=10 "$limit" "$@" > "$LOG_DIR/$name.log" 2>&1
  rc=$?
  set -e
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then
    note "PASS  $name (${dt}s)"
  else
    if [ "$rc" -eq 124 ]; then
      note "FAIL  $name: timed out after ${limit}s"
    else
      note "FAIL  $name: exit $rc (${dt}s)"
    fi
    FAILED=1
    tail -n 30 "$LOG_DIR/$name.log" | sed 's/^/    /'
  fi
  return 0
}

skip() { note "SKIP  $1: $2"; }

# ---- the machine ----------------------------------------------------------------------
{
  echo "# gpu-check $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  command -v nvidia-smi > /dev/null && nvidia-smi || echo "nvidia-smi not found"
  NVCC="$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)"
  [ -n "$NVCC" ] && "$NVCC" --version || echo "nvcc not found"
  nproc
} 2>&1 | tee "$LOG_DIR/machine.log"

# ---- build ----------------------------------------------------------------------------
step build 240 make CUDA=1 -j"$JOBS" ${DEPS:+DEPS=$DEPS}
if [ ! -x build/tests/test_all ]; then
  note "build failed: nothing to test"
  exit 1
fi

# ---- tests ----------------------------------------------------------------------------
step cpu-tests 90 env OMP_NUM_THREADS=8 build/tests/test_all --test-case-exclude='cuda:*'
step gradcheck 60 build/bin/gradcheck
# The log shows the device name and case counts, or "skipped: no CUDA device".
step cuda-tests 150 build/tests/test_all --test-case='cuda:*' --duration=true
if grep -q "skipped: no CUDA device" "$LOG_DIR/cuda-tests.log"; then
  note "FAIL  cuda-tests: no CUDA device was found (see cuda-tests.log)"
  FAILED=1
elif grep -q "^FAIL  cuda-tests" "$SUMMARY"; then
  # Again with every kernel launch synchronous, so a device fault names its kernel.
  step cuda-tests-sync 150 env CG_CUDA_SYNC=1 build/tests/test_all --test-case='cuda:*'
fi

# ---- training on the GPU, checked against the same run on the CPU -------------------------
# A short pretraining run and a fine-tune per adapter, each on cuda and on cpu with the same
# seed; the loss trajectories must agree (f32, different summation orders: 2e-3 relative).
TRAIN_ARGS=(--arith add --arith-lines 5000 --dim 64 --layers 2 --heads 4 --kv-heads 2 --seq 64 --batch 16
            --steps 30 --lr 3e-3 --warmup 5 --eval-every 10 --seed 1 --log-every 10)
train_smoke() {
  step train-cuda 90 build/bin/train --device cuda "${TRAIN_ARGS[@]}" --metrics "$LOG_DIR/train-cuda.jsonl" \
    --out "$LOG_DIR/base.safetensors"
  step train-cpu 90 build/bin/train --device cpu "${TRAIN_ARGS[@]}" --metrics "$LOG_DIR/train-cpu.jsonl"
  step train-parity 20 python3 scripts/compare_losses.py "$LOG_DIR/train-cuda.jsonl" "$LOG_DIR/train-cpu.jsonl"
}

finetune_smoke() {
  [ -f "$LOG_DIR/base.safetensors" ] || { skip finetune-cuda "no base model from train-cuda"; return 0; }
  for adapter in lora moslora linchain; do
    for dev in cuda cpu; do
      step "finetune-$adapter-$dev" 60 build/bin/finetune --device $dev --model "$LOG_DIR/base.safetensors" \
        --arith sub --arith-lines 5000 --adapter "$adapter" --rank 8 --chain 3 --seq 64 --batch 16 --steps 20 \
        --lr 3e-3 --seed 1 --eval-every 10 --metrics "$LOG_DIR/ft-$adapter-$dev.jsonl"
    done
    step "finetune-$adapter-parity" 20 python3 scripts/compare_losses.py "$LOG_DIR/ft-$adapter-cuda.jsonl" "$LOG_DIR/ft-$adapter-cpu.jsonl"
  done
}

# A model file written here must load in Hugging Face transformers unchanged and give the
# same loss (the GPU machine has transformers; Debian's python3 here does not).
hf_check() {
  [ -f "$LOG_DIR/base.safetensors" ] || { skip hf-check "no base model from train-cuda"; return 0; }
  python3 -c "import transformers" 2> /dev/null || { skip hf-check "transformers not installed"; return 0; }
  printf '12+34=46\n7+8=15\n51+9=60\n' > "$LOG_DIR/hf_text.txt"
  step hf-evaluate 30 sh -c "build/bin/evaluate --model '$LOG_DIR/base.safetensors' --tokenizer byte \
    --text '$LOG_DIR/hf_text.txt' --json > '$LOG_DIR/hf_eval.json'"
  step hf-check 120 python3 scripts/hf_check.py "$LOG_DIR/base.safetensors" "$LOG_DIR/hf_text.txt" "$LOG_DIR/hf_eval.json"
}

# bench/gpu_compare.sh runs chaingrad and PyTorch eager on the same GPU and configs and
# writes its table into the directory given as $OUT.
gpu_benchmark() {
  if [ ! -x bench/gpu_compare.sh ]; then
    skip gpu-benchmark "bench/gpu_compare.sh not present"
    return 0
  fi
  step gpu-benchmark 200 env OUT="$LOG_DIR/bench" bench/gpu_compare.sh
}

train_smoke
finetune_smoke
hf_check
gpu_benchmark

note "total $(( $(date +%s) - START ))s; logs in $LOG_DIR"
if [ "$FAILED" -ne 0 ]; then
  note "gpu-check: FAILED"
  exit 1
fi
note "gpu-check: all steps passed"
