#!/usr/bin/env bash
# scripts/gpu-check.sh — one call on a GPU machine checks the CUDA backend end to end:
# prints the device, builds with CUDA=1, runs the CPU tests and gradcheck, the CUDA tests
# (every gradcheck case and larger shapes, GPU vs CPU in f64 and f32; run-to-run bit
# identity; the caching allocator), then — once those tools exist — a short training run
# of each adapter on the GPU and the GPU benchmark against PyTorch.
#
# Logs and summary.txt go to $OUT when set, else build/gpu-check/. Every step has a time
# limit, and all of them together share a budget of BUDGET_S seconds (default 420), so the
# script ends well under 8 minutes; a failing step does not stop the others, and the exit
# status is 1 if any step failed or was skipped for lack of time.
#   usage: [OUT=dir] [JOBS=16] scripts/gpu-check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
LOG_DIR="${OUT:-build/gpu-check}"
JOBS="${JOBS:-16}"
BUDGET_S="${BUDGET_S:-420}"
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
step build 240 make CUDA=1 -j"$JOBS"
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

# ---- TODO hooks: training and benchmark (tools built by other issues) ------------------
# TODO(training tools): confirm the flags below once build/bin/train and build/bin/finetune
# land; each run should take ~30 s on the GPU and end with a finite, decreasing loss.
train_smoke() {
  if [ ! -x build/bin/train ]; then
    skip train-cuda "build/bin/train not built yet"
    return 0
  fi
  step train-cuda 60 build/bin/train --device cuda --steps 50 --out "$LOG_DIR/train-cuda"
}

finetune_smoke() {
  if [ ! -x build/bin/finetune ]; then
    skip finetune-cuda "build/bin/finetune not built yet"
    return 0
  fi
  for adapter in lora moslora linchain; do
    step "finetune-$adapter-cuda" 45 build/bin/finetune --device cuda --adapter "$adapter" --steps 50 \
      --out "$LOG_DIR/finetune-$adapter-cuda"
  done
}

# TODO(benchmark): bench/gpu_compare.sh runs chaingrad and PyTorch eager on the same GPU
# and config (small and base-sized), pretrain and fine-tune tokens/s, and writes its table
# into the directory given as $OUT.
gpu_benchmark() {
  if [ ! -x bench/gpu_compare.sh ]; then
    skip gpu-benchmark "bench/gpu_compare.sh not written yet"
    return 0
  fi
  step gpu-benchmark 150 env OUT="$LOG_DIR/bench" bench/gpu_compare.sh
}

train_smoke
finetune_smoke
gpu_benchmark

note "total $(( $(date +%s) - START ))s; logs in $LOG_DIR"
if [ "$FAILED" -ne 0 ]; then
  note "gpu-check: FAILED"
  exit 1
fi
note "gpu-check: all steps passed"
