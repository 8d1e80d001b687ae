#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] — builds the libFuzzer harnesses (`make fuzz`, clang with ASan
# + UBSan), writes a fresh seed corpus (build/fuzz/make_seeds, plus stories260K's tok512.bin
# when ../shared/data is present) and runs each harness for SECONDS (default 20).
# Exits non-zero if any harness finds a crash, a sanitizer report, a leak, a timeout or an
# over-large allocation; the reproducer is kept under build/fuzz/run/artifacts_NAME/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac

make -s fuzz
work=build/fuzz/run
rm -rf "$work"
mkdir -p "$work"
build/fuzz/make_seeds "$work/seeds" ../shared/data/stories260K/tok512.bin

status=0
for name in safetensors llama2c tokenizer gguf; do
  mkdir -p "$work/corpus_$name" "$work/artifacts_$name"
  log="$work/fuzz_$name.log"
  if OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "build/fuzz/fuzz_$name" \
      "$work/corpus_$name" "$work/seeds/$name" \
      -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
      -artifact_prefix="$work/artifacts_$name/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz_$name: ok (${secs}s, ${runs:-?} runs, corpus $(ls "$work/corpus_$name" | wc -l) files)"
  else
    echo "fuzz_$name: FAILED — log $log, reproducer in $work/artifacts_$name/" >&2
    tail -n 40 "$log" >&2
    status=1
  fi
done
exit "$status"
