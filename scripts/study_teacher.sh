#!/usr/bin/env bash
# scripts/study_teacher.sh — the teacher–student comparison of LoRA, MoSLoRA and LinChain
# (n = 1..4) at equal rank: 3 seeds, a small lr sweep for AdamW and for plain SGD, and a
# mixer-init comparison (kaiming / identity / orthogonal) for LinChain. Writes one per-step
# log (--log) and one gradient-flow file (--metrics) per run into OUTDIR, then runs
# scripts/study_teacher.py to make docs/figures/teacher_*.png and print the tables.
#   usage: scripts/study_teacher.sh OUTDIR [JOBS]      (JOBS parallel runs, default 2)
# Needs build/bin/gradflow (make) and /usr/bin/python3 with numpy + matplotlib.
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUTDIR [JOBS]" >&2
  exit 2
fi
OUT=$1
JOBS=${2:-2}
BIN=${GRADFLOW:-build/bin/gradflow}
[[ -x $BIN ]] || { echo "$0: $BIN not found (run make)" >&2; exit 2; }
mkdir -p "$OUT"

# The task: in = out = 64, adapter rank 8, teacher rank 4 with a geometric spectrum (ratio 0.5),
# ‖ΔW*‖_F = 8 (initial MSE ≈ 1); 400 steps of batch 64; target held-out MSE 1e-3.
COMMON="--task teacher --in 64 --out 64 --teacher-rank 4 --spectrum geometric:0.5 --rank 8 --steps 400 --batch 64 --every 10 --target-loss 1e-3"
SEEDS="0 1 2"
METHODS="lora moslora linchain1 linchain2 linchain3 linchain4"
adapter_flags() {
  case $1 in
    lora) echo "--adapter lora" ;;
    moslora) echo "--adapter moslora" ;;
    linchain*) echo "--adapter linchain --chain ${1#linchain}" ;;
  esac
}

jobs_file=$(mktemp)
trap 'rm -f "$jobs_file"' EXIT
add_run() {  # name optimizer lr init method seed
  local name=$1 opt=$2 lr=$3 init=$4 method=$5 seed=$6
  echo "$BIN $COMMON $(adapter_flags "$method") --init $init --optimizer $opt --lr $lr --seed $seed --log $OUT/$name.log.jsonl --metrics $OUT/$name.gf.jsonl > $OUT/$name.out 2>&1 || true" >>"$jobs_file"
}
for seed in $SEEDS; do
  for m in $METHODS; do
    for lr in 0.003 0.01 0.03 0.1; do add_run "adamw_lr${lr}_kaiming_${m}_s${seed}" adamw $lr kaiming $m $seed; done
    for lr in 0.1 0.3 1 3; do add_run "sgd_lr${lr}_kaiming_${m}_s${seed}" sgd $lr kaiming $m $seed; done
  done
  for m in linchain2 linchain3 linchain4; do
    for init in identity orthogonal; do
      add_run "adamw_lr0.01_${init}_${m}_s${seed}" adamw 0.01 $init $m $seed
      add_run "sgd_lr0.3_${init}_${m}_s${seed}" sgd 0.3 $init $m $seed
    done
  done
done
# Two runs logged at every step, for the wake-up of the mixers (B = 0 at init).
for opt in "adamw 0.01" "sgd 0.3"; do
  set -- $opt
  echo "$BIN ${COMMON/--every 10/--every 1} --adapter linchain --chain 3 --init kaiming --optimizer $1 --lr $2 --seed 0 --metrics $OUT/wake_$1.gf.jsonl > $OUT/wake_$1.out 2>&1 || true" >>"$jobs_file"
done
start=$(date +%s)
OMP_NUM_THREADS=1 xargs -P "$JOBS" -I{} -d '\n' bash -c '{}' <"$jobs_file"
echo "study_teacher: $(wc -l <"$jobs_file") runs in $(( $(date +%s) - start )) s" >&2
# Preconditioner tables for the record (LinChain n=3 after 50 AdamW steps; kaiming and identity mixers).
for init in kaiming identity; do
  $BIN $COMMON --adapter linchain --chain 3 --init $init --optimizer adamw --lr 0.01 --check-preconditioner \
    --check-at 50 --check-lrs 1e-1,1e-2,1e-3,1e-4
done >"$OUT/preconditioner.txt"
/usr/bin/python3 scripts/study_teacher.py "$OUT"
