#!/usr/bin/env bash
# scripts/study.sh — the whole gradient-dynamics study (`make study`): runs every
# experiment into OUTDIR, then scripts/study.py writes docs/study.md and docs/figures/*.png.
#   usage: scripts/study.sh [OUTDIR]            (default build/study)
#   env:   SEEDS="0 1 2"  JOBS=2  PARTS="teacher equal arith shakespeare mc gradflow"
#          QUICK=1  a reduced run (fewer steps/items, 2 seeds) for a smoke test
# Parts (each writes OUTDIR/<part>/; skipped parts keep whatever OUTDIR already holds):
#   teacher      scripts/study_teacher.sh (equal rank, lr sweep, inits, wake-up, preconditioner)
#   equal        teacher task at equal trainable-parameter count: LoRA r=9 vs LinChain n=2 r=8
#                (1152 each), LoRA r=10 vs LinChain n=4 r=8 (1280 each); AdamW lr sweep
#   arith        pretrain once on a+b (train --arith add), fine-tune on a−b with LoRA, MoSLoRA,
#                LinChain n=1..4 per seed; loss and exact-match accuracy (finetune --eval-arith)
#   shakespeare  stories260K fine-tuned on tinyshakespeare (tok512): val-loss curves, and the
#                cost table (ms/step, peak tensor memory) of each method on the same model
#   cost         ms/step and peak tensor memory of each method on stories260K, measured one run at a
#                time (1 thread, 40 steps, repeated 3×) so the runs do not compete for the cores
#   mc           evaluate --task on boolq / ARC-Easy / openbookqa (first LIMIT test items) for the
#                base model and after fine-tuning LoRA / LinChain on the task's train file
#   gradflow     gradflow on stories260K + tinyshakespeare: per-factor gradient norms every
#                step, ΔW effective rank over training, the preconditioner check on one module
# Needs make (build/bin/*), /usr/bin/python3 with numpy + matplotlib, ../shared/data for the
# stories260K parts (skipped with a note when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/study}
BIN=${BIN:-build/bin}
JOBS=${JOBS:-2}
QUICK=${QUICK:-0}
SEEDS=${SEEDS:-$([ "$QUICK" = 1 ] && echo "0 1" || echo "0 1 2")}
PARTS=${PARTS:-teacher equal arith shakespeare cost mc gradflow}
DATA=${DATA_DIR:-../shared/data}
S260=$DATA/stories260K/stories260K.bin
TOK=$DATA/stories260K/tok512.bin
SHAKE=$DATA/tinyshakespeare/input.txt
LLMA=$DATA/llm_adapters/dataset
for b in train finetune gradflow evaluate; do
  [[ -x $BIN/$b ]] || { echo "$0: $BIN/$b not found (run make)" >&2; exit 2; }
done
mkdir -p "$OUT"
have_part() { [[ " $PARTS " == *" $1 "* ]]; }
have_stories() { [[ -f $S260 && -f $TOK ]]; }
start=$(date +%s)
part_start=$start
# OUT/timing.txt: one "PART SECONDS" line per part run (appended; scripts/study.py sums the
# latest line of each part, so a partial rerun with PARTS=... keeps the total honest).
stamp() {
  local now
  now=$(date +%s)
  echo "$1 $(( now - part_start ))" >>"$OUT/timing.txt"
  echo "study: $1 took $(( now - part_start )) s" >&2
  part_start=$now
}
method_flags() {  # lora | moslora | linchainN  →  adapter flags
  case $1 in
    lora) echo "--adapter lora" ;;
    moslora) echo "--adapter moslora" ;;
    linchain*) echo "--adapter linchain --chain ${1#linchain}" ;;
  esac
}
run_jobs() {  # file of command lines → run JOBS at a time, one thread each
  OMP_NUM_THREADS=1 xargs -P "$JOBS" -I{} -d '\n' bash -c '{}' <"$1"
}
METHODS="lora moslora linchain1 linchain2 linchain3 linchain4"

# ---- teacher (kept as it was) -------------------------------------------------------------
if have_part teacher; then
  mkdir -p "$OUT/teacher"
  # study_teacher.py writes docs/figures/teacher_*.png and prints the teacher tables
  scripts/study_teacher.sh "$OUT/teacher" "$JOBS" >"$OUT/teacher/tables.md"
  stamp teacher
fi

# ---- equal trainable-parameter count on the teacher -----------------------------------------
if have_part equal; then
  d=$OUT/equal
  mkdir -p "$d"
  jf=$(mktemp)
  COMMON="--task teacher --in 64 --out 64 --teacher-rank 4 --spectrum geometric:0.5 --steps 400 --batch 64 --every 50 --target-loss 1e-3"
  for seed in $SEEDS; do
    for lr in 0.003 0.01 0.03; do
      for cfg in "lora9:--adapter lora --rank 9" "lora10:--adapter lora --rank 10" \
                 "linchain2:--adapter linchain --chain 2 --rank 8" "linchain4:--adapter linchain --chain 4 --rank 8"; do
        name=${cfg%%:*}
        # alpha = 2·rank for every run (s = 2), as in the equal-rank study
        echo "$BIN/gradflow $COMMON ${cfg#*:} --optimizer adamw --lr $lr --seed $seed --log $d/${name}_lr${lr}_s$seed.log.jsonl > $d/${name}_lr${lr}_s$seed.out 2>&1 || true" >>"$jf"
      done
    done
  done
  run_jobs "$jf"
  rm -f "$jf"
  stamp equal
fi

# ---- embedded arithmetic: pretrain on a+b, fine-tune on a−b ------------------------------------
if have_part arith; then
  d=$OUT/arith
  mkdir -p "$d"
  if [ "$QUICK" = 1 ]; then PT_STEPS=300; FT_STEPS=300; EVAL_N=100; else PT_STEPS=600; FT_STEPS=600; EVAL_N=300; fi
  if [[ ! -f $d/base.safetensors ]]; then
    OMP_NUM_THREADS=2 $BIN/train --arith add --arith-lines 20000 --dim 64 --layers 2 --heads 4 --kv-heads 2 --seq 48 \
      --batch 16 --steps $PT_STEPS --lr 3e-3 --warmup 50 --min-lr-frac 0.1 --eval-every 100 --seed 1 --threads 2 \
      --log-every 100 --metrics "$d/pretrain.jsonl" --out "$d/base.safetensors" >"$d/pretrain.out" 2>&1
  fi
  jf=$(mktemp)
  for seed in $SEEDS; do
    for m in $METHODS; do
      echo "$BIN/finetune --model $d/base.safetensors --arith sub --arith-lines 20000 --eval-arith $EVAL_N $(method_flags $m) --rank 8 --alpha 16 --seq 48 --batch 16 --steps $FT_STEPS --lr 1e-2 --warmup 20 --eval-every 50 --seed $seed --threads 1 --log-every 1000 --metrics $d/${m}_s$seed.jsonl --summary $d/${m}_s$seed.json > $d/${m}_s$seed.out 2>&1 || true" >>"$jf"
    done
  done
  run_jobs "$jf"
  rm -f "$jf"
  stamp arith
fi

# ---- stories260K on tinyshakespeare (val-loss curves + cost) ----------------------------------
if have_part shakespeare; then
  d=$OUT/shakespeare
  mkdir -p "$d"
  if have_stories && [[ -f $SHAKE ]]; then
    if [ "$QUICK" = 1 ]; then SH_STEPS=100; else SH_STEPS=200; fi
    jf=$(mktemp)
    for seed in $SEEDS; do
      for m in $METHODS; do
        echo "$BIN/finetune --model $S260 --tokenizer $TOK --data $SHAKE $(method_flags $m) --rank 8 --alpha 16 --seq 128 --batch 8 --steps $SH_STEPS --lr 2e-3 --warmup 10 --eval-every 25 --eval-batches 8 --seed $seed --threads 1 --log-every 1000 --metrics $d/${m}_s$seed.jsonl --summary $d/${m}_s$seed.json > $d/${m}_s$seed.out 2>&1 || true" >>"$jf"
      done
    done
    run_jobs "$jf"
    rm -f "$jf"
  else
    echo "skipped: $S260, $TOK or $SHAKE absent" >"$d/SKIPPED"
  fi
  stamp shakespeare
fi

# ---- cost: one run at a time ------------------------------------------------------------------
if have_part cost; then
  d=$OUT/cost
  mkdir -p "$d"
  if have_stories && [[ -f $SHAKE ]]; then
    for rep in 1 2 3; do
      for m in $METHODS; do
        OMP_NUM_THREADS=1 $BIN/finetune --model $S260 --tokenizer $TOK --data $SHAKE $(method_flags $m) --rank 8 --alpha 16 \
          --seq 128 --batch 8 --steps 40 --lr 2e-3 --eval-every 0 --eval-batches 0 --seed 0 --threads 1 --log-every 1000 \
          --summary "$d/${m}_r$rep.json" >"$d/${m}_r$rep.out" 2>&1 || true
      done
    done
  else
    echo "skipped: $S260, $TOK or $SHAKE absent" >"$d/SKIPPED"
  fi
  stamp cost
fi

# ---- LLM-Adapters multiple choice ---------------------------------------------------------------
if have_part mc; then
  d=$OUT/mc
  mkdir -p "$d"
  if have_stories && [[ -d $LLMA ]]; then
    if [ "$QUICK" = 1 ]; then LIMIT=50; MC_STEPS=50; else LIMIT=100; MC_STEPS=100; fi
    echo "$LIMIT" >"$d/limit.txt"
    for task in boolq ARC-Easy openbookqa; do
      /usr/bin/python3 scripts/study.py --mc-text "$LLMA/$task/train.json" "$d/$task.train.txt"
      OMP_NUM_THREADS=1 $BIN/evaluate --model $S260 --tokenizer $TOK --task "$LLMA/$task/test.json" --limit $LIMIT --json \
        --threads 1 >"$d/${task}_base.json"
      for m in lora linchain3; do
        OMP_NUM_THREADS=1 $BIN/finetune --model $S260 --tokenizer $TOK --data "$d/$task.train.txt" $(method_flags $m) \
          --rank 8 --alpha 16 --seq 128 --batch 8 --steps $MC_STEPS --lr 2e-3 --warmup 10 --eval-every 50 --seed 0 \
          --threads 1 --log-every 1000 --metrics "$d/${task}_$m.jsonl" --summary "$d/${task}_$m.summary.json" \
          --merge-out "$d/${task}_$m.merged.safetensors" >"$d/${task}_$m.out" 2>&1
        OMP_NUM_THREADS=1 $BIN/evaluate --model "$d/${task}_$m.merged.safetensors" --tokenizer $TOK \
          --task "$LLMA/$task/test.json" --limit $LIMIT --json --threads 1 >"$d/${task}_$m.json"
        rm -f "$d/${task}_$m.merged.safetensors"
      done
    done
  else
    echo "skipped: $S260 or $LLMA absent" >"$d/SKIPPED"
  fi
  stamp mc
fi

# ---- gradient flow on the real model ------------------------------------------------------------
if have_part gradflow; then
  d=$OUT/gradflow
  mkdir -p "$d"
  if have_stories && [[ -f $SHAKE ]]; then
    if [ "$QUICK" = 1 ]; then GF_STEPS=60; else GF_STEPS=150; fi
    GF="--model $S260 --tokenizer $TOK --data $SHAKE --rank 8 --alpha 16 --seq 128 --batch 8 --optimizer adamw --lr 2e-3 --seed 0 --eval-batches 4"
    jf=$(mktemp)
    for m in lora moslora linchain3; do
      echo "$BIN/gradflow $GF $(method_flags $m) --steps $GF_STEPS --every 1 --metrics $d/$m.gf.jsonl --log $d/$m.log.jsonl > $d/$m.out 2>&1 || true" >>"$jf"
    done
    run_jobs "$jf"
    rm -f "$jf"
    OMP_NUM_THREADS=1 $BIN/gradflow $GF --adapter linchain --chain 3 --check-preconditioner --check-at 30 \
      --check-module model.layers.0.self_attn.q_proj --check-lrs 10,1,1e-1,1e-2,1e-3,1e-4 >"$d/preconditioner.txt" 2>&1
  else
    echo "skipped: $S260, $TOK or $SHAKE absent" >"$d/SKIPPED"
  fi
  stamp gradflow
fi

/usr/bin/python3 scripts/study.py "$OUT" --figures docs/figures --report docs/study.md
echo "study: done in $(( $(date +%s) - start )) s; report docs/study.md, runs in $OUT" >&2
