#!/usr/bin/env bash
# scripts/study_real.sh — `make study-real`: the real-model study of issue 21 (SmolLM2-135M-Instruct,
# LoRA / MoSLoRA / LinChain and the controls, eight commonsense test sets), run by
# scripts/study_real.py under `nice -n 10` (NICE=N to change). Resumable and runnable in parts:
#   make study-real                     everything (hours on 2 cores; docs/study.md §9 has the measured time)
#   make study-real PART=train          one part: data | base | train | eval | report | all
#   make study-real METHODS="lora lora_bias" SEEDS="0 1 2"    a subset of the runs
#   make study-real PILOT=1             the small pilot budget, into build/study-real-pilot
#   make study-real PART=report         the section from what results/study-real/ (committed) holds
# Budget variables (STEPS, SEEDS, ITEMS, TRAIN_PER_SET, LRS, WARMUP, METHODS, JOBS, FLOW_EVERY,
# TARGET_LOSS) and the layout of OUT: scripts/study_real.py --help / its header.
set -euo pipefail
cd "$(dirname "$0")/.."
PART=${PART:-all}
if [ -z "${OUT:-}" ]; then
  if [ "${PILOT:-0}" = 1 ]; then OUT=build/study-real-pilot; else OUT=build/study-real; fi
fi
exec nice -n "${NICE:-10}" /usr/bin/python3 scripts/study_real.py --out "$OUT" --part "$PART" --bin "${BIN:-build/bin}" "$@"
